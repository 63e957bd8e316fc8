#pragma once
// The per-task event stream between a worker and the SSE endpoint (seed 000's
// task:{taskId}:events, made replayable as DESIGN.md asks). A worker appends text_chunk,
// tool:start, tool:complete and finally exactly one terminal event (done or error); the gateway
// replays from an id (SSE Last-Event-ID) and follows new events. Streams are bounded: old events
// are trimmed, finished streams expire after a retention period.
//
// Implementations: MemoryEventBus (runtime/events/), and for issue 5 a Redis stream per task
// (XADD with explicit ids "0-<id>" so ids stay 1, 2, 3, ...; XRANGE to replay; XREAD BLOCK to
// follow; MAXLEN to trim; EXPIRE after the terminal event).

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "runtime/api/result.hpp"

namespace lab::runtime {

enum class EventKind : std::uint8_t { kTextChunk, kToolStart, kToolComplete, kDone, kError };
/// The SSE event names: "text_chunk", "tool:start", "tool:complete", "done", "error".
std::string_view to_string(EventKind k) noexcept;
std::optional<EventKind> parse_event_kind(std::string_view text) noexcept;
/// done and error end a stream.
inline bool is_terminal(EventKind k) noexcept { return k == EventKind::kDone || k == EventKind::kError; }

struct Event {
  std::uint64_t id = 0;  ///< 1, 2, 3, ... within the task's stream; the SSE `id:` field
  EventKind kind = EventKind::kTextChunk;
  std::string data;      ///< the SSE `data:` payload (JSON), opaque to the bus
};

/// A replay read.
struct EventSlice {
  std::vector<Event> events;  ///< ids > after_id, ascending, without gaps except trimmed ones
  bool truncated = false;     ///< some events after after_id were already trimmed away
  bool finished = false;      ///< the stream holds its terminal event (maybe beyond this slice)
};

/// Called for each event, in id order, with no gaps (other than trimming) and no duplicates.
/// It runs on the appending thread (memory) or the bus's reader thread (Redis) with the bus's
/// internal lock held: it must not block and must not call this EventBus, except to cancel its
/// own Subscription. Post the work to your executor.
using EventCallback = std::function<void(const Event&)>;

/// A live subscription; destroying or cancel()ing it stops deliveries. Move-only. It must not
/// outlive the bus that made it.
class Subscription {
 public:
  Subscription() = default;
  Subscription(std::function<void()> cancel, bool ended, bool truncated)
      : cancel_(std::move(cancel)), ended_(ended), truncated_(truncated) {}
  Subscription(Subscription&& o) noexcept
      : cancel_(std::exchange(o.cancel_, nullptr)), ended_(o.ended_), truncated_(o.truncated_) {}
  Subscription& operator=(Subscription&& o) noexcept {
    if (this != &o) {
      cancel();
      cancel_ = std::exchange(o.cancel_, nullptr);
      ended_ = o.ended_;
      truncated_ = o.truncated_;
    }
    return *this;
  }
  Subscription(const Subscription&) = delete;
  Subscription& operator=(const Subscription&) = delete;
  ~Subscription() { cancel(); }

  /// Stops deliveries. When it returns no callback of this subscription is running or will run
  /// (unless called from inside that callback, which is allowed). Idempotent.
  void cancel() {
    if (auto c = std::exchange(cancel_, nullptr)) c();
  }
  /// The stream had already ended when subscribing: every event after after_id (perhaps none)
  /// was delivered inside subscribe() and nothing more will come.
  bool ended() const noexcept { return ended_; }
  /// Events between after_id and the first delivered one had been trimmed away.
  bool truncated() const noexcept { return truncated_; }

 private:
  std::function<void()> cancel_;
  bool ended_ = false;
  bool truncated_ = false;
};

/// The bus. All members are thread-safe.
class EventBus {
 public:
  virtual ~EventBus() = default;

  /// Creates the task's (empty) stream if it does not exist, so that subscribe and read know the
  /// task (the gateway calls it when it accepts a task). Idempotent. kLimitExceeded when the bus
  /// holds its maximum number of streams and none can be expired.
  virtual Result<void> open(std::string_view task_id) = 0;

  /// Appends an event (creating the stream if needed) and returns its id. After a terminal
  /// event the stream is finished: further appends fail with kStreamFinished (so a second
  /// done/error is refused, never delivered). kLimitExceeded when a byte or stream bound is hit
  /// and nothing can be expired; a terminal event is always accepted on an existing stream.
  virtual Result<std::uint64_t> append(std::string_view task_id, EventKind kind, std::string data) = 0;

  /// Replays up to max_events events with id > after_id (0: from the start). kNotFound when the
  /// task's stream does not exist (never opened, or expired).
  virtual Result<EventSlice> read(std::string_view task_id, std::uint64_t after_id,
                                  std::size_t max_events) = 0;

  /// Delivers the retained events with id > after_id to `on_event` (inside this call), then every
  /// new event as it is appended, until the terminal event (delivered last) or cancel().
  /// kNotFound when the stream does not exist.
  virtual Result<Subscription> subscribe(std::string_view task_id, std::uint64_t after_id,
                                         EventCallback on_event) = 0;
};

}  // namespace lab::runtime
