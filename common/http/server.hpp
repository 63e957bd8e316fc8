#pragma once
// A small HTTP/1.1 server base on Boost.Beast, shared by the mock LLM and the runtime.
//
// Shape: `threads` io_contexts, one thread each; one acceptor; each accepted connection lives
// on one io_context for its whole life (round-robin), so per-connection state needs no locks.
// Each connection is a coroutine: read request → call the handler → write → repeat while
// keep-alive. Handlers are coroutines too, so a streaming handler simply loops over
// write_chunk() with timers in between (or, pacing many streams from one timer, calls
// try_write_chunk() or queue_chunk() and suspends only when a socket is full).
//
// Limits: every socket has an idle/read timeout, every request body a size limit, and the
// number of open connections a bound (over it, new connections are closed at once and counted).

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include "common/http/send_batch.hpp"

namespace lab::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
using error_code = boost::system::error_code;
using tcp = asio::ip::tcp;

using Request = beast::http::request<beast::http::string_body>;
using Response = beast::http::response<beast::http::string_body>;
using Status = beast::http::status;

struct ServerOptions {
  std::string address = "127.0.0.1";
  std::uint16_t port = 0;  ///< 0: the OS picks a free port; read it back with Server::port().
  int threads = 1;
  std::size_t body_limit = 1 << 20;                   ///< bytes; larger bodies get 413.
  std::chrono::milliseconds read_timeout{30'000};     ///< to read one request (headers + body).
  std::chrono::milliseconds idle_timeout{120'000};    ///< keep-alive connection with no request.
  std::chrono::milliseconds write_timeout{30'000};    ///< for one write (response or chunk).
  std::size_t max_connections = 200'000;
  std::string server_name = "agentlab";
};

/// One request/response exchange, handed to the handler. Valid only during the handler call.
/// Exactly one of: respond(), or start_stream() + write_chunk()* + finish_stream(), or
/// abort() (drop the connection without answering). A handler that returns without any of
/// them gets a 500. Not thread-safe; runs on the connection's executor.
class Exchange {
 public:
  virtual ~Exchange() = default;
  virtual const Request& request() const = 0;
  /// The executor of the connection (for timers the handler creates).
  virtual asio::any_io_executor executor() const = 0;
  virtual tcp::endpoint remote() const = 0;

  /// Sends a complete response. Content-Length is set from the body; keep-alive follows the
  /// request. Returns the write error, if any.
  virtual asio::awaitable<error_code> respond(Response res) = 0;
  /// Convenience: status + content type + body.
  asio::awaitable<error_code> respond(Status status, std::string body,
                                      std::string_view content_type = "application/json");

  /// Starts a chunked streaming response (for SSE: content_type "text/event-stream"; the base
  /// adds Cache-Control: no-cache). `headers` are extra header fields.
  virtual asio::awaitable<error_code> start_stream(
      Status status, std::string_view content_type,
      std::vector<std::pair<std::string, std::string>> headers = {}) = 0;
  /// Writes one chunk (data must be non-empty). An error means the peer is gone. The bytes go
  /// out with one non-blocking send when the socket takes them; only what it does not take
  /// waits for the socket under the write timeout.
  virtual asio::awaitable<error_code> write_chunk(std::string_view data) = 0;

  /// What try_write_chunk() did with a chunk.
  enum class ChunkWrite {
    kSent,     ///< all of it is in the socket's send buffer
    kPending,  ///< the send buffer was full: the bytes not sent are kept, in order, for flush()
    kFailed,   ///< the peer is gone (or the exchange is not streaming); nothing more will go out
    kQueued,   ///< (queue_chunk only) in the batch; its sink hears one of the three above
  };
  /// write_chunk() without suspending, for a handler that paces many streams from one timer:
  /// one non-blocking send, never a wait. After kPending, co_await flush() before writing
  /// again (write_chunk() and finish_stream() flush first too), so at most one chunk is kept.
  virtual ChunkWrite try_write_chunk(std::string_view data) = 0;

  /// Told what became of a chunk queued with queue_chunk().
  class ChunkSink {
   public:
    /// kSent, kPending or kFailed, with try_write_chunk()'s meaning. Called from the batch's
    /// submit(); the exchange may be written again from here.
    virtual void on_chunk_written(ChunkWrite result) noexcept = 0;

   protected:
    ~ChunkSink() = default;
  };
  /// try_write_chunk() deferred into `batch`, for a handler that sends on many streams at the
  /// same tick: the chunk (framed) is copied into the batch and goes out with the batch's other
  /// sends at its next submit(), which tells `sink` the result. Returns kQueued then, or at
  /// once, without telling the sink, kFailed (not streaming, or the peer is gone) or kSent
  /// (nothing to send: an empty chunk, a HEAD request). Until the sink is told, nothing else
  /// may write on this exchange (an always-on check aborts). The batch must be submitted
  /// before the thread returns to the exchange's io_context (the exchange lives until then).
  virtual ChunkWrite queue_chunk(SendBatch& batch, std::string_view data, ChunkSink& sink) = 0;
  /// Sends the bytes try_write_chunk() kept, under the write timeout; at once when none are.
  /// An error means the peer is gone.
  virtual asio::awaitable<error_code> flush() = 0;
  /// Writes the final empty chunk; the connection may then serve the next request.
  virtual asio::awaitable<error_code> finish_stream() = 0;
  /// Closes the connection now (abruptly: no further bytes). For fault injection and for
  /// streams that end in error.
  virtual void abort() = 0;
  /// True once the peer has closed or the server is stopping; streaming handlers check it
  /// between chunks.
  virtual bool closed() const = 0;
};

using Handler = std::function<asio::awaitable<void>(Exchange&)>;

/// Counters the server keeps (read them any time; relaxed atomics).
struct ServerStats {
  std::atomic<std::uint64_t> connections_accepted{0};
  std::atomic<std::uint64_t> connections_rejected{0};  ///< over max_connections
  std::atomic<std::uint64_t> connections_open{0};
  std::atomic<std::uint64_t> requests{0};
  std::atomic<std::uint64_t> bad_requests{0};          ///< parse errors → 400
  std::atomic<std::uint64_t> body_too_large{0};        ///< → 413
  std::atomic<std::uint64_t> timeouts{0};
};

class Server {
 public:
  Server(ServerOptions options, Handler handler);
  ~Server();  ///< stop() + join.
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  /// Binds and listens (throws std::system_error naming the address on failure), then starts
  /// the threads. After start(), port() is the bound port.
  void start();
  std::uint16_t port() const { return port_; }
  /// "http://127.0.0.1:PORT"
  std::string url() const;

  /// Stops accepting; open connections finish their current exchange (streams are told via
  /// Exchange::closed()) for at most `drain`, then everything is closed and threads joined.
  void stop(std::chrono::milliseconds drain = std::chrono::milliseconds(2000));

  const ServerStats& stats() const { return stats_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  ServerOptions options_;
  Handler handler_;
  std::uint16_t port_ = 0;
  ServerStats stats_;
};

/// Error body helper: {"error":{"message":..., "type":...}} (OpenAI's shape).
std::string json_error(std::string_view message, std::string_view type = "invalid_request_error");

}  // namespace lab::http
