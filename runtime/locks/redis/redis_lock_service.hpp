#pragma once
// LockService on Redis, shared by every worker process: per-agent locks with a TTL and a fencing
// token (Kleppmann's scheme). Each call is one Lua script, so it is atomic on the server.
//
//   <key_prefix>lock:{<agent>}    "<token>:<owner>", SET ... PX ttl (the lock; its TTL is the lease)
//   <key_prefix>fence:{<agent>}   hash {n: last token granted (HINCRBY, +1 per acquire),
//                                  released: the last token released}; kept after release so
//                                  tokens never repeat (about 100 bytes per agent ever locked)
//
// try_acquire: refused while the lock key exists (SET NX semantics, checked and set inside the
// script together with the token increment). renew: PEXPIRE when the key still holds
// "<token>:<owner>"; after expiry, the lock is re-set when nobody acquired since (n is still our
// token) and we did not release it. release: DEL when ours; a free or expired lock is fine.
//
// TTLs run on the Redis server's clock; the service's Clock only stamps LockGrant::expires_at
// (now + ttl). TTLs are whole milliseconds (at least 1). Redis unreachable: kUnavailable.
// The store checks the token on every fenced write (PostgreSQL: agents.fence), which is what
// makes a stalled holder harmless: Redis alone cannot stop it from writing.

#include <string>
#include <string_view>

#include "common/clock/clock.hpp"
#include "runtime/api/lock_service.hpp"
#include "runtime/redis/redis_connection.hpp"

namespace lab::runtime {

struct RedisLockConfig {
  std::string key_prefix = "agentlab:";
};

class RedisLockService final : public LockService {
 public:
  /// `pool` and `clock` must outlive the service.
  RedisLockService(RedisLockConfig config, redis::RedisPool& pool, const Clock& clock);

  Result<LockGrant> try_acquire(std::string_view agent_id, std::string_view owner, Nanos ttl) override;
  Result<LockGrant> renew(std::string_view agent_id, std::string_view owner, std::uint64_t fence,
                          Nanos ttl) override;
  Result<void> release(std::string_view agent_id, std::string_view owner, std::uint64_t fence) override;

  std::string lock_key(std::string_view agent_id) const;
  std::string fence_key(std::string_view agent_id) const;

 private:
  const RedisLockConfig config_;
  redis::RedisPool& pool_;
  const Clock& clock_;
};

}  // namespace lab::runtime
