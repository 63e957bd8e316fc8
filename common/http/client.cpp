#include "common/http/client.hpp"

#include <algorithm>
#include <charconv>
#include <cstring>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

#include "common/http/http1_chars.hpp"
#include "common/http/http1_parser.hpp"
#include "common/http/http1_request.hpp"

namespace lab::http {

namespace asio = boost::asio;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;
using Steady = std::chrono::steady_clock;

namespace {

// Operations are awaited as deferred operations: the coroutine suspends on them directly, with no
// extra coroutine frame per operation as use_awaitable makes. Each is first stored in a named
// local (GCC 12 mishandles temporaries inside a co_await expression).
constexpr auto kDeferred = asio::as_tuple(asio::deferred);
constexpr std::string_view kUserAgent = "agentlab/0.1";
// Read buffer per connection: starts small (10,000 idle SSE streams cost 4 KiB each) and doubles
// while reads fill it, up to kBulkReadBytes; it grows past that only to hold a header block.
constexpr std::size_t kInitialReadBytes = 4 << 10;
constexpr std::size_t kBulkReadBytes = 64 << 10;

ClientResult classify(const error_code& ec, std::string_view what) {
  ClientResult r;
  r.error = ec == asio::error::operation_aborted ? ErrorClass::kAborted : ErrorClass::kProtocol;
  r.message = std::string(what) + ": " + ec.message();
  return r;
}

ClientResult timed_out(std::string_view what) {
  return {ErrorClass::kTimeout, std::string(what) + ": timed out"};
}

ClientResult protocol_error(Http1Error e) {
  return {ErrorClass::kProtocol, "read response: " + std::string(to_string(e))};
}

bool is_idempotent(bhttp::verb v) {
  return v == bhttp::verb::get || v == bhttp::verb::head || v == bhttp::verb::put ||
         v == bhttp::verb::delete_ || v == bhttp::verb::options;
}

// A reused keep-alive connection may have been closed by the server while idle. Like common
// HTTP clients we retry once on a fresh connection when no response byte arrived, for
// idempotent methods, or for any method when the server closed cleanly (it read nothing).
bool stale_connection_retry(const error_code& ec, bhttp::verb method) {
  if (ec == asio::error::eof) return true;
  return is_idempotent(method) &&
         (ec == asio::error::connection_reset || ec == asio::error::broken_pipe);
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
    if (http1::iequals(k, name)) return std::string_view(v);
  return std::nullopt;
}

// One keep-alive connection: the socket, its watchdog timer, the request bytes, the read buffer
// and the parser, all reused from request to request.
struct ConnectionPool::Connection : std::enable_shared_from_this<Connection> {
  explicit Connection(const asio::any_io_executor& ex) : socket(ex), timer(ex) {}

  enum class Progress { kNeedBytes, kDone, kFailed, kStopped };

  tcp::socket socket;
  asio::steady_timer timer;
  Http1ResponseParser parser;
  std::string request_bytes;
  std::size_t request_sent = 0;
  std::unique_ptr<char[]> in;  ///< read buffer: [in_begin, in_end) not yet parsed
  std::size_t in_capacity = 0;
  std::size_t in_begin = 0;
  std::size_t in_end = 0;
  bool last_read_filled = false;
  std::size_t received = 0;  ///< bytes read for the current response
  bool header_reported = false;
  bool used = false;  ///< has carried a request before
  // The watchdog: `deadline` bounds the operation in progress (max() when none). The timer is
  // armed for `armed_for` and re-armed only when it fires early or a sooner deadline comes, so
  // the request path just stores a time point. When a deadline passes the socket is closed,
  // which ends the pending operation; `timed_out` tells the coroutine why.
  Steady::time_point deadline = Steady::time_point::max();
  Steady::time_point armed_for{};
  std::uint64_t arm_generation = 0;
  bool armed = false;
  bool timed_out = false;

