#pragma once
// Parsing and validating chat requests of both providers into one shape. Errors carry what the
// provider would answer (status, message, the offending parameter), so the handler can render
// them in that provider's error JSON.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/value.hpp>

namespace lab::mocks::llm {

enum class Api { kOpenAi, kAnthropic };

std::string_view to_string(Api api);

enum class ToolMode {
  kAuto,      ///< the model may call a tool (probability from the profile)
  kNone,      ///< no tool call
  kRequired,  ///< must call some tool (OpenAI "required", Anthropic "any")
  kNamed,     ///< must call tool_name
};

struct ToolSpec {
  std::string name;
  boost::json::value schema;  ///< OpenAI function.parameters / Anthropic input_schema (or null)
};

struct ChatRequest {
  Api api = Api::kOpenAi;
  std::string model;
  bool stream = false;
  bool include_usage = false;     ///< OpenAI stream_options.include_usage
  bool continuous_usage = false;  ///< vLLM stream_options.continuous_usage_stats
  bool ignore_eos = false;        ///< vLLM extension: generate exactly max_tokens
  std::optional<int> max_tokens;  ///< max_tokens / max_completion_tokens
  int input_tokens = 0;           ///< estimated prompt tokens (see estimate_tokens)
  std::vector<ToolSpec> tools;
  ToolMode tool_mode = ToolMode::kAuto;
  std::string tool_name;          ///< for kNamed
  bool after_tool_result = false; ///< the last message carries a tool result: answer in text
  std::uint64_t content_hash = 0; ///< hash of what determines the output (model, messages, …)
};

struct RequestError {
  int status = 400;
  std::string message;
  std::string param;                          ///< OpenAI "param" (empty → null)
  std::string type = "invalid_request_error";
  std::string code;                           ///< OpenAI "code" (empty → null)
};

/// Parses an OpenAI /v1/chat/completions body. On error returns it and leaves `out` partial.
std::optional<RequestError> parse_openai_request(std::string_view body, ChatRequest& out);
/// Parses an Anthropic /v1/messages body. On error returns it and leaves `out` partial.
std::optional<RequestError> parse_anthropic_request(std::string_view body, ChatRequest& out);

}  // namespace lab::mocks::llm
