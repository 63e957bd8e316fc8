// HTTP/1.1 server base: one acceptor, `threads` io_contexts, one coroutine per connection.
//
// Life of a connection (Connection::run): wait for the first bytes of a request (idle timeout
// between keep-alive requests, read timeout for the first one) → read the header, answer
// "Expect: 100-continue", read the body (body_limit → 413; parse error → 400; both close the
// connection after a bounded lingering read so the client sees the answer) → call the handler
// with the Connection as its Exchange → loop while the answer was keep-alive.
//
// Threading: a connection lives on one io_context for its whole life, so its state and its
// shard's connection list need no locks. Only the counters (atomics) and the drain wait
// (mutex + condition variable) are shared between threads.
//
// Peer-close detection: Exchange::closed() must notice a client that went away while the
// handler waits (a long stream, a "hang" fault). The first closed() call of an exchange starts
// one read on the raw socket (the PeerWatch); EOF or an error there marks the peer gone. Bytes
// it reads instead (a pipelined request) are kept and put in front of the next parse.

#include "common/http/server.hpp"

#include <algorithm>
#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/field.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/serializer.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <exception>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <system_error>
#include <utility>

#include <sys/socket.h>
#include <sys/uio.h>

namespace lab::http {

namespace {

namespace bhttp = beast::http;

constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);

/// Bytes asked for (at least) when waiting for the first bytes of a request. Small, because
/// every open connection keeps its buffer; beast grows it for large requests.
constexpr std::size_t kFirstRead = 1024;
/// A connection's buffer larger than this (after a big request) is released while idle.
constexpr std::size_t kKeepBufferBytes = 16 * 1024;
/// After a 400/413 the server keeps reading (and discarding) for at most this long or this
/// many bytes, so the client's unread upload does not turn the close into a reset that
/// destroys the answer (nginx's "lingering close").
constexpr std::chrono::milliseconds kLingerTime{2000};
constexpr std::size_t kLingerBytes = 4 << 20;
constexpr std::size_t kLingerChunk = 16 * 1024;
/// After the drain, sockets are closed; coroutines get this long to unwind before the
/// io_contexts are stopped and whatever is left (handlers that ignore closed()) is destroyed.
constexpr std::chrono::milliseconds kForceCloseGrace{100};
/// Pause after a failed accept (EMFILE and the like) so the loop does not spin.
constexpr std::chrono::milliseconds kAcceptRetryDelay{50};
/// Bytes the peer watch reads at most (a pipelined request that arrived during a handler);
/// more stays in the kernel until the next request is read.
constexpr std::size_t kWatchBytes = 512;

void log_exception(const char* where, const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "agentlab http: %s: %s\n", where, e.what());
  } catch (...) {
    std::fprintf(stderr, "agentlab http: %s: unknown exception\n", where);
  }
}

