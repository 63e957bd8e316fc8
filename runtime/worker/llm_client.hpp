#pragma once
// The worker's LLM client: OpenAI-compatible streaming over pooled keep-alive connections, with
// the resilience of seed 002 around every call.
//
//   providers: [0] primary ("llm_primary" breaker), [1] backup ("llm_backup"), [2..] more
//              backups ("llm_backup_2", ...). One breaker per provider, shared by all workers
//              (the registry's), so the runtime has one view of each dependency's health.
//   failover:  an attempt goes to the first provider in preference order whose breaker
//              permits; a failed attempt moves on to the next provider at once. Preference is
//              primary first, or backups first under degradation (prefer_backup).
//   retry:     when every provider failed in a round, wait the policy's delay (seed: 1 s, 2 s,
//              4 s, ±jitter; Retry-After honoured up to max_retry_after) and start another
//              round, at most max_retries times. A round where every breaker refused fails at
//              once (circuit open: fail fast, never retry). 4xx other than 408/429 never retry.
//   streaming: once a text delta has reached the caller, a failure is final (the client has
//              seen part of this answer; replaying it would duplicate text).
//
// Outcomes go to the breaker: success, or failure for timeouts, connection errors, 5xx, 429,
// malformed streams; 4xx client errors release the permit (not the provider's fault).
//
// Threading: one LlmClient per worker executor (its pools belong to that executor); call it
// only from coroutines running there.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "common/clock/clock.hpp"
#include "common/http/client.hpp"
#include "runtime/resilience/circuit_breaker.hpp"
#include "runtime/resilience/retry.hpp"
#include "runtime/service/runtime_metrics.hpp"
#include "runtime/worker/chat_protocol.hpp"

namespace lab::runtime {

struct LlmProviderConfig {
  std::string url;    ///< base URL, "http://host:port" (a trailing "/v1" is accepted)
  std::string model;  ///< the model asked of this provider
};

struct LlmClientConfig {
  std::vector<LlmProviderConfig> providers;  ///< [0] primary, then backups in failover order
  std::string api_key;                       ///< sent as Bearer when non-empty
  std::vector<std::pair<std::string, std::string>> headers;  ///< extra headers on every call
  Millis connect_timeout{5'000};
  Millis idle_timeout{30'000};               ///< first byte and gaps between stream bytes
  Nanos deadline = Seconds(300);             ///< one whole attempt
  resilience::RetryPolicy retry = [] {
    auto p = resilience::RetryPolicy::seed_llm_api();
    p.retryable_mask |= 1u << static_cast<int>(resilience::ErrorClass::kInvalidResponse);
    p.max_retry_after = Millis(10'000);
    return p;
  }();
  resilience::CircuitBreakerConfig breaker = resilience::CircuitBreakerConfig::seed_llm_api();
  std::size_t max_idle_connections = 1024;  ///< per provider per worker
};

/// The breaker name of provider i: "llm_primary", "llm_backup", "llm_backup_2", ...
std::string llm_breaker_name(std::size_t provider_index);

struct LlmResult {
  bool ok = false;
  resilience::ErrorClass error_class = resilience::ErrorClass::kOther;
  std::string error;                 ///< what failed last, for the error event
  std::string text;                  ///< the answer's text (also streamed to the sink)
  std::vector<ToolCall> tool_calls;  ///< when the model called tools
  std::string finish_reason;
  std::string model;                 ///< as the provider reported it
  std::string provider;              ///< breaker name of the provider that answered
  int input_tokens = 0;
  int output_tokens = 0;
  int attempts = 0;                  ///< HTTP attempts made (all providers, all rounds)
  bool emitted_text = false;         ///< some text reached the sink
  std::optional<TimePoint> first_token_at;
};

class LlmClient {
 public:
  using TextSink = std::function<void(std::string_view)>;

  /// Creates (or finds) the providers' breakers in `breakers`. `clock` times breaker calls.
  LlmClient(boost::asio::any_io_executor executor, LlmClientConfig config,
            resilience::CircuitBreakerRegistry& breakers, const Clock& clock, std::uint64_t seed,
            RuntimeMetrics* metrics);
  ~LlmClient();
  LlmClient(const LlmClient&) = delete;
  LlmClient& operator=(const LlmClient&) = delete;

  /// One model call with failover and retries; text deltas go to `on_text` as they arrive.
  boost::asio::awaitable<LlmResult> complete(const ChatRequestSpec& request, bool prefer_backup,
                                             const TextSink& on_text);

  /// A health probe of one provider through its breaker (a one-token non-streaming request):
  /// true when it answered 200. Used to close half-open breakers nobody else is calling.
  boost::asio::awaitable<bool> probe(std::size_t provider_index);

  std::size_t provider_count() const { return providers_.size(); }

 private:
  struct Provider;
  struct Attempt;
  boost::asio::awaitable<Attempt> attempt(Provider& p, const ChatRequestSpec& request,
                                          const TextSink& on_text, LlmResult& result);

  boost::asio::any_io_executor executor_;
  LlmClientConfig config_;
  const Clock& clock_;
  RuntimeMetrics* metrics_;
  std::mt19937_64 rng_;
  std::vector<std::unique_ptr<Provider>> providers_;
};

}  // namespace lab::runtime
