#include "mocks/llm/openai_wire.hpp"

#include <charconv>

#include "mocks/llm/tokens.hpp"

namespace lab::mocks::llm {

std::string_view openai_finish_reason(FinishReason finish) {
  switch (finish) {
    case FinishReason::kStop: return "stop";
    case FinishReason::kLength: return "length";
    case FinishReason::kToolCalls: return "tool_calls";
  }
  return "stop";
}

std::string_view anthropic_stop_reason(FinishReason finish) {
  switch (finish) {
    case FinishReason::kStop: return "end_turn";
    case FinishReason::kLength: return "max_tokens";
    case FinishReason::kToolCalls: return "tool_use";
  }
  return "end_turn";
}

void append_int(std::string& out, std::int64_t value) {
  char buf[24];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), value);
  out.append(buf, end);
}

namespace {

void append_usage_object(std::string& out, int prompt, int completion) {
  out += "{\"prompt_tokens\":";
  append_int(out, prompt);
  out += ",\"completion_tokens\":";
  append_int(out, completion);
  out += ",\"total_tokens\":";
  append_int(out, prompt + completion);
  out += '}';
}

class OpenAiStream final : public StreamRenderer {
 public:
  OpenAiStream(const ChatRequest& request, const Generation& generation, const ResponseIds& ids)
      : input_tokens_(request.input_tokens),
        include_usage_(request.include_usage || request.continuous_usage),
        continuous_usage_(request.continuous_usage) {
    head_ = "data: {\"id\":\"";
    head_ += ids.id;
    head_ += "\",\"object\":\"chat.completion.chunk\",\"created\":";
    append_int(head_, ids.created);
    head_ += ",\"model\":\"";
    json_escape(request.model, head_);
    head_ += "\",\"system_fingerprint\":\"fp_agentlab\",";

    const std::string choice_head = head_ + "\"choices\":[{\"index\":0,\"delta\":";
    tail_ = include_usage_ && !continuous_usage_ ? ",\"usage\":null}\n\n" : "}\n\n";

    open_ = choice_head;
    if (generation.tool_call) {
      open_ += "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"index\":0,\"id\":\"";
      open_ += generation.tool_call->id;
      open_ += "\",\"type\":\"function\",\"function\":{\"name\":\"";
      json_escape(generation.tool_call->name, open_);
      open_ += "\",\"arguments\":\"\"}}]}";
      token_head_ = choice_head + "{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"";
      token_tail_ = "\"}}]},\"logprobs\":null,\"finish_reason\":null}]";
    } else {
      open_ += "{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null}";
      token_head_ = choice_head + "{\"content\":\"";
      token_tail_ = "\"},\"logprobs\":null,\"finish_reason\":null}]";
    }
    open_ += ",\"logprobs\":null,\"finish_reason\":null}]";
    if (continuous_usage_) {
      open_ += ",\"usage\":";
      append_usage_object(open_, input_tokens_, 0);
    }
    open_ += tail_;
    close_head_ = choice_head + "{},\"logprobs\":null,\"finish_reason\":\"";
  }

  void open(std::string& out) override { out += open_; }

  void token(std::string& out, std::string_view text, int k) override {
    out += token_head_;
    out += text;
    out += token_tail_;
    if (continuous_usage_) {
      out += ",\"usage\":";
      append_usage_object(out, input_tokens_, k + 1);
    }
    out += tail_;
  }

  void close(std::string& out, FinishReason finish, const Usage& usage) override {
    out += close_head_;
    out += openai_finish_reason(finish);
    out += "\"}]";
    if (continuous_usage_) {
      out += ",\"usage\":";
      append_usage_object(out, usage.input_tokens, usage.output_tokens);
    }
    out += tail_;
    if (include_usage_) {
      out += head_;
      out += "\"choices\":[],\"usage\":";
      append_usage_object(out, usage.input_tokens, usage.output_tokens);
      out += "}\n\n";
    }
    out += "data: [DONE]\n\n";
  }

  void malformed(std::string& out) override {
    out += token_head_;
    out += "\n\n";  // the JSON object is never closed
  }

