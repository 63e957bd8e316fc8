// Method + path routing with {param} segments, and request-target helpers.
#include "common/http/router.hpp"

#include <algorithm>
#include <boost/beast/http/field.hpp>
#include <boost/beast/http/verb.hpp>

namespace lab::http {

namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/// Percent-decodes `in`; with `plus_is_space` (query strings) '+' becomes ' '. A '%' not
/// followed by two hex digits is kept as it is.
std::string percent_decode(std::string_view in, bool plus_is_space) {
  std::string out;
  out.reserve(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    const char c = in[i];
    if (c == '%' && i + 2 < in.size()) {
      const int hi = hex_value(in[i + 1]);
      const int lo = hex_value(in[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(plus_is_space && c == '+' ? ' ' : c);
  }
  return out;
}

/// Splits "/a/b/c" into {"a","b","c"}; "/" gives {""}. Calls f(segment) for each; stops
/// when f returns false. Returns whether every call returned true.
template <class F>
bool for_each_segment(std::string_view path, F&& f) {
  if (!path.empty() && path.front() == '/') path.remove_prefix(1);
  for (;;) {
    const std::size_t slash = path.find('/');
    if (!f(path.substr(0, slash))) return false;
    if (slash == std::string_view::npos) return true;
    path.remove_prefix(slash + 1);
  }
}

bool is_param(std::string_view segment) {
  return segment.size() >= 2 && segment.front() == '{' && segment.back() == '}';
}

/// Whether `path` matches `segments`; fills `params` (if given) with the captures.
bool match(const std::vector<std::string>& segments, std::string_view path, PathParams* params) {
  std::size_t i = 0;
  const bool all = for_each_segment(path, [&](std::string_view segment) {
    if (i >= segments.size()) return false;
    const std::string& want = segments[i++];
    if (is_param(want)) {
      if (segment.empty()) return false;
      if (params != nullptr) {
        (*params)[want.substr(1, want.size() - 2)] = percent_decode(segment, false);
      }
      return true;
    }
    return segment == want;
  });
  return all && i == segments.size();
}

}  // namespace

void Router::add(beast::http::verb method, std::string pattern, RouteHandler handler) {
  Route route{method, {}, std::move(handler)};
  for_each_segment(pattern, [&](std::string_view segment) {
    route.segments.emplace_back(segment);
    return true;
  });
  routes_.push_back(std::move(route));
}

asio::awaitable<void> Router::dispatch(Exchange& ex) const {
  const Request& req = ex.request();
  const std::string_view path = path_of(req.target());
  std::vector<beast::http::verb> allowed;
  for (const Route& route : routes_) {
    if (!match(route.segments, path, nullptr)) continue;
    if (route.method == req.method()) {
      PathParams params;
      match(route.segments, path, &params);
      co_await route.handler(ex, params);
      co_return;
    }
    if (std::find(allowed.begin(), allowed.end(), route.method) == allowed.end()) {
      allowed.push_back(route.method);
    }
  }
  const std::string what =
      std::string(std::string_view(req.method_string())) + " " + std::string(path);
  if (allowed.empty()) {
    co_await ex.respond(Status::not_found, json_error("no route for " + what, "not_found_error"));
    co_return;
  }
  std::string allow;
  for (beast::http::verb method : allowed) {
    if (!allow.empty()) allow.append(", ");
    allow.append(std::string_view(beast::http::to_string(method)));
  }
  Response res{Status::method_not_allowed, req.version()};
  res.set(beast::http::field::content_type, "application/json");
  res.set(beast::http::field::allow, allow);
  res.body() = json_error("method not allowed: " + what + " (allowed: " + allow + ")");
  co_await ex.respond(std::move(res));
}

Handler Router::handler() const {
  // The handler owns a copy of the routes, so it stays valid however long the Server keeps
  // it; routes added to this Router afterwards are not seen by it.
  return [self = *this](Exchange& ex) { return self.dispatch(ex); };
}

std::string_view path_of(std::string_view target) {
  return target.substr(0, target.find_first_of("?#"));
}

std::optional<std::string> query_param(std::string_view target, std::string_view name) {
  const std::size_t q = target.find('?');
  if (q == std::string_view::npos) return std::nullopt;
  std::string_view query = target.substr(q + 1);
  query = query.substr(0, query.find('#'));
  while (!query.empty()) {
    const std::size_t amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    const std::size_t eq = pair.find('=');
    const std::string_view key = pair.substr(0, eq);
    if (!key.empty() && percent_decode(key, true) == name) {
      return eq == std::string_view::npos ? std::string()
                                          : percent_decode(pair.substr(eq + 1), true);
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return std::nullopt;
}

}  // namespace lab::http
