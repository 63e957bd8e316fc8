#pragma once
// The task queue between the gateway and the workers (seed 000's agent:messages / agent:commands,
// seed 003's priority queues). At-least-once: a task stays the queue's until a consumer acks it;
// a lease that is not acked before it expires (the worker vanished) is delivered again, and a task
// delivered max_deliveries times without an ack goes to the dead-letter list. Exactly-once
// *effects* come from the stores (task id as idempotency key, fencing tokens), not from here.
//
// Implementations: MemoryTaskQueue (runtime/queue/), and for issue 5 a Redis Streams queue (one
// stream per priority, XREADGROUP to lease, XACK to ack, XAUTOCLAIM for expired leases, a
// dead-letter stream, XPENDING's delivery count as delivery_count).

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "common/clock/clock.hpp"
#include "runtime/api/result.hpp"

namespace lab::runtime {

/// Strict priority: a lease takes the oldest task of the highest non-empty priority (seed 003:
/// "high-priority requests processed first"). kHigh is 0 so it indexes first.
enum class Priority : std::uint8_t { kHigh = 0, kMedium = 1, kNormal = 2 };
inline constexpr std::size_t kPriorityCount = 3;
/// "high", "medium", "normal".
std::string_view to_string(Priority p) noexcept;
/// The inverse of to_string; nullopt for anything else.
std::optional<Priority> parse_priority(std::string_view text) noexcept;

/// One unit of work. The queue never parses the payload.
struct Task {
  std::string task_id;   ///< unique per task (the gateway's UUID); the queue does not deduplicate
  std::string agent_id;  ///< the agent the task is for (the scheduler orders turns per agent)
  Priority priority = Priority::kNormal;
  std::string payload;   ///< opaque to the queue (the gateway's JSON: kind, user, message, ...)
};

/// What enqueue did. `error` is empty when the task was accepted.
struct EnqueueResult {
  std::error_code error;   ///< kQueueFull (over the bound), kClosed, kInvalidArgument, kUnavailable
  std::size_t depth = 0;   ///< tasks waiting for a consumer (all priorities) after this call
  bool accepted() const noexcept { return !error; }
};

/// A leased task. The receipt names this delivery: ack/nack/extend take it.
struct Lease {
  Task task;
  std::string receipt;              ///< opaque; identifies the task *and* this delivery
  std::uint32_t delivery_count = 0; ///< 1 on the first delivery, 2 on the first redelivery, ...
  TimePoint expires_at;             ///< on the queue's Clock; extend() moves it
};

/// A task that was delivered too often (or nacked for good) and left the queue.
struct DeadLetter {
  Task task;
  std::uint32_t delivery_count = 0;
  std::string reason;  ///< "lease expired", "nacked", or the reason given to nack
};

/// Counters and gauges for /api/system and /metrics.
struct QueueStats {
  std::array<std::size_t, kPriorityCount> depth{};  ///< waiting (ready or delayed) per priority
  std::size_t in_flight = 0;        ///< leased, not yet acked
  std::size_t dead_letters = 0;     ///< retained on the dead-letter list
  std::uint64_t enqueued = 0;       ///< accepted by enqueue
  std::uint64_t rejected_full = 0;  ///< refused with kQueueFull
  std::uint64_t leased = 0;         ///< deliveries (first or later)
  std::uint64_t acked = 0;
  std::uint64_t nacked = 0;
  std::uint64_t redelivered = 0;    ///< leases that expired and went back to the queue
  std::uint64_t dead_lettered = 0;  ///< tasks moved to the dead-letter list, ever
  std::size_t total_depth() const {
    std::size_t n = 0;
    for (auto d : depth) n += d;
    return n;
  }
};

/// The queue. All members are thread-safe; any number of producers and consumers.
class TaskQueue {
 public:
  virtual ~TaskQueue() = default;

  /// Adds a task at the back of its priority. Refused with kQueueFull (and the current depth,
  /// for the gateway's 503 + Retry-After) when the waiting tasks of all priorities reach the
  /// queue's bound; kClosed after close(); kInvalidArgument for an empty task or agent id.
  /// Tasks coming back from expired leases or nacks are always readmitted, even over the bound.
  virtual EnqueueResult enqueue(Task task) = 0;

  /// Takes the next task for `consumer` (a worker id, for crash diagnosis) for `lease_duration`.
  /// Leases that expired first go back to the queue (and those delivered max_deliveries times to
  /// the dead-letter list), then the oldest task of the highest priority is leased. When nothing
  /// is ready, blocks up to `wait` (0: do not block) on a condition variable; enqueue, nack and
  /// close wake waiters. `wait` is real time; lease expiry is on the queue's Clock.
  /// Errors: kNoTask (nothing before the wait ended), kClosed (closed and drained).
  virtual Result<Lease> lease(std::string_view consumer, Nanos lease_duration, Nanos wait) = 0;

  /// Done with the task: it leaves the queue. Idempotent: acking an already-acked receipt (or a
  /// receipt whose lease expired but was not redelivered yet) succeeds. kLeaseLost when the task
  /// was redelivered since (another consumer owns it now); kInvalidArgument for a malformed receipt.
  virtual Result<void> ack(std::string_view receipt) = 0;

  /// Gives the task back: visible again after `delay` (0: at once, ahead of newer tasks of its
  /// priority). A task that has had max_deliveries deliveries goes to the dead-letter list
  /// instead. kLeaseLost when redelivered since; kNotFound when it was acked.
  virtual Result<void> nack(std::string_view receipt, Nanos delay) = 0;

  /// Moves the task to the dead-letter list now (a poison task), with `reason`.
  /// kLeaseLost when redelivered since; kNotFound when it was acked.
  virtual Result<void> dead_letter(std::string_view receipt, std::string_view reason) = 0;

  /// Heartbeat: the lease now expires `lease_duration` from now. Returns the new expiry. Works
  /// after the expiry too, until another lease() reclaims the task. kLeaseLost once the task went
  /// back to the queue or to another consumer; kNotFound when acked.
  virtual Result<TimePoint> extend(std::string_view receipt, Nanos lease_duration) = 0;

  /// Gauges and counters (a consistent snapshot).
  virtual QueueStats stats() = 0;

  /// The newest `limit` dead letters, oldest first.
  virtual std::vector<DeadLetter> dead_letters(std::size_t limit) = 0;

  /// Stops accepting: enqueue answers kClosed from now on; lease keeps serving what is queued
  /// (graceful drain) and answers kClosed, without waiting, once nothing is ready. Idempotent.
  virtual void close() = 0;
};

}  // namespace lab::runtime
