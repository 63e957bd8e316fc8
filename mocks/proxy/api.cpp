// Toxiproxy's HTTP API: JSON in, Registry call, JSON out (see api.hpp for the table).

#include "mocks/proxy/api.hpp"

#include <memory>
#include <optional>
#include <utility>

#include <boost/beast/http/field.hpp>
#include <boost/beast/http/verb.hpp>
#include <boost/json/array.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include "common/http/router.hpp"

namespace lab::mocks::proxy {

namespace {

namespace bj = boost::json;
namespace asio = boost::asio;
using boost::beast::http::verb;
using http::Exchange;
using http::PathParams;
using http::Status;

ApiError bad_body(std::string why) { return {400, "bad request body: " + std::move(why)}; }

/// Parses a request body; an empty body is an empty object (Go's decoder would say EOF, but
/// POST /proxies/{p} with no body is harmless to accept).
Result<bj::value> parse_body(std::string_view body) {
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) return bj::value(bj::object());
  boost::system::error_code ec;
  bj::value v = bj::parse(body, ec);
  if (ec) return bad_body(ec.message());
  return v;
}

/// Reads an optional string field; an error for any other type.
std::optional<ApiError> read_string(const bj::object& o, std::string_view key,
                                    std::optional<std::string>& out) {
  const bj::value* v = o.if_contains(key);
  if (v == nullptr || v->is_null()) return std::nullopt;
  if (!v->is_string()) return bad_body("field " + std::string(key) + " must be a string");
  out = std::string(v->get_string());
  return std::nullopt;
}

std::optional<ApiError> read_bool(const bj::object& o, std::string_view key,
                                  std::optional<bool>& out) {
  const bj::value* v = o.if_contains(key);
  if (v == nullptr || v->is_null()) return std::nullopt;
  if (!v->is_bool()) return bad_body("field " + std::string(key) + " must be a boolean");
  out = v->get_bool();
  return std::nullopt;
}

std::optional<ApiError> read_number(const bj::object& o, std::string_view key,
                                    std::optional<double>& out) {
  const bj::value* v = o.if_contains(key);
  if (v == nullptr || v->is_null()) return std::nullopt;
  if (!v->is_number()) return bad_body("field " + std::string(key) + " must be a number");
  out = v->to_number<double>();
  return std::nullopt;
}

Result<ProxyConfig> proxy_config(const bj::value& v) {
  if (!v.is_object()) return bad_body("a proxy must be a JSON object");
  const bj::object& o = v.get_object();
  std::optional<std::string> name, listen, upstream;
  std::optional<bool> enabled;
  if (auto e = read_string(o, "name", name)) return *e;
  if (auto e = read_string(o, "listen", listen)) return *e;
  if (auto e = read_string(o, "upstream", upstream)) return *e;
  if (auto e = read_bool(o, "enabled", enabled)) return *e;
  return ProxyConfig{name.value_or(""), listen.value_or(""), upstream.value_or(""),
                     enabled.value_or(true)};
}

/// A new toxic from a POST body, with Toxiproxy's defaults and error order.
Result<Toxic> toxic_from(const bj::value& v) {
  if (!v.is_object()) return bad_body("a toxic must be a JSON object");
  const bj::object& o = v.get_object();
  std::optional<std::string> name, type, stream;
  std::optional<double> toxicity;
  if (auto e = read_string(o, "name", name)) return *e;
  if (auto e = read_string(o, "type", type)) return *e;
  if (auto e = read_string(o, "stream", stream)) return *e;
  if (auto e = read_number(o, "toxicity", toxicity)) return *e;
  Toxic t;
  const auto direction = parse_direction(stream.value_or("downstream"));
  if (!direction) return ApiError{400, "stream was invalid, can be either upstream or downstream"};
  t.stream = *direction;
  const auto toxic_type = parse_toxic_type(type.value_or(""));
  if (!toxic_type) return ApiError{400, "invalid toxic type"};
  t.type = *toxic_type;
  t.name = name.value_or("");
  t.toxicity = toxicity.value_or(1.0);
  if (const bj::value* attrs = o.if_contains("attributes"); attrs != nullptr && !attrs->is_null()) {
    if (!attrs->is_object()) return bad_body("attributes must be an object");
    if (std::string why = read_attributes(t.type, attrs->get_object(), t.attributes); !why.empty()) {
      return bad_body(std::move(why));
    }
  }
  return t;
}

asio::awaitable<void> reply(Exchange& ex, Status status, std::string body) {
  co_await ex.respond(status, std::move(body), "application/json");
}

asio::awaitable<void> reply_error(Exchange& ex, const ApiError& error) {
  co_await ex.respond(static_cast<Status>(error.status), error_body(error), "application/json");
}

asio::awaitable<void> reply_no_content(Exchange& ex) {
  http::Response res{Status::no_content, 11};
  co_await ex.respond(std::move(res));
}

bj::array toxics_json(const std::vector<Toxic>& toxics) {
  bj::array out;
  for (const Toxic& t : toxics) out.push_back(to_json(t));
  return out;
}

/// The API's handlers; every one is a coroutine on the server's thread calling the registry
/// (which blocks for at most the time to update the data-plane threads).
class Api {
 public:
  explicit Api(Registry& registry) : registry_(registry) {}

