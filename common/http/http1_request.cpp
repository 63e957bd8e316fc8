#include "common/http/http1_request.hpp"

#include <charconv>

#include "common/http/http1_chars.hpp"

namespace lab::http {

namespace bhttp = boost::beast::http;

namespace {

using http1::iequals;

bool is_tchar(unsigned char c) { return http1::is_token_char(c); }

// CR, LF and NUL would end the line early or smuggle a second request.
bool breaks_framing(std::string_view s) {
  for (char c : s)
    if (c == '\r' || c == '\n' || c == '\0') return true;
  return false;
}

bool is_token(std::string_view s) {
  if (s.empty()) return false;
  for (unsigned char c : s)
    if (!is_tchar(c)) return false;
  return true;
}

void append_field(std::string& out, std::string_view name, std::string_view value) {
  out.append(name);
  out.append(": ");
  out.append(value);
  out.append("\r\n");
}

}  // namespace

std::string_view write_request(std::string& out, const Http1RequestParts& parts) {
  out.clear();
  if (parts.method == bhttp::verb::unknown) return "unknown request method";
  if (parts.path_prefix.size() + parts.target.size() == 0) return "empty request target";
  if (breaks_framing(parts.path_prefix) || breaks_framing(parts.target))
    return "request target has a line break or NUL";
  const bool has_body = !parts.body.empty();

  bool user_host = false, user_agent = false, user_accept = false;
  const std::vector<std::pair<std::string, std::string>> none;
  const auto& headers = parts.headers ? *parts.headers : none;
  for (const auto& [name, value] : headers) {
    if (!is_token(name)) return "bad request header name";
    if (breaks_framing(value)) return "request header value has a line break or NUL";
    user_host = user_host || iequals(name, "host");
    user_agent = user_agent || iequals(name, "user-agent");
    user_accept = user_accept || iequals(name, "accept");
  }

  out.append(bhttp::to_string(parts.method));
  out.push_back(' ');
  out.append(parts.path_prefix);
  out.append(parts.target);
  out.append(" HTTP/1.1\r\n");
  if (!user_host) append_field(out, "Host", parts.host);
  if (!user_agent && !parts.user_agent.empty()) append_field(out, "User-Agent", parts.user_agent);
  if (!user_accept && !parts.accept.empty()) append_field(out, "Accept", parts.accept);
  for (std::size_t i = 0; i < headers.size(); ++i) {
    const auto& [name, value] = headers[i];
    if (iequals(name, "content-length") || iequals(name, "transfer-encoding")) continue;
    if (has_body && iequals(name, "content-type")) continue;
    bool replaced = false;  // a later field of the same name wins
    for (std::size_t j = i + 1; j < headers.size() && !replaced; ++j) replaced = iequals(headers[j].first, name);
    if (!replaced) append_field(out, name, value);
  }
  if (has_body)
    append_field(out, "Content-Type", parts.content_type.empty() ? "application/json" : parts.content_type);
  if (has_body || parts.method == bhttp::verb::post || parts.method == bhttp::verb::put ||
      parts.method == bhttp::verb::options) {
    char digits[24];
    const auto r = std::to_chars(digits, digits + sizeof digits, parts.body.size());
    append_field(out, "Content-Length", std::string_view(digits, static_cast<std::size_t>(r.ptr - digits)));
  }
  out.append("\r\n");
  out.append(parts.body);
  return {};
}

}  // namespace lab::http