/// One non-blocking send of `parts` (MSG_DONTWAIT: never waits, whatever the socket's mode;
/// MSG_NOSIGNAL: a gone peer is an error, not SIGPIPE). Returns the bytes the socket took (0
/// when its buffer is full) or sets `ec`.
std::size_t send_now(int fd, const iovec* parts, std::size_t count, error_code& ec) {
  msghdr message{};
  message.msg_iov = const_cast<iovec*>(parts);
  message.msg_iovlen = count;
  for (;;) {
    const ssize_t sent = ::sendmsg(fd, &message, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (sent >= 0) return static_cast<std::size_t>(sent);
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
    ec.assign(errno, asio::error::get_system_category());
    return 0;
  }
}

/// The chunk-size line of a chunk of `size` bytes ("1a2\r\n") into `out`; returns its length.
std::size_t chunk_size_line(std::size_t size, char (&out)[24]) {
  static constexpr char kHex[] = "0123456789abcdef";
  char digits[16];
  std::size_t n = 0;
  do {
    digits[n++] = kHex[size & 0xf];
    size >>= 4;
  } while (size != 0);
  std::size_t length = 0;
  while (n > 0) out[length++] = digits[--n];
  out[length++] = '\r';
  out[length++] = '\n';
  return length;
}

constexpr std::string_view kCrlf = "\r\n";
constexpr std::string_view kLastChunk = "0\r\n\r\n";

bool is_parse_error(const error_code& ec) {
  static const auto& http_category = bhttp::make_error_code(bhttp::error::bad_method).category();
  return ec.category() == http_category && ec != bhttp::error::end_of_stream &&
         ec != bhttp::error::partial_message;
}

class Core;

/// A bounded one-shot read on the raw socket that tells whether the peer closed.
/// Shared with the read's completion handler, so it outlives the connection if it must.
struct PeerWatch {
  explicit PeerWatch(const asio::any_io_executor& ex) : done(ex) {}
  std::array<char, kWatchBytes> bytes{};
  std::size_t size = 0;      ///< bytes read (a pipelined request); kept for the next parse
  bool pending = false;      ///< the read is in flight
  bool peer_closed = false;  ///< the read saw EOF or an error
  bool waiting = false;      ///< the connection waits on `done` for the read to complete
  asio::steady_timer done;   ///< cancelled by the read's completion when `waiting`
};

struct Shard;

/// One accepted connection; also the Exchange handed to the handler for each request.
class Connection final : public Exchange, private SendBatch::Sink {
 public:
  Connection(Core& core, tcp::socket socket, Shard& shard);
  ~Connection() override;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  asio::awaitable<void> run();
  /// Stop-time: closes the socket unless an exchange is in progress. Connection's thread only.
  void close_if_idle();
  /// Closes the socket now. Connection's thread only.
  void close_now();

  Connection* prev = nullptr;  ///< intrusive list of the shard's connections
  Connection* next = nullptr;

  // Exchange
  using Exchange::respond;
  const Request& request() const override { return parser_->get(); }
  asio::any_io_executor executor() const override { return executor_; }
  tcp::endpoint remote() const override { return remote_; }
  asio::awaitable<error_code> respond(Response res) override;
  asio::awaitable<error_code> start_stream(
      Status status, std::string_view content_type,
      std::vector<std::pair<std::string, std::string>> headers) override;
  asio::awaitable<error_code> write_chunk(std::string_view data) override;
  ChunkWrite try_write_chunk(std::string_view data) override;
  ChunkWrite queue_chunk(SendBatch& batch, std::string_view data, ChunkSink& sink) override;
  asio::awaitable<error_code> flush() override;
  asio::awaitable<error_code> finish_stream() override;
  void abort() override;
  bool closed() const override;

 private:
  enum class Reply { none, responded, streaming, finished, aborted };

  const ServerOptions& options() const;
  ServerStats& stats();
  /// Reads one request into parser_; returns false when the connection must end.
  asio::awaitable<bool> read_request(bool first);
  /// Calls the handler and completes the exchange; returns whether to keep the connection.
  asio::awaitable<bool> handle();
  /// Answers a request that could not be read (400/413) and lingers before the close.
  asio::awaitable<void> reject(Status status, std::string message);
  asio::awaitable<error_code> write_response(Response& res, bool header_only = false);
  void note_read_error(const error_code& ec);
  void note_write_error(const error_code& ec);
  /// Sends `parts` without waiting; what the socket does not take goes to pending_.
  ChunkWrite send_or_keep(const iovec* parts, std::size_t count);
  /// Aborts when a write is in progress (flush() writing, a chunk queued in a SendBatch):
  /// the exchange takes one write at a time.
  void check_one_write(const char* call) const;
  /// The bytes that carry `data` as the next piece of the stream (chunk framing when chunked);
  /// `size_line` holds the size line they point into. Returns how many parts there are.
  std::size_t chunk_parts(std::string_view data, char (&size_line)[24],
                          std::array<std::string_view, 3>& parts) const;
  // SendBatch::Sink: the result of a chunk queued by queue_chunk().
  void on_sent(std::string_view bytes, std::size_t sent, const error_code& ec) noexcept override;
  void arm_watch();
  asio::awaitable<void> settle_watch();
  void shutdown_and_close();

  // The fields a streaming write touches come first, so a token costs few cache lines.
  Core& core_;
  beast::tcp_stream stream_;
  Reply reply_ = Reply::none;
  bool chunked_ = false;     ///< the current stream uses chunked encoding (HTTP/1.1)
  bool head_ = false;        ///< the request is HEAD: a stream sends its header only
  bool write_failed_ = false;
  bool flushing_ = false;    ///< flush() is writing pending_
  ChunkSink* queued_sink_ = nullptr;  ///< set while a chunk waits in a SendBatch
  bool busy_ = false;        ///< a complete request is being handled or answered
  bool keep_alive_ = false;  ///< the answer sent (or being sent) keeps the connection
  /// Stream bytes a non-blocking send could not place (at most about one chunk: see
  /// Exchange::try_write_chunk); they go out first, with the next flush().
  std::string pending_;
  std::shared_ptr<PeerWatch> watch_;  ///< created on the first closed() call, then reused
  error_code write_error_;   ///< the error that set write_failed_
  Shard& shard_;
  asio::any_io_executor executor_;
  beast::flat_buffer buffer_;  ///< kept for the life of the connection
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  tcp::endpoint remote_;
};

/// One io_context and its thread. Member order matters: the io_context is destroyed before
/// the connection list, because destroying it destroys leftover connection coroutines, which
/// unlink themselves.
struct Shard {
  Connection* connections = nullptr;
  asio::io_context ctx{1};
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::thread thread;
};

/// Holds one count of ServerStats::connections_open; released when the connection's
/// coroutine frame is destroyed, even if the coroutine never ran.
class OpenSlot {
 public:
  explicit OpenSlot(Core* core) : core_(core) {}
  OpenSlot(OpenSlot&& other) noexcept : core_(std::exchange(other.core_, nullptr)) {}
  OpenSlot& operator=(OpenSlot&&) = delete;
  ~OpenSlot();

 private:
  Core* core_;
};

class Core {
 public:
  Core(const ServerOptions& options, const Handler& handler, ServerStats& stats)
      : options_(options), handler_(handler), stats_(stats) {}
  ~Core() { stop(std::chrono::milliseconds(0)); }

  std::uint16_t start();
  void stop(std::chrono::milliseconds drain);

  const ServerOptions& options() const { return options_; }
  const Handler& handler() const { return handler_; }
  ServerStats& stats() { return stats_; }
  bool stopping() const { return stopping_.load(); }
  void on_connection_closed();

 private:
  asio::awaitable<void> accept_loop();
  static asio::awaitable<void> serve(Core& core, tcp::socket socket, OpenSlot slot, Shard& shard);
  static void run_context(asio::io_context& ctx);
  void wait_for_connections(std::chrono::steady_clock::time_point deadline);
  template <class F>
  void for_each_connection(F f);

  const ServerOptions& options_;
  const Handler& handler_;
  ServerStats& stats_;
  std::vector<std::unique_ptr<Shard>> shards_;
  std::optional<tcp::acceptor> acceptor_;
  std::atomic<bool> stopping_{false};
  std::mutex stop_mutex_;  ///< serialises start() and stop()
  bool started_ = false;
  bool stopped_ = false;
  std::mutex open_mutex_;  ///< with open_cv_: stop() waits for connections_open == 0
  std::condition_variable open_cv_;
};

OpenSlot::~OpenSlot() {
  if (core_ != nullptr) core_->on_connection_closed();
}

// ---------------------------------------------------------------------------------------------
// Core

std::uint16_t Core::start() {
  std::lock_guard lock(stop_mutex_);
  if (started_) throw std::logic_error("lab::http::Server::start called twice");
  const int threads = std::max(1, options_.threads);
  for (int i = 0; i < threads; ++i) shards_.push_back(std::make_unique<Shard>());
  asio::io_context& ctx0 = shards_.front()->ctx;
  const std::string where = options_.address + ":" + std::to_string(options_.port);
  auto fail = [&](const error_code& ec, const std::string& what) {
    acceptor_.reset();
    shards_.clear();
    throw std::system_error(std::error_code(ec), what + " " + where);
  };

  error_code ec;
  tcp::endpoint endpoint;
  const asio::ip::address address = asio::ip::make_address(options_.address, ec);
  if (!ec) {
    endpoint = tcp::endpoint(address, options_.port);
  } else {
    tcp::resolver::results_type results;
    {
      tcp::resolver resolver(ctx0);  // gone before fail() destroys the io_contexts
      results = resolver.resolve(options_.address, std::to_string(options_.port),
                                 tcp::resolver::passive, ec);
    }
    if (ec || results.empty()) fail(ec, "cannot resolve listen address");
    endpoint = *results.begin();
  }
  acceptor_.emplace(ctx0);
  acceptor_->open(endpoint.protocol(), ec);
  if (ec) fail(ec, "cannot open listen socket for");
  acceptor_->set_option(asio::socket_base::reuse_address(true), ec);
  if (ec) fail(ec, "cannot set SO_REUSEADDR for");
  acceptor_->bind(endpoint, ec);
  if (ec) fail(ec, "cannot bind");
  acceptor_->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) fail(ec, "cannot listen on");
  const std::uint16_t port = acceptor_->local_endpoint(ec).port();
  if (ec) fail(ec, "cannot read the bound port of");

  asio::co_spawn(ctx0, accept_loop(), [](const std::exception_ptr& e) {
    if (e) log_exception("accept loop", e);
  });
  for (auto& shard : shards_) {
    shard->work.emplace(shard->ctx.get_executor());
    shard->thread = std::thread([ctx = &shard->ctx] { run_context(*ctx); });
  }
  started_ = true;
  return port;
}