  asio::awaitable<void> list_proxies(Exchange& ex, const PathParams&) {
    bj::object out;
    for (const ProxyInfo& p : registry_.proxies()) out[p.name] = to_json(p);
    co_await reply(ex, Status::ok, bj::serialize(out));
  }

  asio::awaitable<void> create_proxy(Exchange& ex, const PathParams&) {
    auto body = parse_body(ex.request().body());
    if (!body.ok()) co_return co_await reply_error(ex, body.error());
    auto config = proxy_config(body.value());
    if (!config.ok()) co_return co_await reply_error(ex, config.error());
    auto created = registry_.create_proxy(config.value());
    if (!created.ok()) co_return co_await reply_error(ex, created.error());
    co_await reply(ex, Status::created, bj::serialize(to_json(created.value())));
  }

  asio::awaitable<void> populate(Exchange& ex, const PathParams&) {
    auto configs = parse_proxy_configs(ex.request().body());
    std::optional<ApiError> error;
    bj::value proxies = nullptr;
    if (!configs.ok()) {
      error = configs.error();
    } else {
      auto done = registry_.populate(configs.value());
      if (!done.ok()) {
        error = done.error();
      } else {
        bj::array list;
        for (const ProxyInfo& p : done.value()) list.push_back(to_json(p));
        proxies = std::move(list);
      }
    }
    bj::object out;
    if (error) {
      out["error"] = error->message;
      out["status"] = error->status;
    }
    out["proxies"] = std::move(proxies);
    co_await reply(ex, error ? static_cast<Status>(error->status) : Status::created, bj::serialize(out));
  }

  asio::awaitable<void> show_proxy(Exchange& ex, const PathParams& p) {
    auto proxy = registry_.proxy(p.at("proxy"));
    if (!proxy.ok()) co_return co_await reply_error(ex, proxy.error());
    co_await reply(ex, Status::ok, bj::serialize(to_json(proxy.value())));
  }

  asio::awaitable<void> update_proxy(Exchange& ex, const PathParams& p) {
    auto body = parse_body(ex.request().body());
    if (!body.ok()) co_return co_await reply_error(ex, body.error());
    if (!body.value().is_object()) co_return co_await reply_error(ex, bad_body("expected an object"));
    const bj::object& o = body.value().get_object();
    ProxyUpdate update;
    if (auto e = read_string(o, "listen", update.listen)) co_return co_await reply_error(ex, *e);
    if (auto e = read_string(o, "upstream", update.upstream)) co_return co_await reply_error(ex, *e);
    if (auto e = read_bool(o, "enabled", update.enabled)) co_return co_await reply_error(ex, *e);
    auto updated = registry_.update_proxy(p.at("proxy"), update);
    if (!updated.ok()) co_return co_await reply_error(ex, updated.error());
    co_await reply(ex, Status::ok, bj::serialize(to_json(updated.value())));
  }

  asio::awaitable<void> delete_proxy(Exchange& ex, const PathParams& p) {
    if (auto e = registry_.delete_proxy(p.at("proxy"))) co_return co_await reply_error(ex, *e);
    co_await reply_no_content(ex);
  }

  asio::awaitable<void> list_toxics(Exchange& ex, const PathParams& p) {
    auto toxics = registry_.toxics(p.at("proxy"));
    if (!toxics.ok()) co_return co_await reply_error(ex, toxics.error());
    co_await reply(ex, Status::ok, bj::serialize(toxics_json(toxics.value())));
  }

