#pragma once
// Distributed rate-limit counters on Redis (the gateway's per-user 429), shared by every gateway
// process: a fixed window per subject, INCRBY + PEXPIRE in one script.
//
//   <key_prefix>rate:{<subject>}   the count of the current window; its TTL ends the window
//
// A request over the limit is refused and not counted (the script takes its cost back), so a
// client hammering a closed window does not push its own reset further out. Windows run on the
// Redis server's clock. Redis unreachable: kUnavailable (the gateway decides whether to fail
// open or closed).

#include <cstdint>
#include <string>
#include <string_view>

#include "common/clock/clock.hpp"
#include "runtime/api/result.hpp"
#include "runtime/redis/redis_connection.hpp"

namespace lab::runtime {

struct RedisRateLimitConfig {
  std::string key_prefix = "agentlab:";
  std::uint64_t limit = 60;   ///< cost allowed per window and subject
  Millis window{60'000};
};

struct WindowDecision {
  bool allowed = false;
  std::uint64_t count = 0;  ///< cost counted in the current window (this request included if allowed)
  Millis retry_after{0};    ///< until the window ends (the Retry-After of a 429)
};

/// Thread-safe (all state is on the server).
class RedisRateLimiter {
 public:
  /// `pool` must outlive the limiter.
  RedisRateLimiter(RedisRateLimitConfig config, redis::RedisPool& pool);

  /// Counts `cost` against `subject` (a user id) unless it would pass the limit.
  /// kInvalidArgument for an empty subject or a zero cost.
  Result<WindowDecision> hit(std::string_view subject, std::uint64_t cost = 1);

  std::string key(std::string_view subject) const;

 private:
  const RedisRateLimitConfig config_;
  redis::RedisPool& pool_;
};

}  // namespace lab::runtime
