#include "runtime/locks/memory_lock_service.hpp"

namespace lab::runtime {

Result<LockGrant> MemoryLockService::try_acquire(std::string_view agent_id, std::string_view owner,
                                                 Nanos ttl) {
  if (agent_id.empty() || owner.empty() || ttl <= Nanos::zero()) return Errc::kInvalidArgument;
  const TimePoint now = clock_.now();
  std::lock_guard lk(mu_);
  auto it = locks_.find(agent_id);
  if (it == locks_.end()) it = locks_.emplace(std::string(agent_id), Entry{}).first;
  Entry& e = it->second;
  if (!e.owner.empty() && now < e.expires_at) return Errc::kLockHeld;
  e.owner.assign(owner);
  e.fence += 1;
  e.expires_at = now + ttl;
  return LockGrant{e.fence, e.expires_at};
}

Result<LockGrant> MemoryLockService::renew(std::string_view agent_id, std::string_view owner,
                                           std::uint64_t fence, Nanos ttl) {
  if (ttl <= Nanos::zero()) return Errc::kInvalidArgument;
  const TimePoint now = clock_.now();
  std::lock_guard lk(mu_);
  const auto it = locks_.find(agent_id);
  if (it == locks_.end()) return Errc::kLockLost;
  Entry& e = it->second;
  // The TTL may have run out: the lock is still ours while nobody took it (same token, owner set).
  if (e.owner != owner || e.fence != fence) return Errc::kLockLost;
  e.expires_at = now + ttl;
  return LockGrant{e.fence, e.expires_at};
}

Result<void> MemoryLockService::release(std::string_view agent_id, std::string_view owner,
                                        std::uint64_t fence) {
  const TimePoint now = clock_.now();
  std::lock_guard lk(mu_);
  const auto it = locks_.find(agent_id);
  if (it == locks_.end()) return {};
  Entry& e = it->second;
  if (e.owner.empty()) return {};                         // already free
  if (e.owner == owner && e.fence == fence) {
    e.owner.clear();
    return {};
  }
  if (now >= e.expires_at) return {};  // someone else's lock, expired: ours is long gone, nothing to do
  return Errc::kLockLost;
}

std::size_t MemoryLockService::entries() const {
  std::lock_guard lk(mu_);
  return locks_.size();
}

}  // namespace lab::runtime
