#pragma once
// Toxiproxy's HTTP API over a Registry: same paths, methods, JSON shapes and status codes, so
// Toxiproxy's client libraries drive it unchanged.
//
//   GET  /proxies                       {"name": {proxy}, ...}                       200
//   POST /proxies                       {proxy}                                      201
//   POST /populate                      {"proxies": [{proxy}, ...]}                  201
//   GET  /proxies/{proxy}               {proxy}                                      200
//   POST|PATCH /proxies/{proxy}         {proxy} (listen / upstream / enabled)        200
//   DELETE /proxies/{proxy}                                                          204
//   GET  /proxies/{proxy}/toxics        [{toxic}, ...]                               200
//   POST /proxies/{proxy}/toxics        {toxic}                                      200
//   GET  /proxies/{proxy}/toxics/{t}    {toxic}                                      200
//   POST|PATCH /proxies/{proxy}/toxics/{t}  {toxic} (attributes / toxicity)          200
//   DELETE /proxies/{proxy}/toxics/{t}                                               204
//   POST /reset                                                                      204
//   GET  /version                       {"version": "..."}                           200
//   GET  /metrics                       Prometheus text (Toxiproxy's byte counters + ours)
//
// {proxy} = {"name","listen","upstream","enabled","toxics":[...]}; errors are
// {"error": message, "status": code}. Requests whose User-Agent starts with "Mozilla/" get
// 403, as in Toxiproxy (a browser page must not drive it).

#include <string>
#include <string_view>
#include <vector>

#include <boost/json/object.hpp>

#include "common/http/server.hpp"
#include "mocks/proxy/registry.hpp"

namespace lab::mocks::proxy {

/// What GET /version reports: the Toxiproxy API version this follows, marked as ours.
inline constexpr std::string_view kVersion = "2.12.0-agentlab";

/// The server handler. `registry` must outlive it.
http::Handler make_api_handler(Registry& registry);

/// Parses a JSON array of proxies: the /populate body and the --config file.
Result<std::vector<ProxyConfig>> parse_proxy_configs(std::string_view json);

boost::json::object to_json(const ProxyInfo& proxy);
/// The JSON error body: {"error": message, "status": code}.
std::string error_body(const ApiError& error);
/// The /metrics text.
std::string metrics_text(const std::vector<ProxyStats>& stats);

}  // namespace lab::mocks::proxy
