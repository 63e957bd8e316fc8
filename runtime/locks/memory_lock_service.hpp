#pragma once
// LockService in memory: one mutex, one entry per agent ever locked (the entry keeps the agent's
// token counter after release, so tokens never repeat; about 100 bytes per agent).

#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>

#include "common/clock/clock.hpp"
#include "runtime/api/lock_service.hpp"
#include "runtime/api/string_key.hpp"

namespace lab::runtime {

class MemoryLockService final : public LockService {
 public:
  explicit MemoryLockService(const Clock& clock) : clock_(clock) {}

  Result<LockGrant> try_acquire(std::string_view agent_id, std::string_view owner, Nanos ttl) override;
  Result<LockGrant> renew(std::string_view agent_id, std::string_view owner, std::uint64_t fence,
                          Nanos ttl) override;
  Result<void> release(std::string_view agent_id, std::string_view owner, std::uint64_t fence) override;

  /// Entries held (agents ever locked), for tests and memory accounting.
  std::size_t entries() const;

 private:
  struct Entry {
    std::string owner;      // empty: free
    std::uint64_t fence = 0;  // the last token granted
    TimePoint expires_at;
  };
  const Clock& clock_;
  mutable std::mutex mu_;
  StringMap<Entry> locks_;
};

}  // namespace lab::runtime