void Core::run_context(asio::io_context& ctx) {
  for (;;) {
    try {
      ctx.run();
      return;
    } catch (...) {
      log_exception("io thread", std::current_exception());
    }
  }
}

asio::awaitable<void> Core::accept_loop() {
  std::size_t next = 0;
  asio::steady_timer backoff(acceptor_->get_executor());
  for (;;) {
    Shard& shard = *shards_[next];
    next = (next + 1) % shards_.size();
    auto [ec, socket] = co_await acceptor_->async_accept(shard.ctx, kNoThrow);
    if (stopping() || ec == asio::error::operation_aborted || !acceptor_->is_open()) co_return;
    if (ec) {
      backoff.expires_after(kAcceptRetryDelay);
      co_await backoff.async_wait(kNoThrow);
      continue;
    }
    if (stats_.connections_open.load() >= options_.max_connections) {
      stats_.connections_rejected.fetch_add(1, std::memory_order_relaxed);
      socket.close(ec);
      continue;
    }
    stats_.connections_open.fetch_add(1);
    stats_.connections_accepted.fetch_add(1, std::memory_order_relaxed);
    asio::co_spawn(shard.ctx, serve(*this, std::move(socket), OpenSlot(this), shard),
                   [](const std::exception_ptr& e) {
                     if (e) log_exception("connection", e);
                   });
  }
}

