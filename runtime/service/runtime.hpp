#pragma once
// The reference agent runtime in one process: gateway (HTTP API), queue, event bus, stores and
// locks, `workers` Worker instances, the circuit breakers and the degradation manager, wired
// together. `agentlab serve` runs one; the embedded stack and the tests start one in-process on
// port 0. Backends are in memory, or shared between processes (a Redis queue, bus and locks; a
// PostgreSQL store): then `role` may split the gateway and the workers into separate processes.
//
// Threads: `http_threads` io threads for the API (handlers never block for long: the backends
// are in memory), per worker one io thread (turns, LLM streams, tools, timers) plus one leaser
// thread (blocks in TaskQueue::lease), and one maintenance thread.
//
// Maintenance (every maintenance_interval, or maintain()): reads the breakers (which applies
// their time-driven OPEN → HALF_OPEN transitions), probes half-open dependencies nobody else is
// calling (the primary LLM while degradation routes to the backup, tools while they are off),
// recomputes the degradation level, ends dead-lettered tasks with an error event (so every
// accepted task still gets its terminal event), expires finished event streams and idle
// rate-limit buckets, and refreshes the gauges.
//
// Breaker transitions and degradation changes are logged to stderr as they happen:
//   agentlab runtime: breaker llm_primary CLOSED -> OPEN (failure_count_exceeded)
//   agentlab runtime: degradation 0 -> 1 REDUCED_QUALITY (llm_primary down: backup LLM)

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <boost/json/object.hpp>

#include "common/clock/clock.hpp"
#include "common/http/router.hpp"
#include "common/http/server.hpp"
#include "runtime/events/memory_event_bus.hpp"
#include "runtime/gateway/gateway.hpp"
#include "runtime/locks/memory_lock_service.hpp"
#include "runtime/queue/memory_queue.hpp"
#include "runtime/resilience/circuit_breaker.hpp"
#include "runtime/resilience/degradation.hpp"
#include "runtime/service/runtime_config.hpp"
#include "runtime/service/runtime_metrics.hpp"
#include "runtime/api/turn_stats_store.hpp"
#include "runtime/stores/memory_store.hpp"
#include "runtime/worker/worker.hpp"

namespace lab::runtime {

namespace redis {
class RedisPool;
}

inline constexpr std::string_view kMemoryBreaker = "memory";

/// What the harness's ledger reconciles against, plus the queue's view.
struct RuntimeCounters {
  LedgerCounters ledger;
  std::uint64_t rejected_queue_full = 0;
  std::uint64_t rejected_rate_limited = 0;
  std::uint64_t rejected_degraded = 0;
  std::uint64_t redelivered = 0;     ///< leases that expired and went back to the queue
  std::uint64_t dead_lettered = 0;   ///< tasks that left the queue unfinished (ended with error)
  std::size_t queue_depth = 0;
  std::size_t in_flight = 0;         ///< leased, not yet acked
};

class Runtime {
 public:
  /// Validates nothing: call config.validate() first (serve and the embedded stack do). With a
  /// postgresql:// store it connects and applies the migrations here, and throws
  /// std::runtime_error naming the store when that fails; Redis is reached lazily.
  /// `clock` drives the queue, bus, stores, locks, schedulers, rate limits, breakers and
  /// degradation (tests pass a SimulatedClock); socket and retry timers are real time.
  explicit Runtime(RuntimeConfig config, Clock& clock = SteadyClock::instance());
  ~Runtime();  ///< stop(0) if still running
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  /// Starts the workers (crash recovery first), the HTTP server and maintenance. Throws
  /// std::system_error naming the address when it cannot listen.
  void start();
  /// Graceful drain: /readyz and new chats answer 503, the queue closes, workers finish what is
  /// queued and running for at most `drain`, open streams get their terminal events, then
  /// everything stops. Idempotent.
  void stop(Nanos drain);
  void stop() { stop(config_.drain); }