  asio::awaitable<void> create_toxic(Exchange& ex, const PathParams& p) {
    const std::string& proxy = p.at("proxy");
    if (auto exists = registry_.proxy(proxy); !exists.ok()) {
      co_return co_await reply_error(ex, exists.error());  // 404 before body errors, as Toxiproxy
    }
    auto body = parse_body(ex.request().body());
    if (!body.ok()) co_return co_await reply_error(ex, body.error());
    auto toxic = toxic_from(body.value());
    if (!toxic.ok()) co_return co_await reply_error(ex, toxic.error());
    auto added = registry_.add_toxic(proxy, std::move(toxic.value()));
    if (!added.ok()) co_return co_await reply_error(ex, added.error());
    co_await reply(ex, Status::ok, bj::serialize(to_json(added.value())));
  }

  asio::awaitable<void> show_toxic(Exchange& ex, const PathParams& p) {
    auto toxic = registry_.toxic(p.at("proxy"), p.at("toxic"));
    if (!toxic.ok()) co_return co_await reply_error(ex, toxic.error());
    co_await reply(ex, Status::ok, bj::serialize(to_json(toxic.value())));
  }

  asio::awaitable<void> update_toxic(Exchange& ex, const PathParams& p) {
    auto body = parse_body(ex.request().body());
    if (!body.ok()) co_return co_await reply_error(ex, body.error());
    if (!body.value().is_object()) co_return co_await reply_error(ex, bad_body("expected an object"));
    const bj::object& o = body.value().get_object();
    auto updated = registry_.update_toxic(p.at("proxy"), p.at("toxic"), [&](Toxic& t) -> std::string {
      if (const bj::value* v = o.if_contains("toxicity"); v != nullptr && !v->is_null()) {
        if (!v->is_number()) return "field toxicity must be a number";
        t.toxicity = v->to_number<double>();
      }
      if (const bj::value* v = o.if_contains("attributes"); v != nullptr && !v->is_null()) {
        if (!v->is_object()) return "attributes must be an object";
        return read_attributes(t.type, v->get_object(), t.attributes);
      }
      return {};
    });
    if (!updated.ok()) co_return co_await reply_error(ex, updated.error());
    co_await reply(ex, Status::ok, bj::serialize(to_json(updated.value())));
  }

  asio::awaitable<void> delete_toxic(Exchange& ex, const PathParams& p) {
    if (auto e = registry_.remove_toxic(p.at("proxy"), p.at("toxic"))) {
      co_return co_await reply_error(ex, *e);
    }
    co_await reply_no_content(ex);
  }

  asio::awaitable<void> reset(Exchange& ex, const PathParams&) {
    if (auto e = registry_.reset()) co_return co_await reply_error(ex, *e);
    co_await reply_no_content(ex);
  }

  asio::awaitable<void> version(Exchange& ex, const PathParams&) {
    co_await ex.respond(Status::ok, "{\"version\": \"" + std::string(kVersion) + "\"}\n",
                        "application/json;charset=utf-8");
  }

  asio::awaitable<void> metrics(Exchange& ex, const PathParams&) {
    co_await ex.respond(Status::ok, metrics_text(registry_.stats()),
                        "text/plain; version=0.0.4; charset=utf-8");
  }

 private:
  Registry& registry_;
};

}  // namespace

http::Handler make_api_handler(Registry& registry) {
  auto api = std::make_shared<Api>(registry);
  http::Router router;
  using Method = asio::awaitable<void> (Api::*)(Exchange&, const PathParams&);
  auto add = [&](verb method, std::string pattern, Method m) {
    router.add(method, std::move(pattern),
               [api, m](Exchange& ex, const PathParams& p) { return ((*api).*m)(ex, p); });
  };
  add(verb::post, "/reset", &Api::reset);
  add(verb::get, "/proxies", &Api::list_proxies);
  add(verb::post, "/proxies", &Api::create_proxy);
  add(verb::post, "/populate", &Api::populate);
  add(verb::get, "/proxies/{proxy}", &Api::show_proxy);
  add(verb::post, "/proxies/{proxy}", &Api::update_proxy);
  add(verb::patch, "/proxies/{proxy}", &Api::update_proxy);
  add(verb::delete_, "/proxies/{proxy}", &Api::delete_proxy);
  add(verb::get, "/proxies/{proxy}/toxics", &Api::list_toxics);
  add(verb::post, "/proxies/{proxy}/toxics", &Api::create_toxic);
  add(verb::get, "/proxies/{proxy}/toxics/{toxic}", &Api::show_toxic);
  add(verb::post, "/proxies/{proxy}/toxics/{toxic}", &Api::update_toxic);
  add(verb::patch, "/proxies/{proxy}/toxics/{toxic}", &Api::update_toxic);
  add(verb::delete_, "/proxies/{proxy}/toxics/{toxic}", &Api::delete_toxic);
  add(verb::get, "/version", &Api::version);
  add(verb::get, "/metrics", &Api::metrics);

  return [router = std::move(router)](Exchange& ex) -> asio::awaitable<void> {
    const auto agent = ex.request().find(boost::beast::http::field::user_agent);
    if (agent != ex.request().end() && agent->value().starts_with("Mozilla/")) {
      co_await ex.respond(Status::forbidden, "User agent not allowed\n", "text/plain; charset=utf-8");
      co_return;
    }
    co_await router.dispatch(ex);
  };
}