asio::awaitable<void> Core::serve(Core& core, tcp::socket socket, OpenSlot slot, Shard& shard) {
  (void)slot;  // held by the frame: the connection counts as open until the frame is gone
  Connection connection(core, std::move(socket), shard);
  co_await connection.run();
}

void Core::on_connection_closed() {
  if (stats_.connections_open.fetch_sub(1) == 1) {
    std::lock_guard lock(open_mutex_);
    open_cv_.notify_all();
  }
}

void Core::wait_for_connections(std::chrono::steady_clock::time_point deadline) {
  std::unique_lock lock(open_mutex_);
  open_cv_.wait_until(lock, deadline, [&] { return stats_.connections_open.load() == 0; });
}

template <class F>
void Core::for_each_connection(F f) {
  for (auto& shard : shards_) {
    asio::post(shard->ctx, [s = shard.get(), f] {
      for (Connection* c = s->connections; c != nullptr;) {
        Connection* next = c->next;
        f(*c);
        c = next;
      }
    });
  }
}

void Core::stop(std::chrono::milliseconds drain) {
  std::lock_guard lock(stop_mutex_);
  if (!started_ || stopped_) return;
  for (auto& shard : shards_) {
    if (shard->thread.get_id() == std::this_thread::get_id()) {
      std::fprintf(stderr, "agentlab http: Server::stop called from a server thread\n");
      std::abort();
    }
  }
  stopped_ = true;
  stopping_.store(true);
  asio::post(shards_.front()->ctx, [this] {
    error_code ec;
    acceptor_->close(ec);
  });
  // Idle keep-alive connections (and half-read requests) go now; exchanges in progress get
  // the drain time (streaming handlers see closed() == true).
  for_each_connection([](Connection& c) { c.close_if_idle(); });
  wait_for_connections(std::chrono::steady_clock::now() + drain);
  for_each_connection([](Connection& c) { c.close_now(); });
  wait_for_connections(std::chrono::steady_clock::now() + kForceCloseGrace);
  for (auto& shard : shards_) {
    shard->work.reset();
    shard->ctx.stop();
  }
  for (auto& shard : shards_) {
    if (shard->thread.joinable()) shard->thread.join();
  }
  acceptor_.reset();
  shards_.clear();  // destroys the coroutines that did not finish (they release their slots)
}

// ---------------------------------------------------------------------------------------------
// Connection

Connection::Connection(Core& core, tcp::socket socket, Shard& shard)
    : core_(core), stream_(std::move(socket)), shard_(shard), executor_(stream_.get_executor()) {
  error_code ec;
  stream_.socket().set_option(tcp::no_delay(true), ec);
  remote_ = stream_.socket().remote_endpoint(ec);
  next = shard_.connections;
  if (next != nullptr) next->prev = this;
  shard_.connections = this;
}

