#pragma once
// Per-user rate limit for POST /api/chat: one token bucket per user (rate per second, burst),
// on the injected Clock. Sharded by user id so the gateway's threads rarely meet on a mutex.
// Bounded: at most max_users buckets are tracked; prune() drops buckets that are full again
// (idle users), and a user beyond the bound is admitted untracked (counted in stats).

#include <array>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>

#include "common/clock/clock.hpp"
#include "runtime/api/string_key.hpp"

namespace lab::runtime {

struct RateDecision {
  bool allowed = true;
  Nanos retry_after{0};  ///< when refused: until one token is back
};

class UserRateLimiter {
 public:
  /// rate_per_s <= 0 disables the limit (every call is allowed). burst >= 1.
  UserRateLimiter(double rate_per_s, double burst, const Clock& clock, std::size_t max_users = 1'000'000);

  /// Takes one token from the user's bucket. Thread-safe.
  RateDecision admit(std::string_view user_id);
  /// Drops buckets that have refilled completely; returns how many. Thread-safe.
  std::size_t prune();
  std::size_t tracked() const;
  std::uint64_t untracked_admits() const;

 private:
  struct Bucket {
    double tokens = 0;
    TimePoint updated;
  };
  struct Shard {
    mutable std::mutex mutex;
    StringMap<Bucket> buckets;
  };
  static constexpr std::size_t kShards = 16;

  const double rate_;
  const double burst_;
  const Clock& clock_;
  const std::size_t max_per_shard_;
  std::array<Shard, kShards> shards_;
  std::atomic<std::uint64_t> untracked_{0};
};

}  // namespace lab::runtime
