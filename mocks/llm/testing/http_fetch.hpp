#pragma once
// A blocking one-request HTTP client for the mock LLM's tests: it keeps whatever arrived when
// the server cuts the connection (the disconnect fault) or when the timeout fires (hang).

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/beast/http/verb.hpp>
#include <boost/system/error_code.hpp>

#include "common/http/sse.hpp"

namespace lab::mocks::llm::testing {

struct FetchResult {
  int status = 0;                              ///< 0 if no header arrived
  std::map<std::string, std::string> headers;  ///< names lower-cased
  std::string body;                            ///< decoded body (what arrived of it)
  boost::system::error_code error;             ///< of the read (timeout, partial message, …)
  std::chrono::steady_clock::duration elapsed{};
  std::string header(std::string_view name) const;
};

struct FetchOptions {
  std::vector<std::pair<std::string, std::string>> headers;
  std::chrono::milliseconds timeout{10'000};
};

FetchResult fetch(std::uint16_t port, boost::beast::http::verb method, std::string_view target,
                  std::string_view body = {}, const FetchOptions& options = {});

/// Parses an SSE body into events.
std::vector<lab::http::SseEvent> sse_events(std::string_view body);

}  // namespace lab::mocks::llm::testing