  std::uint16_t port() const { return server_ ? server_->port() : 0; }
  /// "http://127.0.0.1:PORT"
  std::string url() const;

  /// The GET /api/system body: {degradation_level, breakers:{name:state}, queue_depth,
  /// active_agents, hibernated_agents, workers, ...}.
  boost::json::object system_snapshot();
  RuntimeCounters counters();
  /// The /metrics text.
  std::string metrics_text();
  /// One maintenance round now (probes included); returns when it is done. Thread-safe.
  void maintain();
  bool draining() const { return draining_.load(); }

  /// A bearer token for `user_id` signed with the runtime's secret (tests, benchmarks).
  std::string token_for(std::string_view user_id, Seconds ttl = Seconds(3600)) const;

  // The parts, for tests and the embedded stack (all thread-safe).
  const RuntimeConfig& config() const { return config_; }
  resilience::CircuitBreakerRegistry& breakers() { return breakers_; }
  resilience::DegradationManager& degradation() { return degradation_; }
  AgentStore& agents() { return *agents_; }
  MessageStore& messages() { return *messages_; }
  TurnStatsStore& turn_stats() { return *turn_stats_; }
  TaskQueue& queue() { return *queue_; }
  EventBus& bus() { return *bus_; }
  RuntimeMetrics& metrics() { return metrics_; }
  std::size_t worker_count() const { return workers_.size(); }
  Worker& worker(std::size_t i) { return *workers_.at(i); }

 private:
  class Control;
  void on_breaker_transition(const resilience::CircuitTransition& t);
  void on_degradation_change(const resilience::DegradationChange& c);
  void refresh_degradation();
  void end_dead_letters();
  void maintenance_loop();
  void make_backends();
  /// Points the store interfaces at `store` (one object implements them all) and keeps it.
  template <typename Store>
  void adopt_store(std::unique_ptr<Store> store);
  /// The per-user chat rate on Redis counters shared by the gateways (null: in-process buckets).
  std::function<RateDecision(std::string_view)> shared_rate();
  DegradationView degradation_view() const;

  RuntimeConfig config_;
  Clock& clock_;
  RuntimeMetrics metrics_;
  // Backends, behind their interfaces (make_backends picks the implementations).
  std::shared_ptr<void> store_owner_;  // the object behind agents_/messages_/turn_stats_
  AgentStore* agents_ = nullptr;
  MessageStore* messages_ = nullptr;
  TurnStatsStore* turn_stats_ = nullptr;
  std::unique_ptr<redis::RedisPool> redis_pool_;  // the Redis queue, bus, locks and rate counters share it
  std::shared_ptr<void> shared_rate_;  // the RedisRateLimiter behind the gateway's shared_rate
  std::unique_ptr<TaskQueue> queue_;
  std::unique_ptr<EventBus> bus_;
  MemoryEventBus* memory_bus_ = nullptr;  // set when the bus is the in-memory one (expiry)
  std::unique_ptr<LockService> locks_;
  resilience::CircuitBreakerRegistry breakers_;
  resilience::DegradationManager degradation_;
  std::unique_ptr<Control> control_;
  std::unique_ptr<Gateway> gateway_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::unique_ptr<http::Server> server_;

  // The degradation state turns and the gateway read on their hot paths.
  std::atomic<int> level_{0};
  std::atomic<unsigned> features_bits_{0};

  std::mutex maintain_mutex_;
  std::uint64_t dead_letters_seen_ = 0;  // guarded by maintain_mutex_
  std::uint64_t rounds_ = 0;             // guarded by maintain_mutex_
  std::thread maintenance_thread_;
  std::mutex lifecycle_mutex_;
  std::condition_variable lifecycle_cv_;
  bool stop_maintenance_ = false;  // guarded by lifecycle_mutex_
  bool started_ = false;
  bool stopped_ = false;
  std::atomic<bool> draining_{false};
};

}  // namespace lab::runtime
