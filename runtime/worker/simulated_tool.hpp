#pragma once
// The simulated tool the agent offers its model ("lookup": a search-like call). It has its own
// latency (a timer on the worker's executor, never a blocking sleep), a seeded error rate, the
// "tools" circuit breaker and the seed's tool retry policy (linear, 2 retries, 500 ms).
// A tool that fails for good does not fail the turn: the model gets the error as the tool's
// result and answers without it.
//
// Threading: one per worker executor; call it only from coroutines running there.

#include <cstdint>
#include <random>
#include <string>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "common/clock/clock.hpp"
#include "runtime/resilience/circuit_breaker.hpp"
#include "runtime/resilience/retry.hpp"
#include "runtime/service/runtime_metrics.hpp"
#include "runtime/worker/chat_protocol.hpp"

namespace lab::runtime {

inline constexpr std::string_view kToolsBreaker = "tools";

struct ToolConfig {
  Nanos latency = Millis(50);  ///< per attempt; 0 answers at once
  double error_rate = 0.0;     ///< probability that an attempt fails (seeded)
  resilience::RetryPolicy retry = resilience::RetryPolicy::seed_tool_calls();
  resilience::CircuitBreakerConfig breaker = resilience::CircuitBreakerConfig::seed_tool_calls();
};

struct ToolOutcome {
  bool ok = false;
  std::string result;  ///< JSON: the tool's answer, or {"error": ...}
  int attempts = 0;
  Nanos duration{0};   ///< first attempt start → outcome (on the runtime's Clock)
};

class SimulatedTool {
 public:
  SimulatedTool(boost::asio::any_io_executor executor, ToolConfig config,
                resilience::CircuitBreakerRegistry& breakers, const Clock& clock, std::uint64_t seed,
                RuntimeMetrics* metrics);

  /// The tool as offered to the model.
  static ToolSpec spec();

  /// Runs one call (with retries per the policy).
  boost::asio::awaitable<ToolOutcome> call(const ToolCall& call);

  /// One attempt through the breaker, without retries (a health probe for a half-open breaker
  /// while degradation keeps tools out of the turns). True when it succeeded.
  boost::asio::awaitable<bool> probe();

 private:
  boost::asio::any_io_executor executor_;
  ToolConfig config_;
  resilience::CircuitBreaker& breaker_;
  const Clock& clock_;
  RuntimeMetrics* metrics_;
  std::mt19937_64 rng_;
  std::uint64_t calls_ = 0;

  /// One attempt: waits the latency, draws the outcome, reports it to the breaker.
  boost::asio::awaitable<bool> attempt(const resilience::CircuitBreaker::Permit& permit);
};

}  // namespace lab::runtime
