#pragma once
// TaskQueue on Redis Streams with a consumer group: what many gateway and worker processes share
// (seed 001's Redis Streams consumer groups, seed 003's priority queues). At-least-once, like the
// in-memory queue, with the same contract; every operation is one Lua script, so each is atomic
// on the server whatever the number of processes.
//
// Keys (all under one hash tag, so the scripts would also run on a cluster slot):
//   {<name>}:q:0 .. :q:2   a stream per priority, consumer group <group>; a task is an entry
//                          (t = task id, a = agent id, p = payload)
//   {<name>}:nack:0 .. :2  ids of entries given back by nack (waiting, not leased)
//   {<name>}:dead          the dead-letter stream, MAXLEN max_dead_letters
//   {<name>}:stats         counters shared by all processes (enqueued, leased, acked, ...)
//
// Leases. lease = XREADGROUP of a new entry (or XAUTOCLAIM of a due one), then XCLAIM JUSTID
// IDLE (horizon - lease_duration): the entry's idle time (Redis's own clock, shared by every
// process) reaches `lease_horizon` exactly when the lease ends, and XAUTOCLAIM with min-idle-time
// = lease_horizon takes it back then — from a consumer that died, or one that is just late.
// extend = XCLAIM JUSTID IDLE again; nack(delay) = IDLE (horizon - delay) plus a nack mark (the
// same entry, delivered again after `delay`, ahead of newer tasks). delivery_count is XPENDING's
// delivery counter; an entry that comes due with max_deliveries deliveries goes to the dead-letter
// stream with reason "lease expired". ack = XACK + XDEL (acked tasks leave the stream, so XLEN
// minus the pending count is the undelivered depth). Consumers (worker ids) that own nothing and
// were idle for lease_horizon are dropped from the group every reap_consumers_every leases.
//
// Lease expiry runs on the Redis server's clock; the queue's Clock only stamps Lease::expires_at
// and extend's result (now + duration on the caller's clock). Receipts are
// "<priority>/<entry id>/<delivery count>".
//
// Waiting. One waiting lease per queue object blocks with XREAD BLOCK on the three streams from
// their last ids (woken by any process's enqueue); the other waiting threads of the process wait
// on a condition variable for its word, and each thread served after waiting wakes one more — so
// an enqueue wakes about one thread per process, not every waiting worker (each would run the
// lease script for nothing). Waits are cut into slices of at most poll_interval so that due
// leases and nacked tasks (which add no entry) are seen within that time. close() wakes them all
// (CLIENT UNBLOCK for the one in XREAD). The blocked lease holds one pool connection.
//
// Failures. Redis unreachable: enqueue/ack/nack/... answer kUnavailable (never retried blindly:
// an enqueue whose reply was lost may have been applied, and the task is then delivered — the
// stores' idempotency keys make that harmless); lease retries until its wait ends. A lost
// consumer group (Redis restarted without its data) is re-created on the next call.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "common/clock/clock.hpp"
#include "runtime/api/task_queue.hpp"
#include "runtime/redis/redis_connection.hpp"

namespace lab::runtime {

struct RedisQueueConfig {
  std::string name = "agentlab";        ///< key namespace: {name}:q:0 ...
  std::string group = "workers";        ///< the consumer group
  std::size_t max_depth = 10'000;       ///< waiting tasks (all priorities) before kQueueFull
  std::uint32_t max_deliveries = 5;     ///< deliveries without an ack before the dead-letter stream
  std::size_t max_dead_letters = 10'000;
  Nanos lease_horizon = Seconds(3600);  ///< longest lease, extend or nack delay (XAUTOCLAIM min-idle)
  Millis poll_interval{50};             ///< longest XREAD BLOCK slice of a waiting lease
  std::uint64_t reap_consumers_every = 1000;  ///< every N leases, drop consumers idle for
                                              ///< lease_horizon that own nothing
};

class RedisTaskQueue final : public TaskQueue {
 public:
  /// `pool` and `clock` must outlive the queue. Nothing is sent until the first call.
  RedisTaskQueue(RedisQueueConfig config, redis::RedisPool& pool, const Clock& clock);
  ~RedisTaskQueue() override;

  EnqueueResult enqueue(Task task) override;
  /// Also kInvalidArgument for a lease_duration over lease_horizon, and kUnavailable when Redis
  /// stayed unreachable for the whole wait.
  Result<Lease> lease(std::string_view consumer, Nanos lease_duration, Nanos wait) override;
  Result<void> ack(std::string_view receipt) override;
  /// A delay over lease_horizon is cut to it.
  Result<void> nack(std::string_view receipt, Nanos delay) override;
  Result<void> dead_letter(std::string_view receipt, std::string_view reason) override;
  Result<TimePoint> extend(std::string_view receipt, Nanos lease_duration) override;
  /// Gauges from the server (all processes); on Redis errors, zeros.
  QueueStats stats() override;
  std::vector<DeadLetter> dead_letters(std::size_t limit) override;
  void close() override;

  /// The keys, for tests and operators (redis-cli).
  std::string stream_key(Priority p) const;
  std::string dead_key() const { return tag_ + ":dead"; }

 private:
  struct Receipt {
    std::size_t priority = 0;
    std::string id;
    std::uint32_t delivery = 0;
  };
  static bool parse_receipt(std::string_view text, Receipt& out);

  // Runs a script on a pooled connection; re-creates the groups and retries once on NOGROUP.
  Result<redis::RedisReply> run(redis::RedisConnection& conn, const redis::RedisScript& script,
                                const std::vector<std::string>& keys, const std::vector<std::string>& args);
  Result<redis::RedisReply> run(const redis::RedisScript& script, const std::vector<std::string>& keys,
                                const std::vector<std::string>& args);
  std::error_code ensure_groups(redis::RedisConnection& conn);
  // One non-blocking lease attempt: a lease, kNoTask (with the streams' last ids), or an error.
  Result<Lease> try_lease(redis::RedisConnection& conn, std::string_view consumer, Nanos lease_duration,
                          std::vector<std::string>& last_ids);
  std::vector<std::string> all_keys() const;
  std::vector<std::string> receipt_keys(std::size_t priority) const;
  // Blocks up to `slice` until a stream may have something new (see Waiting).
  std::error_code wait_for_work(const std::vector<std::string>& last_ids, Nanos slice);
  void wake_one_waiter();
  void unblock_waiters();

  const RedisQueueConfig config_;
  redis::RedisPool& pool_;
  const Clock& clock_;
  const std::string tag_;  // "{name}"
  std::atomic<bool> groups_ready_{false};
  std::atomic<bool> closed_{false};
  std::mutex gate_mu_;
  std::condition_variable gate_cv_;
  bool gate_leader_ = false;           // a thread of ours is in XREAD BLOCK
  std::uint64_t gate_generation_ = 0;  // bumped to wake waiters
  std::mutex waiters_mu_;
  std::unordered_multiset<long long> waiters_;  // client ids of connections in XREAD BLOCK
};

}  // namespace lab::runtime
