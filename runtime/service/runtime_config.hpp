#pragma once
// Everything the reference runtime can be told, as plain values. The embedded stack builds one
// from a scenario's `system.runtime` block (apply_runtime_yaml), `agentlab serve` from flags
// and --config FILE; tests fill the fields directly. runtime/README.md documents each key.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/clock/clock.hpp"
#include "runtime/resilience/circuit_breaker.hpp"
#include "runtime/resilience/degradation.hpp"
#include "runtime/resilience/retry.hpp"

namespace YAML {
class Node;
}

namespace lab::runtime {

enum class ServiceRole { kAll, kGateway, kWorker };
std::string_view to_string(ServiceRole r) noexcept;

struct RuntimeConfig {
  ServiceRole role = ServiceRole::kAll;

  // HTTP
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;                 ///< 0: the OS picks (read it back with Runtime::port())
  int http_threads = 2;
  std::size_t max_body_bytes = 64 * 1024; ///< request bodies (413 beyond)
  std::size_t max_message_bytes = 32 * 1024;
  std::size_t max_connections = 100'000;
  Nanos idle_connection_timeout = Seconds(120);
  std::string jwt_secret = "agentlab-dev-secret";  ///< AGENTLAB_JWT_SECRET overrides in serve
  std::string webhook_secret;             ///< empty: the JWT secret

  // backends: "memory", or shared ones — queue "redis://[[user]:password@]host[:port][/db]" (the
  // queue, the event bus and the locks all live on that Redis), store
  // "postgresql://user@host:port/db" (agents, messages, turns, checkpoints)
  std::string queue = "memory";
  std::string store = "memory";
  std::string namespace_ = "agentlab";    ///< Redis key prefix (YAML `namespace`): processes of one
                                          ///< deployment share it; separate runs on one Redis do not
  std::string pg_schema;                  ///< PostgreSQL schema (search_path); empty: the server's
  std::string instance;                   ///< worker ids are INSTANCE-1, INSTANCE-2, ... (default
                                          ///< "worker"); keep it across restarts: a worker that
                                          ///< starts recovers the agents its id left PROCESSING
  std::size_t backend_connections = 32;   ///< Redis and PostgreSQL pool sizes (each)
  int store_threads = -1;                 ///< per worker, for its store calls (Worker::off_thread);
                                          ///< -1: 16 with a PostgreSQL store, 0 (inline) in memory
  std::size_t queue_bound = 10'000;       ///< waiting tasks before 503 + Retry-After
  std::uint32_t max_deliveries = 5;       ///< then the dead-letter list (the task ends with error)
  std::size_t max_agents = 1'000'000;
  std::size_t event_streams = 200'000;    ///< task event streams retained (bus bound)
  Nanos event_retention = Seconds(60);    ///< a finished stream stays replayable this long

  // gateway limits
  double user_rate_per_s = 0;             ///< POST /api/chat per user (0: unlimited)
  double user_burst = 20;
  Nanos queue_full_retry_after = Seconds(1);
  Nanos degraded_retry_after = Seconds(5);
  Nanos stream_keepalive = Seconds(15);
  Nanos stream_max_duration = Seconds(300);

  // workers
  int workers = 2;                        ///< worker instances (each: a thread, a scheduler, pools)
  int worker_concurrency = 256;           ///< tasks each worker holds at once
  std::size_t max_active_agents = 10'000; ///< resident agents, split evenly over the workers
  Nanos idle_timeout = Seconds(300);      ///< an idle resident agent hibernates after this
  std::size_t history_limit = 20;         ///< messages a resident agent keeps (and puts in the prompt)
  Nanos lease_duration = Seconds(30);
  Nanos heartbeat_interval = Seconds(10);

  // LLM
  std::vector<std::string> llm_urls;      ///< [0] primary, then backups (failover order)
  std::string llm_model = "mock-llama-3.1-8b";
  std::string llm_backup_model = "mock-llama-3.2-1b";
  std::string llm_api_key;
  std::vector<std::pair<std::string, std::string>> llm_headers;  ///< extra headers on LLM calls
  Nanos llm_connect_timeout = Seconds(5);
  Nanos llm_timeout = Seconds(30);        ///< first byte, and any gap in a stream
  Nanos llm_deadline = Seconds(300);      ///< one whole attempt
  std::optional<int> max_output_tokens;
  resilience::RetryPolicy llm_retry = [] {
    auto p = resilience::RetryPolicy::seed_llm_api();
    p.retryable_mask |= 1u << static_cast<int>(resilience::ErrorClass::kInvalidResponse);
    p.max_retry_after = Millis(10'000);
    return p;
  }();

  // tools
  bool tools = true;                      ///< offer the simulated tool to the model
  Nanos tool_latency = Millis(50);
  double tool_error_rate = 0.0;
  int max_tool_steps = 4;
  resilience::RetryPolicy tool_retry = resilience::RetryPolicy::seed_tool_calls();

  // resilience
  resilience::CircuitBreakerConfig llm_breaker = resilience::CircuitBreakerConfig::seed_llm_api();
  resilience::CircuitBreakerConfig tool_breaker = resilience::CircuitBreakerConfig::seed_tool_calls();
  resilience::CircuitBreakerConfig store_breaker = resilience::CircuitBreakerConfig::seed_database();
  resilience::CircuitBreakerConfig memory_breaker = resilience::CircuitBreakerConfig::seed_memory_query();
  resilience::RetryPolicy store_retry = resilience::RetryPolicy::seed_checkpoint_write();
  resilience::DegradationConfig degradation;
  Nanos maintenance_interval = Seconds(1); ///< breaker/degradation refresh, probes, dead letters

  // lifecycle
  Nanos drain = Seconds(10);              ///< stop(): how long turns in flight may finish
  std::uint64_t seed = 1;
  bool log = true;                        ///< breaker/degradation changes to stderr

  bool redis_queue() const { return queue.starts_with("redis://"); }
  bool postgres_store() const { return store.starts_with("postgresql://") || store.starts_with("postgres://"); }
  /// Whether tasks outlive this process (a shared queue): then stop() leaves unfinished tasks
  /// to the queue instead of ending them.
  bool durable_queue() const { return redis_queue(); }

  /// Every problem, one sentence each ("workers: must be at least 1"); empty when valid.
  std::vector<std::string> validate() const;
};

/// Applies a YAML map (a scenario's `system.runtime`, or a --config file's root) onto `config`.
/// Keys as in runtime/README.md; durations "250ms"/"5m", rates "50/s". Every problem is added to
/// `errors` as "WHERE:LINE: key: message" (WHERE is `where`, e.g. the file name), and unknown
/// keys are problems too.
void apply_runtime_yaml(const YAML::Node& node, std::string_view where, RuntimeConfig& config,
                        std::vector<std::string>& errors);

/// Reads and applies a YAML or JSON file (see apply_runtime_yaml).
void load_runtime_config_file(const std::string& path, RuntimeConfig& config, std::vector<std::string>& errors);

}  // namespace lab::runtime
