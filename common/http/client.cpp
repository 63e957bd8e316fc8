#include "common/http/client.hpp"

#include <algorithm>
#include <charconv>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>

namespace lab::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

namespace {

constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

ClientResult classify(const error_code& ec, std::string_view what) {
  ClientResult r;
  if (ec == beast::error::timeout) r.error = ErrorClass::kTimeout;
  else if (ec == asio::error::operation_aborted) r.error = ErrorClass::kAborted;
  else r.error = ErrorClass::kProtocol;
  r.message = std::string(what) + ": " + ec.message();
  return r;
}

bool is_idempotent(bhttp::verb v) {
  return v == bhttp::verb::get || v == bhttp::verb::head || v == bhttp::verb::put ||
         v == bhttp::verb::delete_ || v == bhttp::verb::options;
}

// A reused keep-alive connection may have been closed by the server while idle. Like common
// HTTP clients we retry once on a fresh connection when no response byte arrived, for
// idempotent methods, or for any method when the server closed cleanly (it read nothing).
bool stale_connection_retry(const error_code& ec, bhttp::verb method) {
  if (ec == bhttp::error::end_of_stream || ec == asio::error::eof) return true;
  return is_idempotent(method) &&
         (ec == asio::error::connection_reset || ec == asio::error::broken_pipe);
}

bhttp::request<bhttp::string_body> build(const ClientRequest& req, const Url& url,
                                         const std::string& host_header) {
  bhttp::request<bhttp::string_body> r{req.method, url.base_path + req.target, 11};
  r.set(bhttp::field::host, host_header);
  r.set(bhttp::field::user_agent, "agentlab/0.1");
  for (const auto& [name, value] : req.headers) r.set(name, value);
  if (!req.body.empty() || req.method == bhttp::verb::post || req.method == bhttp::verb::put) {
    if (!req.body.empty())
      r.set(bhttp::field::content_type,
            req.content_type.empty() ? std::string("application/json") : req.content_type);
    r.body() = req.body;
  }
  r.keep_alive(true);
  r.prepare_payload();
  return r;
}

template <class Message>
void copy_headers(const Message& msg, ClientResponse& out) {
  out.headers.clear();
  for (const auto& f : msg) out.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
}

}  // namespace

std::string_view to_string(ErrorClass c) {
  switch (c) {
    case ErrorClass::kNone: return "none";
    case ErrorClass::kConnect: return "connect";
    case ErrorClass::kTimeout: return "timeout";
    case ErrorClass::kProtocol: return "protocol";
    case ErrorClass::kAborted: return "aborted";
  }
  return "unknown";
}

std::optional<Url> parse_url(std::string_view url, std::string* error) {
  auto fail = [&](std::string msg) -> std::optional<Url> {
    if (error) *error = std::move(msg);
    return std::nullopt;
  };
  constexpr std::string_view kHttp = "http://";
  if (url.starts_with("https://"))
    return fail("https is not supported yet: put a TLS-terminating proxy in front, or use http://");
  if (!url.starts_with(kHttp)) return fail("URL must start with http://");
  url.remove_prefix(kHttp.size());
  Url out;
  auto slash = url.find('/');
  std::string_view authority = url.substr(0, slash);
  if (slash != std::string_view::npos) {
    std::string_view path = url.substr(slash);
    while (!path.empty() && path.back() == '/') path.remove_suffix(1);
    out.base_path = std::string(path);
  }
  std::string_view host = authority;
  if (!authority.empty() && authority.front() == '[') {  // [::1]:8080
    auto close = authority.find(']');
    if (close == std::string_view::npos) return fail("unterminated IPv6 address in URL");
    host = authority.substr(1, close - 1);
    authority.remove_prefix(close + 1);
    if (!authority.empty() && authority.front() != ':') return fail("bad port in URL");
    if (!authority.empty()) authority.remove_prefix(1);
    else authority = {};
  } else {
    auto colon = authority.rfind(':');
    if (colon != std::string_view::npos) {
      host = authority.substr(0, colon);
      authority = authority.substr(colon + 1);
    } else {
      authority = {};
    }
  }
  if (host.empty()) return fail("URL has no host");
  out.host = std::string(host);
  if (!authority.empty()) {
    unsigned port = 0;
    auto [ptr, ec] = std::from_chars(authority.data(), authority.data() + authority.size(), port);
    if (ec != std::errc() || ptr != authority.data() + authority.size() || port == 0 || port > 65535)
      return fail("bad port '" + std::string(authority) + "' in URL");
    out.port = static_cast<std::uint16_t>(port);
  }
  return out;
}

