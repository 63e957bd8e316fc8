#pragma once
// Wire formats shared by both providers' renderers. A StreamRenderer is built once per stream
// and pre-renders everything that does not change between tokens, so emitting a token is a few
// appends into a reused buffer (no JSON DOM, no allocation once the buffer has grown).

#include <cstdint>
#include <string>
#include <string_view>

#include "mocks/llm/generation.hpp"
#include "mocks/llm/request.hpp"

namespace lab::mocks::llm {

struct Usage {
  int input_tokens = 0;
  int output_tokens = 0;
};

/// What identifies one response on the wire.
struct ResponseIds {
  std::string id;             ///< "chatcmpl-…" or "msg_…"
  std::int64_t created = 0;   ///< Unix seconds (OpenAI "created")
};

class StreamRenderer {
 public:
  virtual ~StreamRenderer() = default;
  /// The events sent together with the first token (OpenAI's role chunk; Anthropic's
  /// message_start, content_block_start and ping).
  virtual void open(std::string& out) = 0;
  /// Token k (0-based): a text token or a tool-argument fragment (already JSON-escaped).
  virtual void token(std::string& out, std::string_view text, int k) = 0;
  /// Everything after the last token: finish reason, usage, terminator.
  virtual void close(std::string& out, FinishReason finish, const Usage& usage) = 0;
  /// An event whose JSON is cut short (the malformed fault).
  virtual void malformed(std::string& out) = 0;
};

/// "stop" / "length" / "tool_calls".
std::string_view openai_finish_reason(FinishReason finish);
/// "end_turn" / "max_tokens" / "tool_use".
std::string_view anthropic_stop_reason(FinishReason finish);

/// Appends the decimal form of `value`.
void append_int(std::string& out, std::int64_t value);

}  // namespace lab::mocks::llm
