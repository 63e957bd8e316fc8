#pragma once
// The runtime's Prometheus metrics (prometheus-cpp registry, text exposition on GET /metrics),
// shared by the gateway and the workers. Names follow promtool's conventions: counters end in
// _total, durations are _seconds.
//
//   agentlab_runtime_tasks_accepted_total                 chat tasks answered 202
//   agentlab_runtime_tasks_completed_total                done events appended
//   agentlab_runtime_tasks_failed_total{reason}           error events appended
//   agentlab_runtime_terminal_duplicates_total            second terminal events refused by the bus
//   agentlab_runtime_rejections_total{reason}             requests refused (queue_full, rate_limited,
//                                                         degraded, unauthorized, bad_request, ...)
//   agentlab_runtime_http_request_duration_seconds{route} handler time of non-streaming requests
//   agentlab_runtime_sse_streams_open                     SSE streams being served
//   agentlab_runtime_turn_duration_seconds                turn start → done
//   agentlab_runtime_turn_ttft_seconds                    turn start → first LLM token
//   agentlab_runtime_llm_requests_total{provider,outcome} LLM attempts by provider and outcome
//   agentlab_runtime_llm_failovers_total                  attempts moved to the next provider
//   agentlab_runtime_llm_retries_total                    retry rounds after every provider failed
//   agentlab_runtime_tool_calls_total{outcome}            simulated tool calls
//   agentlab_runtime_redeliveries_total{kind}             already_committed, lock_held, lease_lost
//   agentlab_runtime_breaker_state{breaker}               0 closed, 1 open, 2 half-open, 3 disabled,
//                                                         4 forced open
//   agentlab_runtime_breaker_transitions_total{breaker,from,to}
//   agentlab_runtime_degradation_level                    0..4
//   agentlab_runtime_degradation_changes_total
//   agentlab_runtime_queue_depth / _queue_in_flight / _active_agents / _hibernated_agents
//
// Thread-safe. Hot-path counters are resolved once at construction (no label lookup per call).

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "common/clock/clock.hpp"

namespace lab::runtime {

/// Why the gateway refused a request (the `reason` label of rejections_total).
enum class Rejection : std::uint8_t {
  kUnauthorized,      ///< 401: no or invalid bearer token
  kBadRequest,        ///< 400: malformed JSON or fields
  kNotFound,          ///< 404: unknown agent/task, or another user's
  kQueueFull,         ///< 503: the queue is at its bound
  kRateLimited,       ///< 429: over the user's rate
  kDegraded,          ///< 503: degradation level 4 (maintenance: no new work)
  kMembershipPaused,  ///< 402: the user's subscription is cancelled
  kStoreFull,         ///< 507: a store bound
  kDraining,          ///< 503: the runtime is shutting down
  kBodyTooLarge,      ///< 413: over the body or message limit
};
inline constexpr std::size_t kRejectionCount = 10;
std::string_view to_string(Rejection r) noexcept;

/// Routes whose latency is recorded (the `route` label).
enum class Route : std::uint8_t {
  kAgentsCreate, kAgentsList, kAgentGet, kChat, kFork, kStreamSetup, kHibernate, kMembership,
  kSystem, kHealth, kMetrics,
};
inline constexpr std::size_t kRouteCount = 11;
std::string_view to_string(Route r) noexcept;

/// Counters the harness's ledger reconciles against (plain atomics, cheap to read).
struct LedgerCounters {
  std::uint64_t accepted = 0;             ///< 202 answers to POST /api/chat
  std::uint64_t completed = 0;            ///< done events appended
  std::uint64_t failed = 0;               ///< error events appended
  std::uint64_t duplicate_terminals = 0;  ///< a second done/error refused (kStreamFinished)
  std::uint64_t commits_applied = 0;      ///< turns stored
  std::uint64_t commits_duplicate = 0;    ///< commits answered "already stored" (redelivery)
};

class RuntimeMetrics {
 public:
  RuntimeMetrics();
  RuntimeMetrics(const RuntimeMetrics&) = delete;
  RuntimeMetrics& operator=(const RuntimeMetrics&) = delete;

  void count_accepted();
  void count_completed();
  void count_failed(std::string_view reason);
  void count_duplicate_terminal();
  void count_commit(bool applied);
  void count_rejection(Rejection r);
  void observe_request(Route r, Nanos duration);
  void observe_turn(Nanos duration, Nanos ttft);
  void count_llm(std::string_view provider, std::string_view outcome);
  void count_failover();
  void count_llm_retry();
  void count_tool(std::string_view outcome);
  void count_redelivery(std::string_view kind);
  void count_breaker_transition(std::string_view breaker, std::string_view from, std::string_view to);
  void count_degradation_change();
  prometheus::Gauge& sse_streams_open() { return *sse_open_; }

  /// Sets the gauges that are sampled rather than counted (called before render()).
  void set_breaker_state(std::string_view breaker, int state);
  void set_degradation_level(int level);
  void set_queue(std::size_t depth, std::size_t in_flight);
  void set_agents(std::size_t active, std::size_t hibernated);
  /// Rejections counted elsewhere (the HTTP server's 413s), as an absolute value.
  void set_body_too_large(std::uint64_t total);

  LedgerCounters ledger() const;
  std::uint64_t rejections(Rejection r) const;
  /// Exposition text of the whole registry.
  std::string render();

 private:
  prometheus::Counter& labelled(prometheus::Family<prometheus::Counter>& family,
                                std::map<std::string, prometheus::Counter*, std::less<>>& cache,
                                std::string_view label_name, std::string_view value);

  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Counter* accepted_;
  prometheus::Counter* completed_;
  prometheus::Family<prometheus::Counter>* failed_;
  prometheus::Counter* duplicate_terminals_;
  prometheus::Family<prometheus::Counter>* rejections_family_;
  std::array<prometheus::Counter*, kRejectionCount> rejections_{};
  std::array<prometheus::Histogram*, kRouteCount> request_latency_{};
  prometheus::Gauge* sse_open_;
  prometheus::Histogram* turn_duration_;
  prometheus::Histogram* turn_ttft_;
  prometheus::Family<prometheus::Counter>* llm_requests_;
  prometheus::Counter* failovers_;
  prometheus::Counter* llm_retries_;
  prometheus::Family<prometheus::Counter>* tool_calls_;
  prometheus::Family<prometheus::Counter>* redeliveries_;
  prometheus::Family<prometheus::Gauge>* breaker_state_;
  prometheus::Family<prometheus::Counter>* breaker_transitions_;
  prometheus::Gauge* degradation_level_;
  prometheus::Counter* degradation_changes_;
  prometheus::Gauge* queue_depth_;
  prometheus::Gauge* queue_in_flight_;
  prometheus::Gauge* active_agents_;
  prometheus::Gauge* hibernated_agents_;

  std::mutex mutex_;  // guards the label caches
  std::map<std::string, prometheus::Counter*, std::less<>> failed_cache_, tool_cache_,
      redelivery_cache_, llm_cache_, transition_cache_;
  std::map<std::string, prometheus::Gauge*, std::less<>> breaker_cache_;

  std::atomic<std::uint64_t> n_accepted_{0}, n_completed_{0}, n_failed_{0}, n_duplicates_{0},
      n_commits_{0}, n_commit_duplicates_{0}, n_body_too_large_{0};
  std::array<std::atomic<std::uint64_t>, kRejectionCount> n_rejections_{};
};

}  // namespace lab::runtime
