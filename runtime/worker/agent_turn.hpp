#pragma once
// One agent turn, after the user message was accepted: build the prompt (system prompt, the
// agent's recent history unless degradation turned history retrieval off, the user message),
// call the model, stream its text as text_chunk events, run the tool calls it makes against the
// simulated tool (tool:start / tool:complete events), feed the results back, and repeat up to
// max_tool_steps; then one last call with tool_choice "none" if the model still wants tools.
// What the turn leaves behind (messages, tool calls, statistics) is returned for the worker to
// commit; the terminal event is the worker's (after the commit).
//
// Text coalescing: deltas that arrive in one network read become one text_chunk event (the
// flush is posted to the executor, so it runs after the read's events were parsed). With a
// real inter-token gap every token is its own event; at zero latency this saves the bus and
// the SSE clients thousands of tiny events per second.

#include <cstdint>
#include <optional>
#include <string>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "common/clock/clock.hpp"
#include "runtime/api/event_bus.hpp"
#include "runtime/api/turn_types.hpp"
#include "runtime/resilience/degradation.hpp"
#include "runtime/scheduler/scheduler.hpp"
#include "runtime/service/runtime_metrics.hpp"
#include "runtime/worker/llm_client.hpp"
#include "runtime/worker/simulated_tool.hpp"

namespace lab::runtime {

struct TurnConfig {
  std::string system_prompt = "You are a helpful agent.";
  int max_tool_steps = 4;               ///< model calls that may use tools, per turn
  std::optional<int> max_output_tokens; ///< max_tokens on each model call
  std::size_t history_messages = 20;    ///< recent messages put in the prompt
  double usd_per_input_mtok = 0.15;     ///< cost model for the turn statistics
  double usd_per_output_mtok = 0.60;
};

struct TurnInput {
  std::string task_id;
  std::string agent_id;
  std::string user_message;
  const AgentContext* context = nullptr;  ///< the scheduler's (read only)
  resilience::DegradationFeatures features;
  int degradation_level = 0;
};

struct TurnOutput {
  bool ok = false;
  std::string error;       ///< for the error event
  std::string error_code;  ///< "llm_unavailable", "llm_failed"
  std::vector<Message> messages;  ///< user message and the final answer, to commit
  std::vector<ToolCallRecord> tool_calls;
  TurnStats stats;
  std::string provider;    ///< breaker name of the provider of the final answer
};

/// The event payloads (JSON with "kind" = the SSE event name).
std::string text_chunk_data(std::string_view task_id, std::string_view text);
std::string done_data(std::string_view task_id, std::string_view agent_id, const TurnStats& stats,
                      std::size_t tool_calls, int degradation_level, std::string_view provider,
                      bool replayed);
std::string error_data(std::string_view task_id, std::string_view code, std::string_view message);

class AgentTurnRunner {
 public:
  AgentTurnRunner(boost::asio::any_io_executor executor, TurnConfig config, LlmClient& llm,
                  SimulatedTool& tool, EventBus& bus, RuntimeMetrics& metrics, const Clock& clock);

  boost::asio::awaitable<TurnOutput> run(const TurnInput& input);

 private:
  boost::asio::any_io_executor executor_;
  TurnConfig config_;
  LlmClient& llm_;
  SimulatedTool& tool_;
  EventBus& bus_;
  RuntimeMetrics& metrics_;
  const Clock& clock_;
};

}  // namespace lab::runtime