std::optional<std::string_view> ClientResponse::header(std::string_view name) const {
  for (const auto& [k, v] : headers)
    if (beast::iequals(k, name)) return std::string_view(v);
  return std::nullopt;
}

struct ConnectionPool::Connection {
  explicit Connection(asio::any_io_executor ex) : stream(std::move(ex)) {}
  beast::tcp_stream stream;
  beast::flat_buffer buffer;
  bool used = false;
};

ConnectionPool::ConnectionPool(asio::any_io_executor executor, Url url, ClientOptions options,
                               const Clock& clock)
    : executor_(std::move(executor)), url_(std::move(url)), options_(options), clock_(clock) {
  host_header_ = url_.host.find(':') != std::string::npos ? "[" + url_.host + "]" : url_.host;
  if (url_.port != 80) host_header_ += ":" + std::to_string(url_.port);
}

ConnectionPool::~ConnectionPool() = default;

std::size_t ConnectionPool::idle() const { return idle_.size(); }

asio::awaitable<std::unique_ptr<ConnectionPool::Connection>> ConnectionPool::acquire(
    ClientResult& result) {
  if (!idle_.empty()) {
    auto c = std::move(idle_.back());
    idle_.pop_back();
    co_return c;
  }
  tcp::resolver resolver(executor_);
  auto [rec, endpoints] =
      co_await resolver.async_resolve(url_.host, std::to_string(url_.port), kTuple);
  if (rec) {
    result = {ErrorClass::kConnect, "resolve " + url_.host + ": " + rec.message()};
    co_return nullptr;
  }
  auto c = std::make_unique<Connection>(executor_);
  c->stream.expires_after(options_.connect_timeout);
  auto [cec, ep] = co_await c->stream.async_connect(endpoints, kTuple);
  if (cec) {
    result = {ErrorClass::kConnect, "connect " + url_.host + ":" + std::to_string(url_.port) +
                                        ": " + (cec == beast::error::timeout ? std::string("timed out") : cec.message())};
    co_return nullptr;
  }
  c->stream.socket().set_option(tcp::no_delay(true));
  ++opened_;
  co_return c;
}

void ConnectionPool::release(std::unique_ptr<Connection> c) {
  c->used = true;
  c->stream.expires_never();
  if (idle_.size() < options_.max_idle_connections) idle_.push_back(std::move(c));
}

asio::awaitable<ClientResult> ConnectionPool::request(const ClientRequest& req, ClientResponse& out,
                                                      bool keep_headers) {
  auto msg = build(req, url_, host_header_);
  ClientResult result;
  for (int attempt = 0; attempt < 2; ++attempt) {
    auto c = co_await acquire(result);
    if (!c) co_return result;
    const bool reused = c->used;
    out.reused_connection = reused;
    c->stream.expires_after(req.timeout.value_or(options_.request_timeout));
    out.sent_at = clock_.now();
    auto [wec, wn] = co_await bhttp::async_write(c->stream, msg, kTuple);
    if (wec) {
      if (reused && attempt == 0 && stale_connection_retry(wec, req.method)) continue;
      co_return classify(wec, "write");
    }
    bhttp::response_parser<bhttp::string_body> parser;
    parser.body_limit(options_.max_body_bytes);
    auto [hec, hn] = co_await bhttp::async_read_header(c->stream, c->buffer, parser, kTuple);
    if (hec) {
      if (reused && attempt == 0 && hn == 0 && stale_connection_retry(hec, req.method)) continue;
      co_return classify(hec, "read header");
    }
    out.first_byte_at = clock_.now();
    if (!parser.is_done()) {
      auto [bec, bn] = co_await bhttp::async_read(c->stream, c->buffer, parser, kTuple);
      if (bec) co_return classify(bec, "read body");
    }
    out.done_at = clock_.now();
    auto& res = parser.get();
    out.status = res.result_int();
    if (keep_headers) copy_headers(res, out);
    out.body = std::move(res.body());
    if (res.keep_alive()) release(std::move(c));
    co_return ClientResult{};
  }
  co_return result;
}