  void expire_at(Steady::time_point when) {
    deadline = when;
    if (!armed || when < armed_for) arm(when);
  }
  void expire_never() { deadline = Steady::time_point::max(); }

  void arm(Steady::time_point when) {
    armed = true;
    armed_for = when;
    const std::uint64_t generation = ++arm_generation;
    timer.expires_at(when);
    timer.async_wait([self = weak_from_this(), generation](const error_code& ec) {
      if (ec) return;  // cancelled: destroyed or re-armed
      if (auto c = self.lock()) c->on_timer(generation);
    });
  }

  void on_timer(std::uint64_t generation) {
    if (generation != arm_generation) return;  // a wait that expired just before a re-arm
    armed = false;
    if (deadline == Steady::time_point::max()) return;
    if (Steady::now() < deadline) {
      arm(deadline);
      return;
    }
    timed_out = true;
    error_code ignored;
    socket.close(ignored);
  }

  /// Renders the request into request_bytes; returns what is wrong with it, or "".
  std::string_view render(const ClientRequest& req, const Url& url, std::string_view host,
                          std::string_view accept) {
    Http1RequestParts parts;
    parts.method = req.method;
    parts.path_prefix = url.base_path;
    parts.target = req.target;
    parts.host = host;
    parts.user_agent = kUserAgent;
    parts.accept = accept;
    parts.headers = &req.headers;
    parts.body = req.body;
    parts.content_type = req.content_type;
    request_sent = 0;
    return write_request(request_bytes, parts);
  }

  /// Sends what the socket takes now without blocking; would_block means the rest must be
  /// written asynchronously (rest_of_request()).
  error_code write_now() {
    error_code ec;
    request_sent = socket.write_some(asio::buffer(request_bytes), ec);
    if (ec == asio::error::would_block) request_sent = 0;
    else if (ec) return ec;
    if (request_sent < request_bytes.size()) return asio::error::would_block;
    return {};
  }
  asio::const_buffer rest_of_request() const {
    return asio::buffer(request_bytes.data() + request_sent, request_bytes.size() - request_sent);
  }

  void begin_response(const Http1Limits& limits, bool head_request,
                      std::vector<std::pair<std::string, std::string>>* headers) {
    parser.reset(limits, head_request, headers);
    received = 0;
    header_reported = false;
  }

  /// Parses what is buffered: on_header() once the header block is complete, on_body(bytes) for
  /// body bytes (returning false stops with kStopped). kNeedBytes: read more.
  template <class OnHeader, class OnBody>
  Progress advance(OnHeader&& on_header, OnBody&& on_body) {
    for (;;) {
      std::string_view body;
      const std::size_t used_bytes = parser.parse(buffered(), body);
      consume(used_bytes);  // moves offsets only: `body` stays valid
      if (!body.empty() && !on_body(body)) return Progress::kStopped;
      if (parser.failed()) return Progress::kFailed;
      if (!header_reported && parser.header_done()) {
        header_reported = true;
        on_header();
      }
      if (parser.done()) return Progress::kDone;
      if (used_bytes == 0) return Progress::kNeedBytes;
    }
  }

  /// True when the connection can carry the next request.
  bool reusable() const { return parser.done() && parser.keep_alive() && in_begin == in_end; }