Connection::~Connection() {
  if (queued_sink_ != nullptr) {
    std::fprintf(stderr, "agentlab http: a connection closed with a chunk still queued in a SendBatch "
                         "(submit the batch before returning to the io_context)\n");
    std::abort();
  }
  if (prev != nullptr) {
    prev->next = next;
  } else {
    shard_.connections = next;
  }
  if (next != nullptr) next->prev = prev;
}

const ServerOptions& Connection::options() const { return core_.options(); }
ServerStats& Connection::stats() { return core_.stats(); }

void Connection::close_if_idle() {
  if (!busy_) close_now();
}

void Connection::close_now() { stream_.close(); }

void Connection::shutdown_and_close() {
  error_code ec;
  stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
  stream_.close();
}

asio::awaitable<void> Connection::run() {
  bool first = true;
  while (!core_.stopping()) {
    busy_ = false;
    if (!co_await read_request(first)) break;
    first = false;
    busy_ = true;
    if (!co_await handle()) break;
  }
  shutdown_and_close();
}

void Connection::note_read_error(const error_code& ec) {
  if (ec == beast::error::timeout) stats().timeouts.fetch_add(1, std::memory_order_relaxed);
}

void Connection::note_write_error(const error_code& ec) {
  write_failed_ = true;
  write_error_ = ec;
  keep_alive_ = false;
  if (ec == beast::error::timeout) stats().timeouts.fetch_add(1, std::memory_order_relaxed);
}

asio::awaitable<bool> Connection::read_request(bool first) {
  const ServerOptions& opts = options();
  if (buffer_.size() == 0) {
    // Nothing buffered: wait for the first bytes under the idle (or first-request) timeout.
    if (buffer_.capacity() > kKeepBufferBytes) buffer_.shrink_to_fit();
    stream_.expires_after(first ? opts.read_timeout : opts.idle_timeout);
    const std::size_t room = std::max(kFirstRead, buffer_.capacity());
    auto [ec, n] = co_await stream_.async_read_some(buffer_.prepare(room), kNoThrow);
    if (ec) {
      note_read_error(ec);
      co_return false;
    }
    buffer_.commit(n);
  }
  parser_.emplace();
  parser_->body_limit(opts.body_limit);
  stream_.expires_after(opts.read_timeout);
  auto [ec, n] = co_await bhttp::async_read_header(stream_, buffer_, *parser_, kNoThrow);
  if (!ec && !parser_->is_done()) {
    const Request& req = parser_->get();
    const auto expect = req.find(bhttp::field::expect);
    if (expect != req.end() && beast::iequals(expect->value(), "100-continue")) {
      static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      stream_.expires_after(opts.write_timeout);
      auto [wec, wn] = co_await asio::async_write(stream_, asio::buffer(kContinue), kNoThrow);
      if (wec) {
        note_write_error(wec);
        co_return false;
      }
      stream_.expires_after(opts.read_timeout);  // the body gets its own read timeout
    }
    std::tie(ec, n) = co_await bhttp::async_read(stream_, buffer_, *parser_, kNoThrow);
  }
  if (!ec) co_return true;
  if (ec == bhttp::error::body_limit) {
    stats().body_too_large.fetch_add(1, std::memory_order_relaxed);
    co_await reject(Status::payload_too_large,
                    "request body exceeds " + std::to_string(opts.body_limit) + " bytes");
  } else if (is_parse_error(ec)) {
    stats().bad_requests.fetch_add(1, std::memory_order_relaxed);
    co_await reject(Status::bad_request, "malformed HTTP request: " + ec.message());
  } else {
    note_read_error(ec);
  }
  co_return false;
}

asio::awaitable<void> Connection::reject(Status status, std::string message) {
  Response res{status, 11};
  res.set(bhttp::field::content_type, "application/json");
  res.body() = json_error(message);
  res.keep_alive(false);
  res.set(bhttp::field::server, options().server_name);
  res.prepare_payload();
  if (co_await write_response(res)) co_return;
  // Lingering close: stop sending, then swallow what the client still sends (bounded).
  error_code ec;
  stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
  stream_.expires_after(std::min(options().read_timeout, kLingerTime));
  std::size_t total = 0;
  while (total < kLingerBytes) {
    buffer_.clear();
    auto [rec, n] = co_await stream_.async_read_some(buffer_.prepare(kLingerChunk), kNoThrow);
    if (rec) break;
    total += n;
  }
  buffer_.clear();
}

