#pragma once
// Per-agent locks with a TTL and a fencing token (Kleppmann's scheme; seed 000's agent_locks).
// A worker holds an agent's lock while it runs the agent's turn; the token it got goes on every
// store write, and the store refuses tokens older than the newest it has seen, so a worker that
// stalled past its TTL cannot overwrite the work of the one that took over.
//
// Tokens are per agent and grow by exactly 1 per successful acquire (renew keeps the token), so a
// worker whose new token is its previous one + 1 knows nobody else held the agent in between and
// its cached copy is current.
//
// Implementations: MemoryLockService (runtime/locks/), and for issue 5 Redis (a Lua script:
// SET lock:{agent} owner NX PX ttl, then INCR fence:{agent}; renew and release compare the owner
// and token first).

#include <cstdint>
#include <string_view>

#include "common/clock/clock.hpp"
#include "runtime/api/result.hpp"

namespace lab::runtime {

struct LockGrant {
  std::uint64_t fence = 0;  ///< the fencing token (>= 1)
  TimePoint expires_at;     ///< on the service's Clock
};

/// All members are thread-safe.
class LockService {
 public:
  virtual ~LockService() = default;

  /// Takes the agent's lock for `owner` for `ttl` when it is free or its holder's TTL ran out.
  /// Not reentrant: kLockHeld while any owner (the same one included) holds it.
  /// kInvalidArgument for an empty agent id or owner, or ttl <= 0.
  virtual Result<LockGrant> try_acquire(std::string_view agent_id, std::string_view owner, Nanos ttl) = 0;

  /// Extends a held lock to `ttl` from now, keeping its token. Renewing after the TTL ran out
  /// succeeds while nobody else took the lock. kLockLost when (owner, fence) no longer holds it.
  virtual Result<LockGrant> renew(std::string_view agent_id, std::string_view owner,
                                  std::uint64_t fence, Nanos ttl) = 0;

  /// Frees the lock. Idempotent: releasing a lock that is already free (or expired and not
  /// retaken) succeeds. kLockLost when another (owner, fence) holds it now.
  virtual Result<void> release(std::string_view agent_id, std::string_view owner, std::uint64_t fence) = 0;
};

}  // namespace lab::runtime
