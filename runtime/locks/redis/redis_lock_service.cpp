#include "runtime/locks/redis/redis_lock_service.hpp"

#include <algorithm>
#include <chrono>
#include <vector>

namespace lab::runtime {
namespace {

using redis::RedisScript;

// KEYS: lock, fence. ARGV: owner, ttl ms. {1, token} or {0} (held).
constexpr std::string_view kAcquire = R"lua(
if redis.call('EXISTS', KEYS[1]) == 1 then return {0} end
local token = redis.call('HINCRBY', KEYS[2], 'n', 1)
redis.call('SET', KEYS[1], token .. ':' .. ARGV[1], 'NX', 'PX', ARGV[2])
return {1, token}
)lua";

// ARGV: owner, token, ttl ms. 1 renewed, 0 lost.
constexpr std::string_view kRenew = R"lua(
local mine = ARGV[2] .. ':' .. ARGV[1]
local held = redis.call('GET', KEYS[1])
if held then
  if held ~= mine then return 0 end
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return 1
end
-- Expired: still ours while nobody acquired since and we did not release it.
if redis.call('HGET', KEYS[2], 'n') == ARGV[2] and redis.call('HGET', KEYS[2], 'released') ~= ARGV[2] then
  redis.call('SET', KEYS[1], mine, 'PX', ARGV[3])
  return 1
end
return 0
)lua";

// ARGV: owner, token. 1 released (or nothing to release), 0 another holder has it.
constexpr std::string_view kRelease = R"lua(
local mine = ARGV[2] .. ':' .. ARGV[1]
local held = redis.call('GET', KEYS[1])
if held and held ~= mine then return 0 end
if held then redis.call('DEL', KEYS[1]) end
if redis.call('HGET', KEYS[2], 'n') == ARGV[2] then redis.call('HSET', KEYS[2], 'released', ARGV[2]) end
return 1
)lua";

struct Scripts {
  RedisScript acquire{std::string(kAcquire)};
  RedisScript renew{std::string(kRenew)};
  RedisScript release{std::string(kRelease)};
};

const Scripts& scripts() {
  static const Scripts s;
  return s;
}

// Whole milliseconds, rounded up, at least 1.
long long ttl_millis(Nanos ttl) { return std::max<long long>(1, (ttl.count() + 999'999) / 1'000'000); }

}  // namespace

RedisLockService::RedisLockService(RedisLockConfig config, redis::RedisPool& pool, const Clock& clock)
    : config_(std::move(config)), pool_(pool), clock_(clock) {}

std::string RedisLockService::lock_key(std::string_view agent_id) const {
  return config_.key_prefix + "lock:{" + std::string(agent_id) + "}";
}

std::string RedisLockService::fence_key(std::string_view agent_id) const {
  return config_.key_prefix + "fence:{" + std::string(agent_id) + "}";
}

Result<LockGrant> RedisLockService::try_acquire(std::string_view agent_id, std::string_view owner, Nanos ttl) {
  if (agent_id.empty() || owner.empty() || ttl <= Nanos::zero()) return Errc::kInvalidArgument;
  const TimePoint now = clock_.now();
  auto r = pool_.eval(scripts().acquire, std::vector<std::string>{lock_key(agent_id), fence_key(agent_id)},
                      std::vector<std::string>{std::string(owner), std::to_string(ttl_millis(ttl))});
  if (!r.ok()) return redis::to_runtime(r.error());
  if (!r->is_array() || r->size() == 0) return Errc::kBackendError;
  if (r->elements[0].integer == 0) return Errc::kLockHeld;
  if (r->size() != 2 || r->elements[1].integer <= 0) return Errc::kBackendError;
  return LockGrant{static_cast<std::uint64_t>(r->elements[1].integer), now + ttl};
}

Result<LockGrant> RedisLockService::renew(std::string_view agent_id, std::string_view owner, std::uint64_t fence,
                                          Nanos ttl) {
  if (ttl <= Nanos::zero()) return Errc::kInvalidArgument;
  const TimePoint now = clock_.now();
  auto r = pool_.eval(scripts().renew, std::vector<std::string>{lock_key(agent_id), fence_key(agent_id)},
                      std::vector<std::string>{std::string(owner), std::to_string(fence),
                                               std::to_string(ttl_millis(ttl))});
  if (!r.ok()) return redis::to_runtime(r.error());
  if (r->integer != 1) return Errc::kLockLost;
  return LockGrant{fence, now + ttl};
}

Result<void> RedisLockService::release(std::string_view agent_id, std::string_view owner, std::uint64_t fence) {
  auto r = pool_.eval(scripts().release, std::vector<std::string>{lock_key(agent_id), fence_key(agent_id)},
                      std::vector<std::string>{std::string(owner), std::to_string(fence)});
  if (!r.ok()) return redis::to_runtime(r.error());
  if (r->integer != 1) return Errc::kLockLost;
  return {};
}

}  // namespace lab::runtime
