#pragma once
// A worker: seed 000's "Worker Pool" member. It leases chat tasks from the queue, runs each
// agent's turns one at a time through its Scheduler (LRU of resident agents, hibernation), and
// ends every task it owns with exactly one terminal event before it acks.
//
// Threads: one io thread (all turns, the LLM client, the tool, timers, bookkeeping) and one
// leaser thread that blocks in TaskQueue::lease (the in-memory queue waits on a condition
// variable, which must never stall the io thread) while fewer than `concurrency` tasks are held,
// and posts each lease to the io thread.
//
// A task's life (on the io thread):
//   submit to the scheduler (a busy agent parks it behind its running turn; the lease is kept
//   and heartbeated) → idempotency checks (turn already committed → done, replayed; stream
//   already ended → ack) → begin_turn (agent lock + fence; kLockHeld: nack with a delay, another
//   worker runs the agent) → the turn (AgentTurnRunner) → commit_turn (fenced, keyed by the task
//   id; store errors retried per the seed's checkpoint policy) → end_turn (agent ACTIVE, lock
//   released) → terminal event → ack → the agent's next parked task.
//
// Never lost: a lease is acked only after the terminal event; a worker that dies leaves its
// leases to expire and be redelivered; the task id makes the redelivered turn idempotent
// (commit_turn stores it once, the bus refuses a second terminal event).

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>

#include "common/clock/clock.hpp"
#include "runtime/api/agent_store.hpp"
#include "runtime/api/event_bus.hpp"
#include "runtime/api/lock_service.hpp"
#include "runtime/api/message_store.hpp"
#include "runtime/api/task_queue.hpp"
#include "runtime/resilience/circuit_breaker.hpp"
#include "runtime/resilience/degradation.hpp"
#include "runtime/resilience/retry.hpp"
#include "runtime/scheduler/scheduler.hpp"
#include "runtime/service/runtime_metrics.hpp"
#include "runtime/worker/agent_turn.hpp"
#include "runtime/worker/llm_client.hpp"
#include "runtime/worker/simulated_tool.hpp"

namespace lab::runtime {

inline constexpr std::string_view kStoreBreaker = "store";

struct WorkerConfig {
  std::string worker_id = "worker-1";
  int concurrency = 256;                   ///< tasks held at once (running + parked)
  Nanos lease_duration = Seconds(30);
  Nanos lease_wait = Millis(200);          ///< the leaser's blocking wait per lease() call
  Nanos heartbeat_interval = Seconds(10);  ///< lease extends and agent-lock renewals
  Nanos tick_interval = Seconds(1);        ///< scheduler.tick() (idle hibernation)
  Nanos lock_retry_delay = Millis(20);     ///< nack delay × delivery count when the agent is busy elsewhere
  SchedulerConfig scheduler;               ///< worker_id is overwritten with this worker's
  TurnConfig turn;
  LlmClientConfig llm;
  ToolConfig tool;
  resilience::RetryPolicy store_retry = resilience::RetryPolicy::seed_checkpoint_write();
  resilience::CircuitBreakerConfig store_breaker = resilience::CircuitBreakerConfig::seed_database();
  /// > 0: the turn's store calls (the idempotency check, begin and end of turn, the commit) run
  /// on a pool of this many threads while the io thread goes on streaming other turns — a
  /// PostgreSQL call is a round trip and a commit an fsync. 0: inline (in-memory backends).
  int store_threads = 0;
  /// The queue is shared with other processes (Redis): stop() stops leasing at once and only
  /// finishes what it holds — what is still queued belongs to the other workers, not to this
  /// drain. false (in memory): stop() drains the queue first.
  bool shared_queue = false;
  std::uint64_t seed = 1;
};

/// The degradation state a turn runs under.
struct DegradationView {
  int level = 0;
  resilience::DegradationFeatures features;
};

struct WorkerDeps {
  const Clock& clock;
  TaskQueue& queue;
  EventBus& bus;
  AgentStore& agents;
  MessageStore& messages;
  LockService& locks;
  resilience::CircuitBreakerRegistry& breakers;
  std::function<DegradationView()> degradation;  ///< thread-safe, cheap
  RuntimeMetrics& metrics;
};

struct WorkerCounts {
  std::size_t held = 0;     ///< leases held (running + parked)
  std::uint64_t leased = 0;
  std::uint64_t acked = 0;
  std::uint64_t nacked = 0;
  std::uint64_t lease_lost = 0;
};

class Worker {
 public:
  Worker(WorkerConfig config, WorkerDeps deps);
  ~Worker();  ///< stop(0)
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  /// Crash recovery in the store (agents this worker id left PROCESSING/ACTIVE), then starts the
  /// io and leaser threads.
  void start();
  /// Stops leasing, gives turns in flight up to `drain` to finish, then stops the threads.
  /// Tasks still held stay unacked: the queue redelivers them when their leases expire (with
  /// drain 0 this is a crash, as tests use it). Idempotent.
  void stop(Nanos drain);

