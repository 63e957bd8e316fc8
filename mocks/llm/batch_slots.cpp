#include "mocks/llm/batch_slots.hpp"

#include <algorithm>

namespace lab::mocks::llm {

BatchSlots::Admit BatchSlots::acquire(const std::shared_ptr<Waiter>& waiter) {
  std::lock_guard lock(mutex_);
  if (closed_) return Admit::kRejected;
  if (running_.load(std::memory_order_relaxed) < max_running_) {
    running_.fetch_add(1, std::memory_order_relaxed);
    return Admit::kRunning;
  }
  if (static_cast<int>(queue_.size()) >= max_waiting_) return Admit::kRejected;
  queue_.push_back(waiter);
  waiting_.store(static_cast<int>(queue_.size()), std::memory_order_relaxed);
  return Admit::kQueued;
}

void BatchSlots::release() {
  std::shared_ptr<Waiter> next;
  {
    std::lock_guard lock(mutex_);
    if (!queue_.empty()) {
      next = std::move(queue_.front());
      queue_.pop_front();
      waiting_.store(static_cast<int>(queue_.size()), std::memory_order_relaxed);
      next->granted.store(true, std::memory_order_release);  // the slot passes on; running_ stays
    } else {
      running_.fetch_sub(1, std::memory_order_relaxed);
    }
  }
  if (next && next->wake) next->wake();
}

bool BatchSlots::cancel(const std::shared_ptr<Waiter>& waiter) {
  std::lock_guard lock(mutex_);
  if (waiter->granted.load(std::memory_order_acquire)) return false;
  const auto it = std::find(queue_.begin(), queue_.end(), waiter);
  if (it != queue_.end()) queue_.erase(it);
  waiting_.store(static_cast<int>(queue_.size()), std::memory_order_relaxed);
  return true;
}

void BatchSlots::close() {
  std::lock_guard lock(mutex_);
  closed_ = true;
  queue_.clear();
  waiting_.store(0, std::memory_order_relaxed);
}

}  // namespace lab::mocks::llm