Result<std::vector<ProxyConfig>> parse_proxy_configs(std::string_view json) {
  boost::system::error_code ec;
  const bj::value v = bj::parse(json, ec);
  if (ec) return bad_body(ec.message());
  if (!v.is_array()) return bad_body("expected a JSON array of proxies");
  std::vector<ProxyConfig> out;
  for (const bj::value& item : v.get_array()) {
    auto config = proxy_config(item);
    if (!config.ok()) return config.error();
    out.push_back(std::move(config.value()));
  }
  return out;
}

bj::object to_json(const ProxyInfo& proxy) {
  bj::object out;
  out["name"] = proxy.name;
  out["listen"] = proxy.listen;
  out["upstream"] = proxy.upstream;
  out["enabled"] = proxy.enabled;
  out["toxics"] = toxics_json(proxy.toxics);
  return out;
}

std::string error_body(const ApiError& error) {
  bj::object out;
  out["error"] = error.message;
  out["status"] = error.status;
  return bj::serialize(out) + "\n";
}

std::string metrics_text(const std::vector<ProxyStats>& stats) {
  std::string out;
  auto escape = [](std::string_view s) {
    std::string r;
    for (char c : s) {
      if (c == '\\' || c == '"') r.push_back('\\');
      if (c == '\n') {
        r.append("\\n");
        continue;
      }
      r.push_back(c);
    }
    return r;
  };
  auto family = [&](std::string_view name, std::string_view type, std::string_view help) {
    out.append("# HELP ").append(name).append(" ").append(help).append("\n");
    out.append("# TYPE ").append(name).append(" ").append(type).append("\n");
  };
  auto bytes = [&](std::string_view name, std::string_view help, bool sent) {
    family(name, "counter", help);
    for (const ProxyStats& s : stats) {
      for (int d = 0; d < kDirections; ++d) {
        const auto value = sent ? s.sent_bytes[d] : s.received_bytes[d];
        out.append(name)
            .append("{direction=\"")
            .append(to_string(static_cast<Direction>(d)))
            .append("\",listener=\"")
            .append(escape(s.listen))
            .append("\",proxy=\"")
            .append(escape(s.name))
            .append("\",upstream=\"")
            .append(escape(s.upstream))
            .append("\"} ")
            .append(std::to_string(value))
            .append("\n");
      }
    }
  };
  bytes("toxiproxy_proxy_received_bytes_total", "Bytes read from the source, per direction.", false);
  bytes("toxiproxy_proxy_sent_bytes_total", "Bytes written to the destination, per direction.", true);
  auto per_proxy = [&](std::string_view name, std::string_view type, std::string_view help,
                       std::uint64_t ProxyStats::*field) {
    family(name, type, help);
    for (const ProxyStats& s : stats) {
      out.append(name).append("{proxy=\"").append(escape(s.name)).append("\"} ");
      out.append(std::to_string(s.*field)).append("\n");
    }
  };
  per_proxy("agentlab_chaos_proxy_connections_accepted_total", "counter",
            "Client connections accepted.", &ProxyStats::connections_accepted);
  per_proxy("agentlab_chaos_proxy_connections_open", "gauge", "Client connections open.",
            &ProxyStats::connections_open);
  per_proxy("agentlab_chaos_proxy_connections_rejected_total", "counter",
            "Client connections closed at once: over max_connections_per_proxy.",
            &ProxyStats::connections_rejected);
  per_proxy("agentlab_chaos_proxy_upstream_failures_total", "counter",
            "Upstream dials that failed or timed out.", &ProxyStats::upstream_failures);
  per_proxy("agentlab_chaos_proxy_closed_by_toxic_total", "counter",
            "Connections closed by timeout, reset_peer or limit_data.", &ProxyStats::closed_by_toxic);
  return out;
}

}  // namespace lab::mocks::proxy
