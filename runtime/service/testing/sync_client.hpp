#pragma once
// A blocking HTTP client for the runtime's tests and benchmark: each call runs the request on
// the client's own io_context until it completes (keep-alive connections are reused between
// calls). Not thread-safe: one per test thread.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/beast/http/verb.hpp>
#include <boost/json/value.hpp>

#include "common/http/client.hpp"
#include "common/http/sse.hpp"

namespace lab::runtime::testing {

struct Reply {
  unsigned status = 0;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string error;  ///< transport error, empty on success
  std::optional<std::string> header(std::string_view name) const;
  /// The body as JSON (null when it is not JSON).
  boost::json::value json() const;
};

struct StreamReply {
  unsigned status = 0;
  std::vector<http::SseEvent> events;  ///< in arrival order, up to and including a terminal one
  std::string body;                    ///< for non-SSE answers
  std::string error;
  bool terminal() const;               ///< the last event is done or error
  /// The data of each event as JSON.
  std::vector<boost::json::value> data() const;
};

class SyncClient {
 public:
  explicit SyncClient(const std::string& base_url);
  ~SyncClient();

  Reply request(boost::beast::http::verb method, std::string_view target, std::string_view body = {},
                std::string_view token = {}, std::vector<std::pair<std::string, std::string>> headers = {});
  Reply get(std::string_view target, std::string_view token = {}) {
    return request(boost::beast::http::verb::get, target, {}, token);
  }
  Reply post(std::string_view target, std::string_view body, std::string_view token = {}) {
    return request(boost::beast::http::verb::post, target, body, token);
  }

  /// GET an SSE stream and read it until a done/error event (or the server ends it, or the
  /// timeout). `last_event_id` is sent as Last-Event-ID.
  StreamReply stream(std::string_view target, std::string_view token,
                     std::optional<std::uint64_t> last_event_id = std::nullopt,
                     std::chrono::milliseconds timeout = std::chrono::milliseconds(20'000));

 private:
  void run_until(const bool& done);
  boost::asio::io_context io_;
  std::unique_ptr<http::ConnectionPool> pool_;
};

/// Polls `pred` (every millisecond) until it holds or `timeout` passes; returns whether it held.
/// For conditions with no event to wait on (a counter in another thread).
bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout = std::chrono::milliseconds(10'000));

}  // namespace lab::runtime::testing
