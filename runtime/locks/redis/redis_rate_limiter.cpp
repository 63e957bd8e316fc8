#include "runtime/locks/redis/redis_rate_limiter.hpp"

#include <vector>

namespace lab::runtime {
namespace {

// KEYS: counter. ARGV: window ms, cost, limit. {allowed 0/1, count, ttl ms}.
const redis::RedisScript& hit_script() {
  static const redis::RedisScript s(R"lua(
local cost, limit = tonumber(ARGV[2]), tonumber(ARGV[3])
local n = redis.call('INCRBY', KEYS[1], cost)
if n == cost then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
if n > limit then
  redis.call('DECRBY', KEYS[1], cost)
  return {0, n - cost, ttl}
end
return {1, n, ttl}
)lua");
  return s;
}

}  // namespace

RedisRateLimiter::RedisRateLimiter(RedisRateLimitConfig config, redis::RedisPool& pool)
    : config_(std::move(config)), pool_(pool) {}

std::string RedisRateLimiter::key(std::string_view subject) const {
  return config_.key_prefix + "rate:{" + std::string(subject) + "}";
}

Result<WindowDecision> RedisRateLimiter::hit(std::string_view subject, std::uint64_t cost) {
  if (subject.empty() || cost == 0) return Errc::kInvalidArgument;
  auto r = pool_.eval(hit_script(), std::vector<std::string>{key(subject)},
                      std::vector<std::string>{std::to_string(std::max<Millis::rep>(1, config_.window.count())),
                                               std::to_string(cost), std::to_string(config_.limit)});
  if (!r.ok()) return redis::to_runtime(r.error());
  if (!r->is_array() || r->size() != 3) return Errc::kBackendError;
  WindowDecision d;
  d.allowed = r->elements[0].integer == 1;
  d.count = static_cast<std::uint64_t>(std::max<long long>(0, r->elements[1].integer));
  d.retry_after = Millis(std::max<long long>(0, r->elements[2].integer));
  return d;
}

}  // namespace lab::runtime
