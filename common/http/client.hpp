#pragma once
// HTTP/1.1 client: one ConnectionPool per (thread, endpoint), keep-alive connections reused
// LIFO, every phase under a timeout, errors classified for the recorder.
//
// The request path is built for load generation: the request is rendered into a buffer the
// connection keeps, written with one non-blocking send, and the response parsed in place by
// Http1ResponseParser from a per-connection read buffer; one timer per connection, re-armed only
// when it fires, bounds every request. Once warm, a request allocates nothing but its coroutine
// frame (which Asio recycles when it can) and what the caller asks for (a body longer than the
// small-string buffer, copied header fields).
//
// Threading: a pool belongs to one executor (one thread); call it only from coroutines running
// there. The harness keeps one pool per worker thread, so nothing here takes a lock.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/beast/http/verb.hpp>

#include "common/clock/clock.hpp"
#include "common/http/sse.hpp"

namespace lab::http {

/// "http://host:port/base" split into parts. https is rejected by parse_url with a message.
struct Url {
  std::string host;
  std::uint16_t port = 80;
  std::string base_path;  ///< "" or "/prefix" (no trailing '/').
};
/// Parses an http:// URL; on failure returns nullopt and sets `error` (when given).
std::optional<Url> parse_url(std::string_view url, std::string* error = nullptr);

/// Why a request failed, as the recorder counts it.
enum class ErrorClass { kNone, kConnect, kTimeout, kProtocol, kAborted };
std::string_view to_string(ErrorClass c);

struct ClientOptions {
  std::chrono::milliseconds connect_timeout{5'000};
  std::chrono::milliseconds request_timeout{60'000};  ///< whole request → whole response.
  std::chrono::milliseconds stream_idle_timeout{60'000};  ///< max gap between stream bytes.
  std::size_t max_body_bytes = 64 << 20;
  std::size_t max_idle_connections = 1024;  ///< per pool; extra connections close on release.
  std::size_t max_header_bytes = 64 << 10;  ///< status line + header fields (and trailers).
};

struct ClientRequest {
  boost::beast::http::verb method = boost::beast::http::verb::get;
  std::string target = "/";  ///< path + query; the pool's base_path is prepended.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::string content_type;  ///< set when body is non-empty ("application/json").
  std::optional<std::chrono::milliseconds> timeout;  ///< overrides ClientOptions::request_timeout
};

struct ClientResponse {
  unsigned status = 0;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  ///< only when keep_headers
  TimePoint sent_at{};         ///< when the request write started (after connect)
  TimePoint first_byte_at{};   ///< when the response header was complete
  TimePoint done_at{};
  bool reused_connection = false;
  std::optional<std::string_view> header(std::string_view name) const;
};

struct ClientResult {
  ErrorClass error = ErrorClass::kNone;
  std::string message;  ///< empty on success
  bool ok() const { return error == ErrorClass::kNone; }
};

/// Called for each SSE event with the time it was parsed. Return false to stop reading (the
/// stream is then finished: the connection is reused if the server ends the response promptly,
/// otherwise closed).
using OnSseEvent = std::function<bool(SseEvent&&, TimePoint)>;

/// Each pooled connection has one watchdog timer, armed for the deadline of the request it
/// carries and not cancelled when the request ends (the next request usually moves it): an
/// io_context with idle connections keeps that pending wait until the last deadline passes. Run
/// the context until your own work is done (run_one in a loop, run_for), not until it runs dry.
class ConnectionPool {
 public:
  ConnectionPool(boost::asio::any_io_executor executor, Url url, ClientOptions options,
                 const Clock& clock = SteadyClock::instance());
  ~ConnectionPool();
  ConnectionPool(const ConnectionPool&) = delete;
  ConnectionPool& operator=(const ConnectionPool&) = delete;

  /// Sends one request and reads the whole response into `out`. Non-2xx statuses are not
  /// errors here (the caller's expectations judge them).
  boost::asio::awaitable<ClientResult> request(const ClientRequest& req, ClientResponse& out,
                                               bool keep_headers = false);

  /// Sends a request and reads a text/event-stream response incrementally, calling on_event
  /// for every event. `out` gets status, timings and (for non-2xx or non-SSE answers) the body.
  /// `deadline` bounds the whole stream.
  boost::asio::awaitable<ClientResult> stream_sse(const ClientRequest& req, ClientResponse& out,
                                                  const OnSseEvent& on_event,
                                                  std::chrono::nanoseconds deadline);

  /// Connections opened so far / idle now.
  std::uint64_t connections_opened() const { return opened_; }
  std::size_t idle() const;

 private:
  struct Connection;
  std::shared_ptr<Connection> take_idle();
  boost::asio::awaitable<std::shared_ptr<Connection>> connect(ClientResult& result);
  void release(std::shared_ptr<Connection> c);
  boost::asio::any_io_executor executor_;
  Url url_;
  ClientOptions options_;
  const Clock& clock_;
  std::string host_header_;
  std::vector<std::shared_ptr<Connection>> idle_;
  std::uint64_t opened_ = 0;
};

}  // namespace lab::http
