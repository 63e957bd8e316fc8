#include "runtime/queue/memory_queue.hpp"

#include <algorithm>
#include <charconv>

namespace lab::runtime {
namespace {

struct ReceiptParts {
  std::uint64_t seq = 0;
  std::uint32_t delivery = 0;
};

// "<seq>.<delivery>", both decimal and > 0.
bool parse_receipt(std::string_view text, ReceiptParts& out) {
  const auto dot = text.find('.');
  if (dot == std::string_view::npos) return false;
  const char* const begin = text.data();
  const char* const mid = begin + dot;
  const char* const end = begin + text.size();
  auto [p1, e1] = std::from_chars(begin, mid, out.seq);
  if (e1 != std::errc() || p1 != mid || out.seq == 0) return false;
  auto [p2, e2] = std::from_chars(mid + 1, end, out.delivery);
  return e2 == std::errc() && p2 == end && out.delivery != 0;
}

std::size_t index_of(Priority p) { return static_cast<std::size_t>(p); }

}  // namespace

MemoryTaskQueue::MemoryTaskQueue(MemoryQueueConfig config, const Clock& clock)
    : config_(config), clock_(clock) {}

std::string MemoryTaskQueue::make_receipt(std::uint64_t seq, std::uint32_t delivery) {
  return std::to_string(seq) + '.' + std::to_string(delivery);
}

EnqueueResult MemoryTaskQueue::enqueue(Task task) {
  const bool valid = !task.task_id.empty() && !task.agent_id.empty() &&
                     index_of(task.priority) < kPriorityCount;
  std::unique_lock lk(mu_);
  const std::size_t depth = depth_locked();
  if (!valid) return {make_error_code(Errc::kInvalidArgument), depth};
  if (closed_) return {make_error_code(Errc::kClosed), depth};
  if (depth >= config_.max_depth) {
    ++counters_.rejected_full;
    return {make_error_code(Errc::kQueueFull), depth};
  }
  const std::uint64_t seq = next_seq_++;
  const std::size_t p = index_of(task.priority);
  entries_.emplace(seq, Entry{std::move(task)});
  ready_[p].push_back(seq);
  ++waiting_[p];
  ++counters_.enqueued;
  lk.unlock();
  cv_.notify_one();
  return {{}, depth + 1};
}

Result<Lease> MemoryTaskQueue::lease(std::string_view consumer, Nanos lease_duration, Nanos wait) {
  if (consumer.empty() || lease_duration <= Nanos::zero()) return Errc::kInvalidArgument;
  const auto real_deadline = std::chrono::steady_clock::now() + wait;
  std::unique_lock lk(mu_);
  for (;;) {
    const TimePoint now = clock_.now();
    const std::size_t reclaimed = reclaim_locked(now);
    std::uint64_t seq = 0;
    if (pop_ready_locked(seq)) {
      Entry& e = entries_.at(seq);
      --waiting_[index_of(e.task.priority)];
      e.where = Where::kLeased;
      e.deliveries += 1;
      e.due = now + lease_duration;
      timers_.emplace(e.due, seq);
      ++counters_.in_flight;
      ++counters_.leased;
      Lease out{e.task, make_receipt(seq, e.deliveries), e.deliveries, e.due};
      lk.unlock();
      if (reclaimed > 1) cv_.notify_all();  // more came back than this consumer takes
      return out;
    }
    if (closed_) return Errc::kClosed;
    const auto real_now = std::chrono::steady_clock::now();
    if (wait <= Nanos::zero() || real_now >= real_deadline) return Errc::kNoTask;
    // Sleep until woken, the wait ends, or the next lease/delay deadline (which may make a task
    // ready). Deadlines are on clock_; with a real clock the two time bases agree.
    auto until = real_deadline;
    if (!timers_.empty()) {
      const Nanos to_due = std::max<Nanos>(timers_.begin()->first - now, Millis(1));
      until = std::min(until, real_now + to_due);
    }
    cv_.wait_until(lk, until);
  }
}

std::size_t MemoryTaskQueue::reclaim_locked(TimePoint now) {
  std::array<std::vector<std::uint64_t>, kPriorityCount> back;  // in due order per priority
  std::size_t count = 0;
  while (!timers_.empty() && timers_.begin()->first <= now) {
    const std::uint64_t seq = timers_.begin()->second;
    timers_.erase(timers_.begin());
    auto it = entries_.find(seq);
    Entry& e = it->second;
    const std::size_t p = index_of(e.task.priority);
    if (e.where == Where::kLeased) {
      --counters_.in_flight;
      if (e.deliveries >= config_.max_deliveries) {
        bury_locked(it, "lease expired");
        continue;
      }
      ++counters_.redelivered;
      ++waiting_[p];
    }
    e.where = Where::kReady;
    back[p].push_back(seq);
    ++count;
  }
  // Returning tasks are older than anything enqueued since: they go ahead, in due order.
  for (std::size_t p = 0; p < kPriorityCount; ++p) {
    ready_[p].insert(ready_[p].begin(), back[p].begin(), back[p].end());
  }
  return count;
}

bool MemoryTaskQueue::pop_ready_locked(std::uint64_t& seq) {
  for (auto& fifo : ready_) {
    while (!fifo.empty()) {
      const std::uint64_t s = fifo.front();
      fifo.pop_front();
      const auto it = entries_.find(s);
      if (it != entries_.end() && it->second.where == Where::kReady) {
        seq = s;
        return true;
      }
    }
  }
  return false;
}

void MemoryTaskQueue::detach_locked(std::uint64_t seq, Entry& e) {
  switch (e.where) {
    case Where::kLeased:
      timers_.erase({e.due, seq});
      --counters_.in_flight;
      break;
    case Where::kDelayed:
      timers_.erase({e.due, seq});
      --waiting_[index_of(e.task.priority)];
      break;
    case Where::kReady:  // its number stays in ready_ as a stale one
      --waiting_[index_of(e.task.priority)];
      break;
  }
}

void MemoryTaskQueue::bury_locked(Entries::iterator it, std::string reason) {
  dead_.push_back(DeadLetter{std::move(it->second.task), it->second.deliveries, std::move(reason)});
  if (dead_.size() > config_.max_dead_letters) dead_.pop_front();
  ++counters_.dead_lettered;
  entries_.erase(it);
}

std::size_t MemoryTaskQueue::depth_locked() const {
  std::size_t n = 0;
  for (const auto w : waiting_) n += w;
  return n;
}

Result<MemoryTaskQueue::Entries::iterator> MemoryTaskQueue::find_locked(std::string_view receipt) {
  ReceiptParts parts;
  if (!parse_receipt(receipt, parts)) return Errc::kInvalidArgument;
  const auto it = entries_.find(parts.seq);
  if (it == entries_.end()) return Errc::kNotFound;
  if (it->second.deliveries != parts.delivery) return Errc::kLeaseLost;
  return it;
}

Result<void> MemoryTaskQueue::ack(std::string_view receipt) {
  std::lock_guard lk(mu_);
  auto found = find_locked(receipt);
  if (!found.ok()) {
    // Gone already (acked, or dead-lettered after this delivery): acking again is a no-op.
    if (found.error() == Errc::kNotFound) return {};
    return found.error();
  }
  const auto it = *found;
  detach_locked(it->first, it->second);
  entries_.erase(it);
  ++counters_.acked;
  return {};
}

Result<void> MemoryTaskQueue::nack(std::string_view receipt, Nanos delay) {
  std::unique_lock lk(mu_);
  auto found = find_locked(receipt);
  if (!found.ok()) return found.error();
  const auto it = *found;
  Entry& e = it->second;
  if (e.where != Where::kLeased) return {};  // its lease expired and it is back in the queue already
  const std::uint64_t seq = it->first;
  const std::size_t p = index_of(e.task.priority);
  detach_locked(seq, e);
  ++counters_.nacked;
  if (e.deliveries >= config_.max_deliveries) {
    bury_locked(it, "nacked");
    return {};
  }
  ++waiting_[p];
  if (delay <= Nanos::zero()) {
    e.where = Where::kReady;
    ready_[p].push_front(seq);
    lk.unlock();
    cv_.notify_one();
    return {};
  }
  e.where = Where::kDelayed;
  e.due = clock_.now() + delay;
  timers_.emplace(e.due, seq);
  lk.unlock();
  cv_.notify_all();  // waiters re-arm their sleep on the earlier deadline
  return {};
}

Result<void> MemoryTaskQueue::dead_letter(std::string_view receipt, std::string_view reason) {
  std::lock_guard lk(mu_);
  auto found = find_locked(receipt);
  if (!found.ok()) return found.error();
  const auto it = *found;
  detach_locked(it->first, it->second);
  bury_locked(it, std::string(reason));
  return {};
}

Result<TimePoint> MemoryTaskQueue::extend(std::string_view receipt, Nanos lease_duration) {
  if (lease_duration <= Nanos::zero()) return Errc::kInvalidArgument;
  std::lock_guard lk(mu_);
  auto found = find_locked(receipt);
  if (!found.ok()) return found.error();
  const auto it = *found;
  Entry& e = it->second;
  if (e.where != Where::kLeased) return Errc::kLeaseLost;  // back in the queue: the lease is gone
  timers_.erase({e.due, it->first});
  e.due = clock_.now() + lease_duration;
  timers_.emplace(e.due, it->first);
  return e.due;
}

QueueStats MemoryTaskQueue::stats() {
  std::lock_guard lk(mu_);
  QueueStats s = counters_;
  for (std::size_t p = 0; p < kPriorityCount; ++p) s.depth[p] = waiting_[p];
  s.dead_letters = dead_.size();
  return s;
}

std::vector<DeadLetter> MemoryTaskQueue::dead_letters(std::size_t limit) {
  std::lock_guard lk(mu_);
  const std::size_t n = std::min(limit, dead_.size());
  return std::vector<DeadLetter>(dead_.end() - static_cast<std::ptrdiff_t>(n), dead_.end());
}

void MemoryTaskQueue::close() {
  {
    std::lock_guard lk(mu_);
    closed_ = true;
  }
  cv_.notify_all();
}

}  // namespace lab::runtime
