#pragma once
// The load model's capacity: `max_num_seqs` sequences generate at once (vLLM's batch slots);
// up to `max_waiting` more wait in FIFO order for a slot; beyond that a request is refused
// (the handler answers 429 + Retry-After). Thread-safe; the waiting itself is the caller's
// (a Waiter's wake() is called, outside the lock, when it is granted a slot).

#include <atomic>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>

namespace lab::mocks::llm {

class BatchSlots {
 public:
  struct Waiter {
    std::function<void()> wake;       ///< called once when granted (from the releasing thread)
    std::atomic<bool> granted{false};
  };
  enum class Admit { kRunning, kQueued, kRejected };

  BatchSlots(int max_num_seqs, int max_waiting) : max_running_(max_num_seqs), max_waiting_(max_waiting) {}

  /// Takes a free slot (kRunning), or queues `waiter` (kQueued: it holds a slot once
  /// waiter->granted is true), or refuses (kRejected: queue full, or closed).
  Admit acquire(const std::shared_ptr<Waiter>& waiter);
  /// Gives a held slot back: to the oldest waiter if there is one, else frees it.
  void release();
  /// Withdraws a queued waiter. false if it was granted meanwhile (it then holds a slot and
  /// must release() it).
  bool cancel(const std::shared_ptr<Waiter>& waiter);
  /// Refuses new requests and drops the queue without waking it (shutdown; waiters notice
  /// by polling).
  void close();

  int running() const { return running_.load(std::memory_order_relaxed); }
  int waiting() const { return waiting_.load(std::memory_order_relaxed); }
  int capacity() const { return max_running_; }

 private:
  const int max_running_;
  const int max_waiting_;
  std::mutex mutex_;
  std::deque<std::shared_ptr<Waiter>> queue_;
  bool closed_ = false;
  std::atomic<int> running_{0};
  std::atomic<int> waiting_{0};
};

}  // namespace lab::mocks::llm
