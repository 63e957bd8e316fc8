#pragma once
// The OpenAI Chat Completions wire format as the worker speaks it: the streaming request body
// (messages, tools, stream_options.include_usage) and an accumulator for the
// chat.completion.chunk stream (text deltas, tool-call fragments by index, finish_reason,
// usage). Pure functions; no I/O.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lab::runtime {

struct ToolCall {
  std::string id;
  std::string name;
  std::string arguments;  ///< JSON text, as the model produced it
};

struct ChatMessage {
  std::string role;     ///< "system", "user", "assistant", "tool"
  std::string content;  ///< empty with tool_calls: sent as null
  std::vector<ToolCall> tool_calls;  ///< assistant messages that call tools
  std::string tool_call_id;          ///< tool messages: the call they answer
};

/// A function tool offered to the model.
struct ToolSpec {
  std::string name;
  std::string description;
  std::string parameters_json;  ///< a JSON schema object
};

struct ChatRequestSpec {
  std::vector<ChatMessage> messages;
  std::vector<ToolSpec> tools;  ///< empty: no tools offered
  bool tool_choice_none = false;  ///< offer the tools but forbid calling them (final answer)
  std::optional<int> max_tokens;
};

/// The POST /v1/chat/completions body for `model`, streaming with usage.
std::string build_chat_body(const ChatRequestSpec& spec, std::string_view model);

/// The non-streaming one-token body used as a health probe.
std::string build_probe_body(std::string_view model);

/// Folds the data payloads of a chat.completion.chunk stream into one answer.
class ChunkAccumulator {
 public:
  enum class Feed { kOk, kDone, kMalformed };

  /// Feeds one SSE data payload. Appends the chunk's text (if any) to `text_delta`. kDone for
  /// the "[DONE]" sentinel; kMalformed for anything that is not a chunk object.
  Feed feed(std::string_view data, std::string& text_delta);

  /// True once a finish_reason or [DONE] was seen (a stream cut before is incomplete).
  bool finished() const { return !finish_reason_.empty() || done_; }
  const std::string& finish_reason() const { return finish_reason_; }
  const std::vector<ToolCall>& tool_calls() const { return tool_calls_; }
  std::vector<ToolCall> take_tool_calls() { return std::move(tool_calls_); }
  const std::string& model() const { return model_; }
  int prompt_tokens() const { return prompt_tokens_; }
  int completion_tokens() const { return completion_tokens_; }
  /// Text deltas seen (for completion_tokens when the stream carries no usage).
  int text_deltas() const { return text_deltas_; }

 private:
  std::vector<ToolCall> tool_calls_;
  std::string finish_reason_;
  std::string model_;
  int prompt_tokens_ = 0;
  int completion_tokens_ = 0;
  int text_deltas_ = 0;
  bool done_ = false;
};

}  // namespace lab::runtime
