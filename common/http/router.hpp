#pragma once
// Method + path routing with {param} segments: "/api/agents/{id}/hibernate".

#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/http/server.hpp"

namespace lab::http {

using PathParams = std::unordered_map<std::string, std::string>;
using RouteHandler = std::function<asio::awaitable<void>(Exchange&, const PathParams&)>;

class Router {
 public:
  /// Registers a route. `pattern` segments in braces capture one path segment.
  void add(beast::http::verb method, std::string pattern, RouteHandler handler);
  /// Dispatches by method and path (query string ignored for matching). Unknown path → 404
  /// JSON error; known path with another method → 405 with an Allow header.
  asio::awaitable<void> dispatch(Exchange& ex) const;
  /// A Handler for Server that calls dispatch().
  Handler handler() const;

 private:
  struct Route {
    beast::http::verb method;
    std::vector<std::string> segments;
    RouteHandler handler;
  };
  std::vector<Route> routes_;
};

/// The path part of a request target ("/a/b?x=1" → "/a/b").
std::string_view path_of(std::string_view target);
/// The value of one query parameter, percent-decoded; nullopt if absent.
std::optional<std::string> query_param(std::string_view target, std::string_view name);

}  // namespace lab::http
