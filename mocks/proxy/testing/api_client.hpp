#pragma once
// A blocking one-request HTTP client for the chaos proxy's API tests.

#include <cstdint>
#include <string>
#include <string_view>

#include <boost/beast/http/verb.hpp>
#include <boost/json/value.hpp>

namespace lab::mocks::proxy::testing {

struct ApiResponse {
  int status = 0;  ///< 0: no answer (connection failed or timed out)
  std::string body;
  std::string content_type;
  boost::json::value json;  ///< the parsed body, null when it is not JSON
};

/// Sends one request to 127.0.0.1:port (10 s timeout) and reads the answer.
ApiResponse api_call(std::uint16_t port, boost::beast::http::verb method, std::string_view target,
                     std::string_view body = {}, std::string_view user_agent = "agentlab-test");

/// The port of a proxy's "listen" address ("127.0.0.1:41234" → 41234), 0 if there is none.
std::uint16_t listen_port(const boost::json::value& proxy);

}  // namespace lab::mocks::proxy::testing
