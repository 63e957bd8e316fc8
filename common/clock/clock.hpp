#pragma once
// Time sources. Code that schedules or times things takes a Clock& so tests can run it on a
// SimulatedClock: no sleeps, no flakiness, exact expectations.

#include <atomic>
#include <chrono>

namespace lab {

using Nanos = std::chrono::nanoseconds;
using Micros = std::chrono::microseconds;
using Millis = std::chrono::milliseconds;
using Seconds = std::chrono::seconds;
using TimePoint = std::chrono::steady_clock::time_point;

/// A monotonic time source. Thread-safe: now() may be called from any thread.
class Clock {
 public:
  virtual ~Clock() = default;
  /// The current monotonic time.
  virtual TimePoint now() const = 0;
};

/// The real monotonic clock (std::chrono::steady_clock).
class SteadyClock final : public Clock {
 public:
  TimePoint now() const override { return std::chrono::steady_clock::now(); }
  /// A process-wide instance, for code that was not handed a clock.
  static SteadyClock& instance() {
    static SteadyClock clock;
    return clock;
  }
};

/// A clock that only moves when told to. Starts at an arbitrary fixed epoch.
class SimulatedClock final : public Clock {
 public:
  SimulatedClock() = default;
  explicit SimulatedClock(TimePoint start) : now_ns_(start.time_since_epoch().count()) {}
  TimePoint now() const override {
    return TimePoint(Nanos(now_ns_.load(std::memory_order_acquire)));
  }
  /// Moves time forward by d (d >= 0).
  void advance(Nanos d) { now_ns_.fetch_add(d.count(), std::memory_order_acq_rel); }
  /// Jumps to t (t >= now()).
  void set(TimePoint t) { now_ns_.store(t.time_since_epoch().count(), std::memory_order_release); }

 private:
  std::atomic<Nanos::rep> now_ns_{Nanos(Seconds(1'000'000)).count()};
};

/// Microseconds between two time points, as the integer the histograms record.
inline std::int64_t micros_between(TimePoint from, TimePoint to) {
  return std::chrono::duration_cast<Micros>(to - from).count();
}

}  // namespace lab
