#pragma once
// Token pacing for many streams from one timer per I/O thread.
//
// A stream that waits for its next token's deadline registers an Entry here instead of arming
// its own Asio timer. Deadlines are rounded up to the pacing quantum, so every entry due in the
// same quantum sits in one slot; one timer expiry runs the whole slot, calling each entry's
// on_due() in turn on the wheel's thread. A streaming handler then sends its token from
// on_due() by queueing a non-blocking write in the wheel's SendBatch (Exchange::queue_chunk);
// once every entry of the tick has run, the wheel submits the batch — one io_uring_enter for
// all of the tick's sends where the kernel has io_uring — and each stream, told the result,
// re-registers. A token costs no coroutine resumption, no timer-heap insertion, no per-write
// timeout timer and no system call of its own — only its share of the batch's call, the
// kernel's send itself and a slot append. The stream's coroutine is woken (by the entry, not
// by the wheel) only when the stream ends or a socket is full.
//
// Waiting: a slot more than kSpinBelow away is waited for with a timer; a nearer one by
// re-posting a check to the io_context (which polls its sockets in between). On a busy
// thread the gap between two slots is short, and arming a timer, taking its interrupt and
// waking from epoll cost more than the gap (re-arming a near timerfd alone took 14 µs on the
// build VM); the post loop costs only the gap, and only when the gap is that short.
//
// Lifetime: the wheel owns no Asio object beyond the expiry of its current wait. Its timer
// lives in a small driver object held by the pending wait's handler, so destroying the
// io_context (server shutdown) destroys the timer with it, before or after the entries'
// coroutines in any order. The wheel itself must outlive the io_context and every Entry.
//
// Not thread-safe: one wheel per io_context, used only on that io_context's thread.

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/any_io_executor.hpp>

#include "common/clock/clock.hpp"
#include "common/http/send_batch.hpp"

namespace lab::mocks::llm {

class PacingWheel {
 public:
  /// Slots nearer than this are waited for by polling, farther ones with a timer.
  static constexpr Nanos kSpinBelow = Micros(50);

  /// Something that waits for a time. An entry is in at most one slot; scheduling it again
  /// moves it. Its destructor takes it out of the wheel.
  class Entry {
   public:
    Entry() = default;
    Entry(const Entry&) = delete;
    Entry& operator=(const Entry&) = delete;
    /// Called on the wheel's thread once the entry's slot time has passed. `now` is when the
    /// batch began (steady clock); the entry is no longer scheduled and may schedule itself
    /// again (for a time after `now`).
    virtual void on_due(TimePoint now) noexcept = 0;
    bool scheduled() const { return wheel_ != nullptr; }

   protected:
    ~Entry();

   private:
    friend class PacingWheel;
    PacingWheel* wheel_ = nullptr;  ///< set while scheduled
    std::int64_t slot_ = 0;         ///< the slot it sits in, while scheduled
  };

  /// `quantum`: slot width (deadlines are rounded up to a multiple of it; 0 means exact to the
  /// nanosecond, every distinct deadline its own slot).
  PacingWheel(boost::asio::any_io_executor executor, Nanos quantum);
  ~PacingWheel();
  PacingWheel(const PacingWheel&) = delete;
  PacingWheel& operator=(const PacingWheel&) = delete;

  /// Runs `entry.on_due` once `due` (rounded up to the quantum) has passed; at the next batch
  /// if it already has. Replaces an earlier schedule of the same entry.
  void schedule(Entry& entry, TimePoint due);
  /// Takes `entry` out (no-op when it is not scheduled).
  void cancel(Entry& entry);

  const boost::asio::any_io_executor& executor() const { return executor_; }
  Nanos quantum() const { return quantum_; }
  /// A buffer for entries to render into during on_due() (one per thread, so it stays in
  /// cache; its contents are theirs only until on_due() returns).
  std::string& scratch() { return scratch_; }
  /// The sends of the tick being run: entries queue into it from on_due(); the wheel submits
  /// it when the tick's entries have run (and its sinks may schedule again from there).
  http::SendBatch& batch() { return batch_; }

  /// Entries scheduled now.
  std::size_t size() const { return size_; }
  /// Batches run so far (timer expiries and polls that found a slot due), and entries run by
  /// them (entries per batch = the batching).
  std::uint64_t batches() const { return batches_; }
  std::uint64_t runs() const { return runs_; }

 private:
  struct Driver;
  TimePoint slot_time(std::int64_t slot) const;
  std::int64_t slot_of(TimePoint due) const;
  void arm();
  void on_expiry();
  void on_poll();
  std::shared_ptr<Driver> driver();

  boost::asio::any_io_executor executor_;
  Nanos quantum_;
  /// Slot → entries due in it (slot = the rounded deadline in quanta, or in ns when exact).
  std::map<std::int64_t, std::vector<Entry*>> slots_;
  /// The slot being run by on_expiry (entries cancelled meanwhile are nulled in it).
  std::vector<Entry*>* running_ = nullptr;
  std::size_t size_ = 0;
  Driver* driver_ = nullptr;      ///< alive while a wait is pending
  std::int64_t armed_slot_ = 0;   ///< the slot the pending wait is for
  std::uint64_t generation_ = 0;  ///< bumped on every re-arm; stale expiries are ignored
  bool polling_ = false;          ///< a poll is posted
  bool in_tick_ = false;          ///< on_expiry is running entries or submitting their sends
  std::uint64_t batches_ = 0;
  std::uint64_t runs_ = 0;
  std::vector<std::vector<Entry*>> spare_;  ///< emptied slot vectors, reused
  std::string scratch_;
  http::SendBatch batch_;
};

}  // namespace lab::mocks::llm
