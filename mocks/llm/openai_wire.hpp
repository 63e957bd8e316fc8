#pragma once
// OpenAI Chat Completions wire format: streaming chunks (chat.completion.chunk, "data: [DONE]"),
// the non-streaming chat.completion object, /v1/models and the error object.

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "mocks/llm/wire.hpp"

namespace lab::mocks::llm {

/// Renders one chat.completion.chunk stream. Honours stream_options.include_usage (usage:null
/// on every chunk, then a final chunk with empty choices and the usage) and vLLM's
/// continuous_usage_stats (running usage on every chunk).
std::unique_ptr<StreamRenderer> make_openai_stream(const ChatRequest& request,
                                                   const Generation& generation,
                                                   const ResponseIds& ids);

/// The non-streaming chat.completion body.
std::string render_openai_completion(const ChatRequest& request, const Generation& generation,
                                     const ResponseIds& ids, const Usage& usage);

/// GET /v1/models body.
std::string render_openai_models(const std::vector<std::string>& models);

/// {"error":{"message","type","param","code"}}; empty param/code render as null.
std::string render_openai_error(std::string_view message, std::string_view type,
                                std::string_view param = {}, std::string_view code = {});

/// The error a provider sends for an HTTP status it generates (429, 500, 503, …):
/// {type, code, message} as OpenAI words them.
std::string render_openai_status_error(int status);

}  // namespace lab::mocks::llm