  /// After stop(): the tasks that were held and did not end (their leases are unacked).
  const std::vector<Task>& abandoned() const { return abandoned_; }

  const std::string& id() const { return config_.worker_id; }
  Scheduler& scheduler() { return scheduler_; }
  WorkerCounts counts() const;

  /// The hibernate command (thread-safe).
  HibernateOutcome hibernate(std::string_view agent_id);
  /// subscription.cancelled: pauses the user; tasks parked behind the user's busy agents end
  /// with an error event (thread-safe).
  Result<std::size_t> pause_user(std::string_view user_id);
  Result<std::size_t> renew_user(std::string_view user_id);

  /// Probes LLM provider `index` through its breaker on this worker's thread (see
  /// LlmClient::probe); the future is ready when the probe finished.
  std::future<bool> probe_llm(std::size_t index);
  /// Probes the simulated tool through the tools breaker.
  std::future<bool> probe_tool();

 private:
  struct Held {
    Lease lease;
    std::string user;
    std::string message;
    std::uint64_t fence = 0;  ///< the running turn's agent-lock token (0: not running)
    bool lost = false;        ///< the lease went to another consumer
  };

  void leaser_loop();
  void accept_lease(Lease lease);
  /// Accepts the leases the leaser handed over in incoming_. io thread.
  void take_incoming();
  boost::asio::awaitable<void> handle(std::string receipt);
  boost::asio::awaitable<void> run_chain(std::string agent_id, std::string task_id, std::string receipt);
  /// Runs one task's turn (the agent's head task); returns the agent's next task, if any.
  boost::asio::awaitable<std::optional<std::string>> run_one(const std::string& agent_id,
                                                             const std::string& task_id,
                                                             const std::string& receipt);
  boost::asio::awaitable<void> heartbeat_loop();
  boost::asio::awaitable<void> tick_loop();
  /// Acks (or not), forgets the lease and frees its slot. io thread.
  void finish(const std::string& receipt, bool ack);
  void nack(const std::string& receipt, Nanos delay);
  /// Appends a terminal event and counts it (completed / failed / duplicate).
  void terminal(const std::string& task_id, EventKind kind, std::string data, std::string_view reason);
  /// Ends parked tasks the scheduler dropped (paused membership) with an error event. io thread.
  void end_parked(const std::vector<std::string>& task_ids, std::string_view code, std::string_view message);
  void spawn(boost::asio::awaitable<void> work);
  /// Runs `call` on the store pool (inline when there is none) and resumes on the io thread
  /// with its result.
  template <typename F>
  boost::asio::awaitable<std::invoke_result_t<F&>> off_thread(F call);

  WorkerConfig config_;
  WorkerDeps deps_;
  Scheduler scheduler_;
  resilience::CircuitBreaker& store_breaker_;
  std::unique_ptr<boost::asio::io_context> io_;
  std::unique_ptr<LlmClient> llm_;
  std::unique_ptr<SimulatedTool> tool_;
  std::unique_ptr<AgentTurnRunner> runner_;
  std::unique_ptr<boost::asio::thread_pool> store_pool_;  // null: store calls inline
  std::mt19937_64 rng_;

  // io thread only
  std::unordered_map<std::string, Held> held_;                        // by receipt
  std::unordered_map<std::string, std::deque<std::string>> waiting_;  // parked: task id → receipts
  std::vector<Task> abandoned_;  // filled by stop()
  std::mutex incoming_mutex_;
  std::vector<Lease> incoming_;  // leased, not yet taken by the io thread; guarded by incoming_mutex_

  std::thread io_thread_;
  std::thread leaser_thread_;
  std::atomic<bool> stopping_{false};
  bool started_ = false;
  bool stopped_ = false;
  std::mutex lifecycle_mutex_;
  std::atomic<int> in_flight_{0};
  std::mutex slots_mutex_;  // with slots_cv_: the leaser waits for a free slot; stop() for drain
  std::condition_variable slots_cv_;
  bool leaser_done_ = false;  // guarded by slots_mutex_
  std::atomic<std::uint64_t> leased_{0}, acked_{0}, nacked_{0}, lease_lost_{0};
};

}  // namespace lab::runtime
