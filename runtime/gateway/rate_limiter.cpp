#include "runtime/gateway/rate_limiter.hpp"

#include <algorithm>
#include <cmath>
#include <functional>

namespace lab::runtime {

UserRateLimiter::UserRateLimiter(double rate_per_s, double burst, const Clock& clock, std::size_t max_users)
    : rate_(rate_per_s),
      burst_(std::max(1.0, burst)),
      clock_(clock),
      max_per_shard_(std::max<std::size_t>(1, max_users / kShards)) {}

RateDecision UserRateLimiter::admit(std::string_view user_id) {
  if (rate_ <= 0) return {};
  Shard& shard = shards_[std::hash<std::string_view>{}(user_id) % kShards];
  const TimePoint now = clock_.now();
  std::lock_guard lock(shard.mutex);
  auto it = shard.buckets.find(user_id);
  if (it == shard.buckets.end()) {
    if (shard.buckets.size() >= max_per_shard_) {
      untracked_.fetch_add(1, std::memory_order_relaxed);
      return {};
    }
    it = shard.buckets.emplace(std::string(user_id), Bucket{burst_, now}).first;
  }
  Bucket& b = it->second;
  const double elapsed = std::chrono::duration<double>(now - b.updated).count();
  if (elapsed > 0) {
    b.tokens = std::min(burst_, b.tokens + elapsed * rate_);
    b.updated = now;
  }
  if (b.tokens >= 1.0) {
    b.tokens -= 1.0;
    return {};
  }
  const double wait_s = (1.0 - b.tokens) / rate_;
  return {false, std::chrono::duration_cast<Nanos>(std::chrono::duration<double>(wait_s))};
}

std::size_t UserRateLimiter::prune() {
  if (rate_ <= 0) return 0;
  const TimePoint now = clock_.now();
  std::size_t dropped = 0;
  for (Shard& shard : shards_) {
    std::lock_guard lock(shard.mutex);
    for (auto it = shard.buckets.begin(); it != shard.buckets.end();) {
      const double elapsed = std::chrono::duration<double>(now - it->second.updated).count();
      if (it->second.tokens + elapsed * rate_ >= burst_) {
        it = shard.buckets.erase(it);
        ++dropped;
      } else {
        ++it;
      }
    }
  }
  return dropped;
}

std::size_t UserRateLimiter::tracked() const {
  std::size_t n = 0;
  for (const Shard& shard : shards_) {
    std::lock_guard lock(shard.mutex);
    n += shard.buckets.size();
  }
  return n;
}

std::uint64_t UserRateLimiter::untracked_admits() const {
  return untracked_.load(std::memory_order_relaxed);
}

}  // namespace lab::runtime
