#include "mocks/llm/anthropic_wire.hpp"

#include "mocks/llm/tokens.hpp"

namespace lab::mocks::llm {

namespace {

constexpr std::string_view kDeltaHead =
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":";

class AnthropicStream final : public StreamRenderer {
 public:
  AnthropicStream(const ChatRequest& request, const Generation& generation, const ResponseIds& ids) {
    open_ = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"";
    open_ += ids.id;
    open_ += "\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"";
    json_escape(request.model, open_);
    open_ += "\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":";
    append_int(open_, request.input_tokens);
    open_ += ",\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0,\"output_tokens\":1}}}\n\n";
    open_ += "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":";
    if (generation.tool_call) {
      open_ += "{\"type\":\"tool_use\",\"id\":\"";
      open_ += generation.tool_call->id;
      open_ += "\",\"name\":\"";
      json_escape(generation.tool_call->name, open_);
      open_ += "\",\"input\":{}}}\n\n";
      token_head_ = std::string(kDeltaHead) + "{\"type\":\"input_json_delta\",\"partial_json\":\"";
    } else {
      open_ += "{\"type\":\"text\",\"text\":\"\"}}\n\n";
      token_head_ = std::string(kDeltaHead) + "{\"type\":\"text_delta\",\"text\":\"";
    }
    open_ += "event: ping\ndata: {\"type\": \"ping\"}\n\n";
  }

  void open(std::string& out) override { out += open_; }

  void token(std::string& out, std::string_view text, int /*k*/) override {
    out += token_head_;
    out += text;
    out += "\"}}\n\n";
  }

  void close(std::string& out, FinishReason finish, const Usage& usage) override {
    out += "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n";
    out += "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"";
    out += anthropic_stop_reason(finish);
    out += "\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":";
    append_int(out, usage.output_tokens);
    out += "}}\n\n";
    out += "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
  }

  void malformed(std::string& out) override {
    out += token_head_;
    out += "\n\n";  // the JSON object is never closed
  }

 private:
  std::string open_;
  std::string token_head_;
};

}  // namespace

std::unique_ptr<StreamRenderer> make_anthropic_stream(const ChatRequest& request,
                                                      const Generation& generation,
                                                      const ResponseIds& ids) {
  return std::make_unique<AnthropicStream>(request, generation, ids);
}

std::string render_anthropic_message(const ChatRequest& request, const Generation& generation,
                                     const ResponseIds& ids, const Usage& usage) {
  std::string out;
  out.reserve(512 + static_cast<std::size_t>(generation.output_tokens) * 8);
  out += "{\"id\":\"";
  out += ids.id;
  out += "\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"";
  json_escape(request.model, out);
  out += "\",\"content\":[";
  if (generation.tool_call) {
    out += "{\"type\":\"tool_use\",\"id\":\"";
    out += generation.tool_call->id;
    out += "\",\"name\":\"";
    json_escape(generation.tool_call->name, out);
    out += "\",\"input\":";
    out += generation.tool_call->arguments;  // complete JSON object text
    out += '}';
  } else {
    out += "{\"type\":\"text\",\"text\":\"";
    out += generate_text(generation.text_seed, generation.output_tokens);
    out += "\"}";
  }
  out += "],\"stop_reason\":\"";
  out += anthropic_stop_reason(generation.finish);
  out += "\",\"stop_sequence\":null,\"usage\":{\"input_tokens\":";
  append_int(out, usage.input_tokens);
  out += ",\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0,\"output_tokens\":";
  append_int(out, usage.output_tokens);
  out += "}}";
  return out;
}

std::string render_anthropic_models(const std::vector<std::string>& models) {
  std::string out = "{\"data\":[";
  for (std::size_t i = 0; i < models.size(); ++i) {
    if (i > 0) out += ',';
    out += "{\"type\":\"model\",\"id\":\"";
    json_escape(models[i], out);
    out += "\",\"display_name\":\"";
    json_escape(models[i], out);
    out += "\",\"created_at\":\"2024-10-22T00:00:00Z\"}";
  }
  out += "],\"has_more\":false,\"first_id\":";
  if (models.empty()) {
    out += "null,\"last_id\":null}";
  } else {
    out += '"';
    json_escape(models.front(), out);
    out += "\",\"last_id\":\"";
    json_escape(models.back(), out);
    out += "\"}";
  }
  return out;
}

std::string render_anthropic_error(std::string_view type, std::string_view message) {
  std::string out = "{\"type\":\"error\",\"error\":{\"type\":\"";
  json_escape(type, out);
  out += "\",\"message\":\"";
  json_escape(message, out);
  out += "\"}}";
  return out;
}

std::string_view anthropic_error_type(int status) {
  switch (status) {
    case 400: return "invalid_request_error";
    case 401: return "authentication_error";
    case 403: return "permission_error";
    case 404: return "not_found_error";
    case 413: return "request_too_large";
    case 429: return "rate_limit_error";
    case 503:
    case 529: return "overloaded_error";
    default: return status >= 500 ? "api_error" : "invalid_request_error";
  }
}

std::string render_anthropic_status_error(int status) {
  std::string_view message = "Injected error";
  switch (status) {
    case 429: message = "Number of requests has exceeded your rate limit. Please try again later."; break;
    case 500: message = "Internal server error"; break;
    case 503:
    case 529: message = "Overloaded"; break;
    default: break;
  }
  return render_anthropic_error(anthropic_error_type(status), message);
}

}  // namespace lab::mocks::llm