  std::string_view buffered() const { return {in.get() + in_begin, in_end - in_begin}; }
  void consume(std::size_t n) {
    in_begin += n;
    if (in_begin == in_end) in_begin = in_end = 0;
  }
  /// Free space to read into; empty when `max_capacity` is reached with nothing parsed.
  asio::mutable_buffer read_space(std::size_t max_capacity) {
    if (in_begin > 0 && (in_end == in_capacity || last_read_filled)) {
      std::memmove(in.get(), in.get() + in_begin, in_end - in_begin);
      in_end -= in_begin;
      in_begin = 0;
    }
    const bool full = in_end == in_capacity;
    if ((full || (last_read_filled && in_capacity < kBulkReadBytes)) && in_capacity < max_capacity) {
      std::size_t capacity = std::max(kInitialReadBytes, in_capacity * 2);
      if (!full) capacity = std::min(capacity, kBulkReadBytes);
      capacity = std::min(capacity, max_capacity);
      auto bigger = std::make_unique<char[]>(capacity);
      if (in_end > 0) std::memcpy(bigger.get(), in.get(), in_end);
      in = std::move(bigger);
      in_capacity = capacity;
    }
    return {in.get() + in_end, in_capacity - in_end};
  }
  void commit(std::size_t n, std::size_t asked) {
    in_end += n;
    received += n;
    last_read_filled = n == asked;
  }
};

ConnectionPool::ConnectionPool(asio::any_io_executor executor, Url url, ClientOptions options,
                               const Clock& clock)
    : executor_(std::move(executor)), url_(std::move(url)), options_(options), clock_(clock) {
  host_header_ = url_.host.find(':') != std::string::npos ? "[" + url_.host + "]" : url_.host;
  if (url_.port != 80) host_header_ += ":" + std::to_string(url_.port);
}

ConnectionPool::~ConnectionPool() = default;

std::size_t ConnectionPool::idle() const { return idle_.size(); }

std::shared_ptr<ConnectionPool::Connection> ConnectionPool::take_idle() {
  if (idle_.empty()) return nullptr;
  auto c = std::move(idle_.back());
  idle_.pop_back();
  return c;
}

asio::awaitable<std::shared_ptr<ConnectionPool::Connection>> ConnectionPool::connect(ClientResult& result) {
  const std::string where = url_.host + ":" + std::to_string(url_.port);
  std::vector<tcp::endpoint> endpoints;
  error_code aec;
  const auto address = asio::ip::make_address(url_.host, aec);
  if (!aec) {
    endpoints.emplace_back(address, url_.port);  // numeric: no trip through the resolver thread
  } else {
    tcp::resolver resolver(executor_);
    const std::string port = std::to_string(url_.port);
    auto resolve = resolver.async_resolve(url_.host, port, kDeferred);
    auto [rec, found] = co_await std::move(resolve);
    if (rec) {
      result = {ErrorClass::kConnect, "resolve " + url_.host + ": " + rec.message()};
      co_return nullptr;
    }
    for (const auto& entry : found) endpoints.push_back(entry.endpoint());
  }
  auto c = std::make_shared<Connection>(executor_);
  c->expire_at(Steady::now() + options_.connect_timeout);
  error_code cec = asio::error::host_not_found;
  for (const auto& endpoint : endpoints) {
    error_code ignored;
    c->socket.close(ignored);
    c->socket.open(endpoint.protocol(), cec);
    if (cec) continue;
    auto connecting = c->socket.async_connect(endpoint, kDeferred);
    auto [ec] = co_await std::move(connecting);
    cec = ec;
    if (!cec || c->timed_out) break;
  }
  c->expire_never();
  if (c->timed_out) {
    result = {ErrorClass::kConnect, "connect " + where + ": timed out"};
    co_return nullptr;
  }
  if (cec) {
    result = {ErrorClass::kConnect, "connect " + where + ": " + cec.message()};
    co_return nullptr;
  }
  error_code ignored;
  c->socket.set_option(tcp::no_delay(true), ignored);
  c->socket.non_blocking(true, ignored);  // write_now() must never block the thread
  ++opened_;
  co_return c;
}

void ConnectionPool::release(std::shared_ptr<Connection> c) {
  c->used = true;
  c->expire_never();
  if (idle_.size() < options_.max_idle_connections) idle_.push_back(std::move(c));
}

// request() and stream_sse() keep few locals alive across suspensions: Asio recycles coroutine
// frames only up to about 1 KiB, and request() is the load generator's hot path.
asio::awaitable<ClientResult> ConnectionPool::request(const ClientRequest& req, ClientResponse& out,
                                                      bool keep_headers) {
  ClientResult result;
  for (int attempt = 0; attempt < 2; ++attempt) {
    std::shared_ptr<Connection> c = take_idle();
    if (!c) {
      c = co_await connect(result);
      if (!c) co_return result;
    }
    if (const std::string_view bad = c->render(req, url_, host_header_, {}); !bad.empty()) {
      result = {ErrorClass::kProtocol, "request: " + std::string(bad)};
      release(std::move(c));
      co_return result;
    }
    out.reused_connection = c->used;
    c->expire_at(Steady::now() + req.timeout.value_or(options_.request_timeout));
    out.sent_at = clock_.now();
    error_code wec = c->write_now();
    if (wec == asio::error::would_block) {
      auto writing = asio::async_write(c->socket, c->rest_of_request(), kDeferred);
      auto [ec, n] = co_await std::move(writing);
      wec = ec;
    }
    if (wec) {
      if (c->timed_out) co_return timed_out("write");
      if (c->used && attempt == 0 && stale_connection_retry(wec, req.method)) continue;
      co_return classify(wec, "write");
    }

    c->begin_response({options_.max_header_bytes, options_.max_body_bytes}, req.method == bhttp::verb::head,
                      keep_headers ? &out.headers : nullptr);
    out.status = 0;
    out.body.clear();
    const auto on_header = [&] {
      out.first_byte_at = clock_.now();
      if (const auto length = c->parser.content_length()) out.body.reserve(*length);
    };
    const auto on_body = [&](std::string_view bytes) {
      out.body.append(bytes);
      return true;
    };
    bool stale = false;
    for (;;) {
      const auto progress = c->advance(on_header, on_body);
      if (progress == Connection::Progress::kDone) break;
      if (progress != Connection::Progress::kNeedBytes) co_return protocol_error(c->parser.error());
      const asio::mutable_buffer space = c->read_space(options_.max_header_bytes + kBulkReadBytes);
      if (space.size() == 0) co_return protocol_error(Http1Error::kHeaderTooLarge);
      auto reading = c->socket.async_read_some(space, kDeferred);
      auto [rec, n] = co_await std::move(reading);
      c->commit(n, space.size());
      if (!rec) continue;
      if (c->timed_out) co_return timed_out(c->header_reported ? "read body" : "read header");
      if (c->received == 0 && c->used && attempt == 0 && stale_connection_retry(rec, req.method)) {
        stale = true;
        break;
      }
      if (rec != asio::error::eof) co_return classify(rec, c->header_reported ? "read body" : "read header");
      c->parser.finish_on_eof();  // ends a body framed by the close, or marks a truncation
    }
    if (stale) continue;
    out.done_at = clock_.now();
    out.status = c->parser.status();
    if (c->reusable()) release(std::move(c));
    co_return ClientResult{};
  }
  co_return result;
}

asio::awaitable<ClientResult> ConnectionPool::stream_sse(const ClientRequest& req,
                                                         ClientResponse& out,
                                                         const OnSseEvent& on_event,
                                                         std::chrono::nanoseconds deadline) {
  const TimePoint end_by = clock_.now() + deadline;
  // Each wait is bounded by the idle timeout and by what is left of the whole stream.
  const auto next_deadline = [&] {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end_by - clock_.now());
    return Steady::now() + std::clamp(left, std::chrono::milliseconds(1), options_.stream_idle_timeout);
  };
  ClientResult result;
  for (int attempt = 0; attempt < 2; ++attempt) {
    std::shared_ptr<Connection> c = take_idle();
    if (!c) {
      c = co_await connect(result);
      if (!c) co_return result;
    }
    if (const std::string_view bad = c->render(req, url_, host_header_, "text/event-stream"); !bad.empty()) {
      result = {ErrorClass::kProtocol, "request: " + std::string(bad)};
      release(std::move(c));
      co_return result;
    }
    out.reused_connection = c->used;
    c->expire_at(next_deadline());
    out.sent_at = clock_.now();
    error_code wec = c->write_now();
    if (wec == asio::error::would_block) {
      auto writing = asio::async_write(c->socket, c->rest_of_request(), kDeferred);
      auto [ec, n] = co_await std::move(writing);
      wec = ec;
    }
    if (wec) {
      if (c->timed_out) co_return timed_out("write");
      if (c->used && attempt == 0 && stale_connection_retry(wec, req.method)) continue;
      co_return classify(wec, "write");
    }

    // No body limit for the stream itself (the deadline and the SSE line limit bound it); a
    // non-SSE answer is bounded as it is appended.
    c->begin_response({options_.max_header_bytes, std::numeric_limits<std::size_t>::max()},
                      req.method == bhttp::verb::head, &out.headers);
    out.status = 0;
    out.body.clear();
    SseParser sse;
    bool sse_mode = false;
    bool stop = false;
    const char* failure = nullptr;
    const auto on_header = [&] {
      out.first_byte_at = clock_.now();
      out.status = c->parser.status();
      sse_mode = out.status / 100 == 2 && c->parser.content_type().starts_with("text/event-stream");
    };
    const auto on_body = [&](std::string_view bytes) {
      if (!sse_mode) {
        if (out.body.size() + bytes.size() > options_.max_body_bytes) failure = "response body over the size limit";
        else out.body.append(bytes);
        return failure == nullptr;
      }
      const TimePoint t = clock_.now();
      const bool ok = sse.feed(bytes, [&](SseEvent&& e) {
        if (!stop && !on_event(std::move(e), t)) stop = true;
      });
      if (!ok) failure = "SSE line over the size limit";
      return ok && !stop;
    };
    bool stale = false;
    for (;;) {
      const auto progress = c->advance(on_header, on_body);
      if (failure) co_return ClientResult{ErrorClass::kProtocol, failure};
      if (progress == Connection::Progress::kDone || progress == Connection::Progress::kStopped) break;
      if (progress == Connection::Progress::kFailed) co_return protocol_error(c->parser.error());
      const asio::mutable_buffer space = c->read_space(options_.max_header_bytes + kBulkReadBytes);
      if (space.size() == 0) co_return protocol_error(Http1Error::kHeaderTooLarge);
      c->expire_at(next_deadline());
      auto reading = c->socket.async_read_some(space, kDeferred);
      auto [rec, n] = co_await std::move(reading);
      c->commit(n, space.size());
      if (!rec) continue;
      out.done_at = clock_.now();
      if (c->timed_out) {
        if (out.done_at >= end_by) co_return ClientResult{ErrorClass::kTimeout, "stream deadline reached"};
        co_return timed_out(c->header_reported ? "read stream" : "read header");
      }
      if (c->received == 0 && c->used && attempt == 0 && stale_connection_retry(rec, req.method)) {
        stale = true;
        break;
      }
      if (rec != asio::error::eof) co_return classify(rec, c->header_reported ? "read stream" : "read header");
      c->parser.finish_on_eof();
    }
    if (stale) continue;
    out.done_at = clock_.now();
    if (stop && !c->parser.done()) {
      // The caller has what it wanted; give the server a moment to end the response so the
      // connection can be reused, otherwise drop it.
      c->expire_at(Steady::now() + std::chrono::milliseconds(200));
      const auto discard = [](std::string_view) { return true; };
      for (;;) {
        const auto progress = c->advance([] {}, discard);
        if (progress != Connection::Progress::kNeedBytes) break;
        const asio::mutable_buffer space = c->read_space(options_.max_header_bytes + kBulkReadBytes);
        if (space.size() == 0) break;
        auto reading = c->socket.async_read_some(space, kDeferred);
        auto [rec, n] = co_await std::move(reading);
        c->commit(n, space.size());
        if (rec) break;
      }
    }
    if (c->reusable()) release(std::move(c));
    co_return ClientResult{};
  }
  co_return result;
}

}  // namespace lab::http