 private:
  int input_tokens_;
  bool include_usage_;
  bool continuous_usage_;
  std::string head_;         // data: {"id":…,"system_fingerprint":…,
  std::string tail_;         // ,"usage":null}\n\n  or  }\n\n
  std::string open_;
  std::string token_head_;
  std::string token_tail_;
  std::string close_head_;
};

}  // namespace

std::unique_ptr<StreamRenderer> make_openai_stream(const ChatRequest& request,
                                                   const Generation& generation,
                                                   const ResponseIds& ids) {
  return std::make_unique<OpenAiStream>(request, generation, ids);
}

std::string render_openai_completion(const ChatRequest& request, const Generation& generation,
                                     const ResponseIds& ids, const Usage& usage) {
  std::string out;
  out.reserve(512 + static_cast<std::size_t>(generation.output_tokens) * 8);
  out += "{\"id\":\"";
  out += ids.id;
  out += "\",\"object\":\"chat.completion\",\"created\":";
  append_int(out, ids.created);
  out += ",\"model\":\"";
  json_escape(request.model, out);
  out += "\",\"system_fingerprint\":\"fp_agentlab\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",";
  if (generation.tool_call) {
    out += "\"content\":null,\"refusal\":null,\"tool_calls\":[{\"id\":\"";
    out += generation.tool_call->id;
    out += "\",\"type\":\"function\",\"function\":{\"name\":\"";
    json_escape(generation.tool_call->name, out);
    out += "\",\"arguments\":\"";
    for (const std::string& fragment : generation.tool_call->escaped_fragments) out += fragment;
    out += "\"}}]}";
  } else {
    out += "\"content\":\"";
    out += generate_text(generation.text_seed, generation.output_tokens);
    out += "\",\"refusal\":null}";
  }
  out += ",\"logprobs\":null,\"finish_reason\":\"";
  out += openai_finish_reason(generation.finish);
  out += "\"}],\"usage\":";
  append_usage_object(out, usage.input_tokens, usage.output_tokens);
  out += '}';
  return out;
}

std::string render_openai_models(const std::vector<std::string>& models) {
  std::string out = "{\"object\":\"list\",\"data\":[";
  for (std::size_t i = 0; i < models.size(); ++i) {
    if (i > 0) out += ',';
    out += "{\"id\":\"";
    json_escape(models[i], out);
    out += "\",\"object\":\"model\",\"created\":1700000000,\"owned_by\":\"agentlab\"}";
  }
  out += "]}";
  return out;
}

std::string render_openai_error(std::string_view message, std::string_view type,
                                std::string_view param, std::string_view code) {
  std::string out = "{\"error\":{\"message\":\"";
  json_escape(message, out);
  out += "\",\"type\":\"";
  json_escape(type, out);
  out += "\",\"param\":";
  if (param.empty()) {
    out += "null";
  } else {
    out += '"';
    json_escape(param, out);
    out += '"';
  }
  out += ",\"code\":";
  if (code.empty()) {
    out += "null";
  } else {
    out += '"';
    json_escape(code, out);
    out += '"';
  }
  out += "}}";
  return out;
}

std::string render_openai_status_error(int status) {
  switch (status) {
    case 400: return render_openai_error("Bad request.", "invalid_request_error");
    case 401: return render_openai_error("Incorrect API key provided.", "invalid_request_error", {}, "invalid_api_key");
    case 403: return render_openai_error("You are not allowed to access this resource.", "invalid_request_error");
    case 404: return render_openai_error("Not found.", "invalid_request_error", {}, "not_found");
    case 408: return render_openai_error("Request timed out.", "timeout");
    case 429: return render_openai_error("Rate limit reached. Please try again later.", "requests", {}, "rate_limit_exceeded");
    case 500: return render_openai_error("The server had an error while processing your request. Sorry about that!", "server_error");
    case 502: return render_openai_error("Bad gateway.", "server_error");
    case 503: return render_openai_error("The engine is currently overloaded, please try again later.", "server_error");
    case 504: return render_openai_error("Gateway timeout.", "server_error");
    default: return render_openai_error("Injected error.", status >= 500 ? "server_error" : "invalid_request_error");
  }
}

}  // namespace lab::mocks::llm
