#pragma once
// Renders an HTTP/1.1 request straight into a byte buffer the caller reuses, so sending a
// request allocates nothing once the buffer has grown to size.

#include <ostream>  // before verb.hpp: Boost 1.81's string_view printer needs it complete
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/beast/http/verb.hpp>

namespace lab::http {

struct Http1RequestParts {
  boost::beast::http::verb method = boost::beast::http::verb::get;
  std::string_view path_prefix;  ///< prepended to target ("" or "/prefix")
  std::string_view target;       ///< path + query
  std::string_view host;         ///< Host field unless `headers` has one
  std::string_view user_agent;   ///< User-Agent field unless `headers` has one
  std::string_view accept;       ///< Accept field unless `headers` has one; "" for none
  const std::vector<std::pair<std::string, std::string>>* headers = nullptr;
  std::string_view body;
  std::string_view content_type;  ///< sent with a non-empty body; "" means application/json
};

/// Writes the request into `out` (cleared first, capacity kept). When a field name appears more
/// than once in `headers` the last one wins. The framing is ours: Content-Length, Transfer-
/// Encoding (and Content-Type with a body) in `headers` are ignored; Content-Length is sent when
/// there is a body, and as 0 for an empty POST, PUT or OPTIONS. Returns "" on success, otherwise
/// what is wrong (a line break in a value, a bad field name or target, an unknown method) and
/// `out` must not be sent.
std::string_view write_request(std::string& out, const Http1RequestParts& parts);

}  // namespace lab::http
