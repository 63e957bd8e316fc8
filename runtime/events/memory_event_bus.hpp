#pragma once
// EventBus in memory: the embedded default. One mutex over a map of per-task streams; callbacks
// run with it held (see EventCallback). Bounded four ways, all on the injected Clock:
//   - max_events_per_stream: older events of a stream are trimmed (Redis MAXLEN), so a late
//     subscriber may see `truncated`; the terminal event, being newest, is never trimmed;
//   - retention: a finished stream (terminal event appended) is dropped this long after it ended;
//   - idle_timeout: an open stream with no subscriber and no append for this long is dropped
//     (its task was lost; the ledger will say so);
//   - max_streams / max_total_bytes: over either, the oldest finished streams are dropped first;
//     when none is left, opening a stream or appending a non-terminal event fails with
//     kLimitExceeded (a terminal event is always accepted, so every stream can still end).
// Expiry runs inside open/append/read/subscribe (finished streams: each call; the idle scan: at
// most every idle_timeout / 4), and on demand with purge_expired().

#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/clock/clock.hpp"
#include "runtime/api/event_bus.hpp"
#include "runtime/api/string_key.hpp"

namespace lab::runtime {

struct MemoryEventBusConfig {
  std::size_t max_events_per_stream = 4096;
  std::size_t max_streams = 100'000;
  std::size_t max_total_bytes = std::size_t{256} << 20;  ///< event data + kEventOverheadBytes each
  Nanos retention = Seconds(60);
  Nanos idle_timeout = Seconds(600);
};

struct EventBusStats {
  std::size_t streams = 0;
  std::size_t open_streams = 0;
  std::size_t subscribers = 0;
  std::size_t bytes = 0;
  std::uint64_t appended = 0;
  std::uint64_t trimmed_events = 0;    ///< dropped by max_events_per_stream
  std::uint64_t expired_streams = 0;   ///< dropped by retention or idle_timeout
  std::uint64_t evicted_streams = 0;   ///< finished streams dropped early by a bound
  std::uint64_t rejected = 0;          ///< appends/opens refused with kLimitExceeded
};

class MemoryEventBus final : public EventBus {
 public:
  /// Accounting cost of one event besides its data (id, kind, deque slot).
  static constexpr std::size_t kEventOverheadBytes = 48;

  /// `clock` times retention and idleness; it must outlive the bus.
  MemoryEventBus(MemoryEventBusConfig config, const Clock& clock);
  ~MemoryEventBus() override;

  Result<void> open(std::string_view task_id) override;
  Result<std::uint64_t> append(std::string_view task_id, EventKind kind, std::string data) override;
  Result<EventSlice> read(std::string_view task_id, std::uint64_t after_id, std::size_t max_events) override;
  Result<Subscription> subscribe(std::string_view task_id, std::uint64_t after_id,
                                 EventCallback on_event) override;

  /// Drops expired streams now; returns how many.
  std::size_t purge_expired();
  EventBusStats stats() const;

 private:
  struct Subscriber {
    std::uint64_t id = 0;
    EventCallback on_event;
    bool cancelled = false;
  };
  struct Stream {
    std::deque<Event> events;
    std::uint64_t next_id = 1;
    std::uint64_t trimmed_through = 0;  // highest id trimmed away
    std::size_t bytes = 0;
    bool finished = false;
    TimePoint finished_at;
    TimePoint last_activity;
    std::vector<Subscriber> subscribers;
  };
  using Streams = StringMap<Stream>;

  // All *_locked members run with mu_ held.
  Streams::iterator find_or_create_locked(std::string_view task_id, TimePoint now, std::error_code& ec);
  std::size_t expire_locked(TimePoint now, bool force_idle_scan);
  bool evict_one_finished_locked();
  void erase_locked(Streams::iterator it);
  void deliver_locked(Stream& s, const Event& e);
  void cancel(const std::string& task_id, std::uint64_t subscriber_id);

  const MemoryEventBusConfig config_;
  const Clock& clock_;
  mutable std::mutex mu_;
  Streams streams_;
  // Finished streams in the order they ended (= expiry order); entries whose stream is gone
  // already are skipped.
  std::deque<std::pair<TimePoint, std::string>> finished_;
  TimePoint last_idle_scan_;
  std::size_t bytes_ = 0;
  std::uint64_t next_subscriber_id_ = 1;
  EventBusStats counters_;
};

}  // namespace lab::runtime
