#pragma once
// Hands events (breaker transitions, degradation changes) to listeners outside the owner's
// mutex, in the order they happened. Only one thread delivers at a time (the `delivering`
// flag); a thread that finds a delivery in progress leaves its events to that thread, which
// re-checks the queue before it stops. Listeners may call back into the owner.
//
// Not synchronised itself: push() and add_listener() run under the owner's mutex, and
// deliver() takes that same mutex around its own bookkeeping.

#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

namespace lab::resilience {

template <class Event>
class OrderedDelivery {
 public:
  using Listener = std::function<void(const Event&)>;

  /// Caller holds the owner's mutex.
  void push(Event e) { pending_.push_back(std::move(e)); }
  /// Caller holds the owner's mutex.
  void add_listener(Listener l) { listeners_.push_back(std::make_shared<const Listener>(std::move(l))); }

  /// Caller does NOT hold `mutex` (the owner's); delivers everything pending, in order.
  void deliver(std::mutex& mutex) {
    {
      std::lock_guard lock(mutex);
      if (delivering_ || pending_.empty()) return;
      delivering_ = true;
    }
    for (;;) {
      std::deque<Event> batch;
      std::vector<std::shared_ptr<const Listener>> listeners;
      {
        std::lock_guard lock(mutex);
        if (pending_.empty()) {
          delivering_ = false;
          return;
        }
        batch.swap(pending_);
        listeners = listeners_;
      }
      for (const auto& event : batch)
        for (const auto& listener : listeners) (*listener)(event);
    }
  }

 private:
  std::deque<Event> pending_;
  bool delivering_ = false;
  std::vector<std::shared_ptr<const Listener>> listeners_;
};

}  // namespace lab::resilience