asio::awaitable<bool> Connection::handle() {
  stats().requests.fetch_add(1, std::memory_order_relaxed);
  reply_ = Reply::none;
  keep_alive_ = false;
  chunked_ = false;
  head_ = false;
  write_failed_ = false;
  write_error_ = {};
  pending_.clear();

  std::exception_ptr failure;
  try {
    co_await core_.handler()(*this);
  } catch (...) {
    failure = std::current_exception();
  }
  if (failure) {
    const Request& req = request();
    const std::string where = "handler for " + std::string(std::string_view(req.method_string())) +
                              " " + std::string(std::string_view(req.target()));
    log_exception(where.c_str(), failure);
    if (reply_ == Reply::none) {
      Response res{Status::internal_server_error, req.version()};
      res.set(bhttp::field::content_type, "application/json");
      res.set(bhttp::field::connection, "close");
      res.body() = json_error("internal error: the handler failed", "server_error");
      co_await respond(std::move(res));
    }
    co_return false;
  }
  switch (reply_) {
    case Reply::none:
      co_await respond(Status::internal_server_error,
                       json_error("internal error: the handler did not answer", "server_error"));
      break;
    case Reply::streaming:  // returned mid-stream: the client must see a truncated body
    case Reply::aborted:
      co_return false;
    case Reply::responded:
    case Reply::finished:
      break;
  }
  if (!keep_alive_ || write_failed_) co_return false;
  co_await settle_watch();
  co_return !(watch_ && watch_->peer_closed);
}

asio::awaitable<error_code> Connection::write_response(Response& res, bool header_only) {
  stream_.expires_after(options().write_timeout);
  error_code ec;
  if (header_only) {  // HEAD: Content-Length describes the body that is not sent
    bhttp::response_serializer<bhttp::string_body> serializer{res};
    std::tie(ec, std::ignore) = co_await bhttp::async_write_header(stream_, serializer, kNoThrow);
  } else {
    std::tie(ec, std::ignore) = co_await bhttp::async_write(stream_, res, kNoThrow);
  }
  if (ec) note_write_error(ec);
  co_return ec;
}

asio::awaitable<error_code> Connection::respond(Response res) {
  if (reply_ == Reply::aborted) co_return asio::error::not_connected;
  if (reply_ != Reply::none) co_return asio::error::already_started;
  const Request& req = request();
  res.version(req.version());
  const bool handler_keeps = res.find(bhttp::field::connection) == res.end() || res.keep_alive();
  res.keep_alive(req.keep_alive() && handler_keeps && !core_.stopping());
  res.set(bhttp::field::server, options().server_name);
  res.prepare_payload();  // throws for a body on 1xx/204/304; then nothing was sent (→ 500)
  reply_ = Reply::responded;
  keep_alive_ = res.keep_alive();
  co_return co_await write_response(res, req.method() == bhttp::verb::head);
}

asio::awaitable<error_code> Connection::start_stream(
    Status status, std::string_view content_type,
    std::vector<std::pair<std::string, std::string>> headers) {
  if (reply_ == Reply::aborted) co_return asio::error::not_connected;
  if (reply_ != Reply::none) co_return asio::error::already_started;
  reply_ = Reply::streaming;
  const Request& req = request();
  // HTTP/1.0 has no chunked encoding: the body is sent raw and ends with the connection.
  chunked_ = req.version() >= 11;
  head_ = req.method() == bhttp::verb::head;
  keep_alive_ = chunked_ && req.keep_alive() && !core_.stopping();
  bhttp::response<bhttp::empty_body> res{status, req.version()};
  res.set(bhttp::field::server, options().server_name);
  res.set(bhttp::field::content_type, content_type);
  res.set(bhttp::field::cache_control, "no-cache");
  if (content_type.starts_with("text/event-stream")) res.set("X-Accel-Buffering", "no");
  for (const auto& [name, value] : headers) res.set(name, value);
  if (chunked_) res.chunked(true);
  res.keep_alive(keep_alive_);
  bhttp::response_serializer<bhttp::empty_body> serializer{res};
  stream_.expires_after(options().write_timeout);
  auto [ec, n] = co_await bhttp::async_write_header(stream_, serializer, kNoThrow);
  if (ec) note_write_error(ec);
  co_return ec;
}

asio::awaitable<error_code> Connection::write_chunk(std::string_view data) {
  if (reply_ == Reply::aborted || write_failed_) co_return asio::error::not_connected;
  if (reply_ != Reply::streaming) co_return asio::error::operation_not_supported;
  if (data.empty() || head_) co_return error_code{};  // an empty chunk would end the stream
  switch (try_write_chunk(data)) {
    case ChunkWrite::kSent: co_return error_code{};
    case ChunkWrite::kPending: break;
    case ChunkWrite::kQueued:  // only queue_chunk() queues
    case ChunkWrite::kFailed: {
      error_code ec = write_error_;
      if (!ec) ec = asio::error::not_connected;
      co_return ec;
    }
  }
  co_return co_await flush();
}

