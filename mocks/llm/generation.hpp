#pragma once
// What a response will contain, decided up front from the request and a seeded RNG: how many
// tokens, why it stops, and whether it is a tool call (with which arguments).

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <boost/json/value.hpp>

#include "mocks/llm/latency.hpp"
#include "mocks/llm/request.hpp"
#include "mocks/llm/rng.hpp"

namespace lab::mocks::llm {

struct ToolCallPlan {
  std::string id;         ///< "call_…" (OpenAI) or "toolu_…" (Anthropic)
  std::string name;
  std::string arguments;  ///< JSON text of the arguments object
  /// `arguments` cut into token-sized pieces, each already escaped for a JSON string; streamed
  /// one piece per token.
  std::vector<std::string> escaped_fragments;
};

struct Generation {
  std::uint64_t text_seed = 0;  ///< seeds the TokenGenerator for text responses
  int output_tokens = 0;        ///< text tokens, or argument fragments for a tool call
  FinishReason finish = FinishReason::kStop;
  std::optional<ToolCallPlan> tool_call;
};

struct GenerationOptions {
  double tool_call_probability = 1.0;  ///< for tool_choice auto with tools and no tool result yet
  std::optional<int> pinned_tokens;    ///< x-mock-output-tokens
};

/// Decides the response. A request whose last message is a tool result is answered in text (so
/// agent loops terminate); otherwise with tools offered and tool_choice not "none", a tool is
/// called (always for required/named, with tool_call_probability for auto).
Generation plan_generation(const ChatRequest& request, const OutputProfile& output,
                           const GenerationOptions& options, Rng& rng);

/// Example arguments for a JSON schema: every property of an object, strings from enums or
/// "mock-<name>", numbers 42, integers 7, booleans true, arrays with one item. Depth-limited.
std::string example_arguments(const boost::json::value& schema, Rng& rng);

/// Appends `text` to `out` escaped for the inside of a JSON string.
void json_escape(std::string_view text, std::string& out);

}  // namespace lab::mocks::llm