asio::awaitable<ClientResult> ConnectionPool::stream_sse(const ClientRequest& req,
                                                         ClientResponse& out,
                                                         const OnSseEvent& on_event,
                                                         std::chrono::nanoseconds deadline) {
  auto msg = build(req, url_, host_header_);
  if (msg.find(bhttp::field::accept) == msg.end()) msg.set(bhttp::field::accept, "text/event-stream");
  const TimePoint started = clock_.now();
  const TimePoint end_by = started + deadline;
  auto remaining = [&] {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end_by - clock_.now());
    return std::clamp(left, std::chrono::milliseconds(1), options_.stream_idle_timeout);
  };
  ClientResult result;
  for (int attempt = 0; attempt < 2; ++attempt) {
    auto c = co_await acquire(result);
    if (!c) co_return result;
    const bool reused = c->used;
    out.reused_connection = reused;
    c->stream.expires_after(remaining());
    out.sent_at = clock_.now();
    auto [wec, wn] = co_await bhttp::async_write(c->stream, msg, kTuple);
    if (wec) {
      if (reused && attempt == 0 && stale_connection_retry(wec, req.method)) continue;
      co_return classify(wec, "write");
    }
    bhttp::response_parser<bhttp::buffer_body> parser;
    parser.body_limit(boost::none);  // bounded by the deadline and the SSE line limit instead
    c->stream.expires_after(remaining());
    auto [hec, hn] = co_await bhttp::async_read_header(c->stream, c->buffer, parser, kTuple);
    if (hec) {
      if (reused && attempt == 0 && hn == 0 && stale_connection_retry(hec, req.method)) continue;
      co_return classify(hec, clock_.now() >= end_by ? "stream deadline" : "read header");
    }
    out.first_byte_at = clock_.now();
    out.status = parser.get().result_int();
    copy_headers(parser.get(), out);
    const bool is_sse = parser.get()[bhttp::field::content_type].starts_with("text/event-stream");
    const bool sse_mode = is_sse && out.status / 100 == 2;

    SseParser sse;
    bool stop = false;
    char chunk[16 * 1024];
    while (!parser.is_done() && !stop) {
      parser.get().body().data = chunk;
      parser.get().body().size = sizeof chunk;
      c->stream.expires_after(remaining());
      auto [ec, n] = co_await bhttp::async_read_some(c->stream, c->buffer, parser, kTuple);
      if (ec == bhttp::error::need_buffer) ec = {};
      const std::size_t got = sizeof chunk - parser.get().body().size;
      if (got > 0) {
        std::string_view bytes(chunk, got);
        if (sse_mode) {
          const TimePoint t = clock_.now();
          bool ok = sse.feed(bytes, [&](SseEvent&& e) {
            if (!stop && !on_event(std::move(e), t)) stop = true;
          });
          if (!ok) co_return ClientResult{ErrorClass::kProtocol, "SSE line over the size limit"};
        } else {
          if (out.body.size() + got > options_.max_body_bytes)
            co_return ClientResult{ErrorClass::kProtocol, "response body over the size limit"};
          out.body.append(bytes);
        }
      }
      if (ec) {
        out.done_at = clock_.now();
        if (ec == beast::error::timeout && out.done_at >= end_by)
          co_return ClientResult{ErrorClass::kTimeout, "stream deadline reached"};
        co_return classify(ec, "read stream");
      }
    }
    out.done_at = clock_.now();
    if (stop && !parser.is_done()) {
      // The caller has what it wanted; give the server a moment to end the response so the
      // connection can be reused, otherwise drop it.
      c->stream.expires_after(std::chrono::milliseconds(200));
      while (!parser.is_done()) {
        parser.get().body().data = chunk;
        parser.get().body().size = sizeof chunk;
        auto [ec, n] = co_await bhttp::async_read_some(c->stream, c->buffer, parser, kTuple);
        if (ec == bhttp::error::need_buffer) ec = {};
        if (ec) co_return ClientResult{};
      }
    }
    if (parser.is_done() && parser.get().keep_alive()) release(std::move(c));
    co_return ClientResult{};
  }
  co_return result;
}

}  // namespace lab::http