void Connection::check_one_write(const char* call) const {
  if (flushing_ || queued_sink_ != nullptr) {
    std::fprintf(stderr, "agentlab http: %s during %s (one write at a time)\n", call,
                 flushing_ ? "flush()" : "a queued chunk");
    std::abort();
  }
}

std::size_t Connection::chunk_parts(std::string_view data, char (&size_line)[24],
                                    std::array<std::string_view, 3>& parts) const {
  if (!chunked_) {
    parts[0] = data;
    return 1;
  }
  parts[0] = {size_line, chunk_size_line(data.size(), size_line)};
  parts[1] = data;
  parts[2] = kCrlf;
  return 3;
}

Exchange::ChunkWrite Connection::try_write_chunk(std::string_view data) {
  check_one_write("try_write_chunk");
  if (reply_ != Reply::streaming || write_failed_) return ChunkWrite::kFailed;
  if (data.empty() || head_) return ChunkWrite::kSent;
  char size_line[24];
  std::array<std::string_view, 3> parts;
  const std::size_t count = chunk_parts(data, size_line, parts);
  std::array<iovec, 3> iov{};
  for (std::size_t i = 0; i < count; ++i) iov[i] = {const_cast<char*>(parts[i].data()), parts[i].size()};
  return send_or_keep(iov.data(), count);
}

Exchange::ChunkWrite Connection::queue_chunk(SendBatch& batch, std::string_view data, ChunkSink& sink) {
  check_one_write("queue_chunk");
  if (reply_ != Reply::streaming || write_failed_) return ChunkWrite::kFailed;
  if (data.empty() || head_) return ChunkWrite::kSent;
  char size_line[24];
  std::array<std::string_view, 3> parts{};  // the unused ones stay empty
  chunk_parts(data, size_line, parts);
  // Bytes an earlier write kept go first; the batch copies everything, so pending_ is free.
  batch.add(stream_.socket().native_handle(), {pending_, parts[0], parts[1], parts[2]}, *this);
  pending_.clear();
  queued_sink_ = &sink;
  return ChunkWrite::kQueued;
}

void Connection::on_sent(std::string_view bytes, std::size_t sent, const error_code& ec) noexcept {
  ChunkSink* sink = std::exchange(queued_sink_, nullptr);
  ChunkWrite result = ChunkWrite::kSent;
  if (ec) {
    note_write_error(ec);
    result = ChunkWrite::kFailed;
  } else if (sent < bytes.size()) {
    pending_.assign(bytes.substr(sent));
    result = ChunkWrite::kPending;
  }
  sink->on_chunk_written(result);
}

Exchange::ChunkWrite Connection::send_or_keep(const iovec* parts, std::size_t count) {
  std::size_t total = 0;
  for (std::size_t i = 0; i < count; ++i) total += parts[i].iov_len;
  if (!pending_.empty()) {
    // Earlier bytes wait: these go behind them, and the whole backlog is tried once.
    for (std::size_t i = 0; i < count; ++i) {
      pending_.append(static_cast<const char*>(parts[i].iov_base), parts[i].iov_len);
    }
    const iovec backlog{pending_.data(), pending_.size()};
    error_code ec;
    const std::size_t sent = send_now(stream_.socket().native_handle(), &backlog, 1, ec);
    if (ec) {
      note_write_error(ec);
      return ChunkWrite::kFailed;
    }
    pending_.erase(0, sent);
    return pending_.empty() ? ChunkWrite::kSent : ChunkWrite::kPending;
  }
  error_code ec;
  std::size_t sent = send_now(stream_.socket().native_handle(), parts, count, ec);
  if (ec) {
    note_write_error(ec);
    return ChunkWrite::kFailed;
  }
  if (sent == total) return ChunkWrite::kSent;
  for (std::size_t i = 0; i < count; ++i) {  // keep the part the socket did not take
    const std::size_t skip = std::min(sent, parts[i].iov_len);
    sent -= skip;
    pending_.append(static_cast<const char*>(parts[i].iov_base) + skip, parts[i].iov_len - skip);
  }
  return ChunkWrite::kPending;
}

