#pragma once
// Anthropic Messages wire format: the streaming event sequence (message_start,
// content_block_start, ping, content_block_delta, content_block_stop, message_delta,
// message_stop), the non-streaming message object, /v1/models and the error object.

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "mocks/llm/wire.hpp"

namespace lab::mocks::llm {

std::unique_ptr<StreamRenderer> make_anthropic_stream(const ChatRequest& request,
                                                      const Generation& generation,
                                                      const ResponseIds& ids);

std::string render_anthropic_message(const ChatRequest& request, const Generation& generation,
                                     const ResponseIds& ids, const Usage& usage);

/// GET /v1/models body in Anthropic's shape (when the request carries anthropic-version).
std::string render_anthropic_models(const std::vector<std::string>& models);

/// {"type":"error","error":{"type","message"}}.
std::string render_anthropic_error(std::string_view type, std::string_view message);

/// The error type Anthropic uses for an HTTP status (400 invalid_request_error, 429
/// rate_limit_error, 529/503 overloaded_error, 500 api_error, …).
std::string_view anthropic_error_type(int status);

/// The error body for a status the mock generates (faults, limits).
std::string render_anthropic_status_error(int status);

}  // namespace lab::mocks::llm