asio::awaitable<error_code> Connection::flush() {
  check_one_write("flush");
  if (reply_ == Reply::aborted || write_failed_) co_return asio::error::not_connected;
  if (pending_.empty()) co_return error_code{};
  stream_.expires_after(options().write_timeout);
  flushing_ = true;
  auto [ec, n] = co_await asio::async_write(stream_, asio::buffer(pending_), kNoThrow);
  flushing_ = false;
  pending_.clear();
  if (pending_.capacity() > kKeepBufferBytes) pending_.shrink_to_fit();
  if (ec) note_write_error(ec);
  co_return ec;
}

asio::awaitable<error_code> Connection::finish_stream() {
  check_one_write("finish_stream");
  if (reply_ == Reply::aborted || write_failed_) co_return asio::error::not_connected;
  if (reply_ != Reply::streaming) co_return asio::error::operation_not_supported;
  if (auto ec = co_await flush()) co_return ec;
  reply_ = Reply::finished;
  if (!chunked_ || head_) co_return error_code{};
  const iovec last{const_cast<char*>(kLastChunk.data()), kLastChunk.size()};
  error_code ec;
  const std::size_t sent = send_now(stream_.socket().native_handle(), &last, 1, ec);
  if (!ec && sent < kLastChunk.size()) {
    stream_.expires_after(options().write_timeout);
    std::tie(ec, std::ignore) =
        co_await asio::async_write(stream_, asio::buffer(kLastChunk.substr(sent)), kNoThrow);
  }
  if (ec) note_write_error(ec);
  co_return ec;
}

void Connection::abort() {
  reply_ = Reply::aborted;
  keep_alive_ = false;
  stream_.close();
}

bool Connection::closed() const {
  if (reply_ == Reply::aborted || write_failed_ || core_.stopping() ||
      !stream_.socket().is_open()) {
    return true;
  }
  if (watch_ && watch_->peer_closed) return true;
  // Connection objects are never const; closed() is const for the handler's sake only.
  const_cast<Connection*>(this)->arm_watch();
  return false;
}

void Connection::arm_watch() {
  if (!watch_) watch_ = std::make_shared<PeerWatch>(executor_);
  PeerWatch& w = *watch_;
  if (w.pending || w.peer_closed || w.size > 0) return;
  w.pending = true;
  stream_.socket().async_read_some(asio::buffer(w.bytes),
                                   [watch = watch_](const error_code& ec, std::size_t n) {
                                     watch->pending = false;
                                     if (!ec) {
                                       watch->size = n;
                                     } else if (ec != asio::error::operation_aborted) {
                                       watch->peer_closed = true;
                                     }
                                     if (watch->waiting) {
                                       watch->waiting = false;
                                       watch->done.cancel();
                                     }
                                   });
}

asio::awaitable<void> Connection::settle_watch() {
  if (!watch_) co_return;
  if (watch_->pending) {
    error_code ec;
    stream_.socket().cancel(ec);
    if (watch_->pending) {  // the completion is queued; wait until it has run
      watch_->waiting = true;
      watch_->done.expires_at(asio::steady_timer::time_point::max());
      co_await watch_->done.async_wait(kNoThrow);
    }
  }
  if (watch_->size > 0) {
    // These bytes arrived after whatever buffer_ already holds.
    const std::size_t size = watch_->size;
    buffer_.commit(asio::buffer_copy(buffer_.prepare(size), asio::buffer(watch_->bytes, size)));
    watch_->size = 0;
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Public API

struct Server::Impl {
  Impl(const ServerOptions& options, const Handler& handler, ServerStats& stats)
      : core(options, handler, stats) {}
  Core core;
};

Server::Server(ServerOptions options, Handler handler)
    : options_(std::move(options)), handler_(std::move(handler)) {
  impl_ = std::make_unique<Impl>(options_, handler_, stats_);
}

Server::~Server() { stop(); }

void Server::start() { port_ = impl_->core.start(); }

std::string Server::url() const {
  const bool v6 = options_.address.find(':') != std::string::npos;
  return "http://" + (v6 ? "[" + options_.address + "]" : options_.address) + ":" +
         std::to_string(port_);
}

void Server::stop(std::chrono::milliseconds drain) { impl_->core.stop(drain); }

asio::awaitable<error_code> Exchange::respond(Status status, std::string body,
                                              std::string_view content_type) {
  Response res{status, request().version()};
  res.set(beast::http::field::content_type, content_type);
  res.body() = std::move(body);
  co_return co_await respond(std::move(res));
}

std::string json_error(std::string_view message, std::string_view type) {
  boost::json::object error;
  error["message"] = message;
  error["type"] = type;
  boost::json::object root;
  root["error"] = std::move(error);
  return boost::json::serialize(root);
}

}  // namespace lab::http
