#include "runtime/service/testing/sync_client.hpp"

#include <stdexcept>
#include <thread>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/beast/core/string.hpp>

#include "common/text/json_util.hpp"

namespace lab::runtime::testing {

namespace asio = boost::asio;

std::optional<std::string> Reply::header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (boost::beast::iequals(k, name)) return v;
  }
  return std::nullopt;
}

boost::json::value Reply::json() const {
  auto v = lab::json::parse(body);
  return v ? std::move(*v) : boost::json::value();
}

bool StreamReply::terminal() const {
  return !events.empty() && (events.back().event == "done" || events.back().event == "error");
}

std::vector<boost::json::value> StreamReply::data() const {
  std::vector<boost::json::value> out;
  for (const auto& e : events) {
    auto v = lab::json::parse(e.data);
    out.push_back(v ? std::move(*v) : boost::json::value());
  }
  return out;
}

SyncClient::SyncClient(const std::string& base_url) {
  std::string why;
  auto url = http::parse_url(base_url, &why);
  if (!url) throw std::invalid_argument("SyncClient: " + why);
  http::ClientOptions options;
  options.request_timeout = std::chrono::milliseconds(20'000);
  options.stream_idle_timeout = std::chrono::milliseconds(20'000);
  pool_ = std::make_unique<http::ConnectionPool>(io_.get_executor(), *url, options);
}

SyncClient::~SyncClient() {
  pool_.reset();
}

// Runs the context until `done`: not until it runs out of work, since a pooled connection's
// watchdog timer may stay armed after its request (until that request's deadline).
void SyncClient::run_until(const bool& done) {
  io_.restart();
  while (!done && io_.run_one() > 0) {
  }
}

Reply SyncClient::request(boost::beast::http::verb method, std::string_view target, std::string_view body,
                          std::string_view token, std::vector<std::pair<std::string, std::string>> headers) {
  http::ClientRequest req;
  req.method = method;
  req.target = std::string(target);
  req.body = std::string(body);
  req.headers = std::move(headers);
  if (!token.empty()) req.headers.emplace_back("Authorization", "Bearer " + std::string(token));
  Reply reply;
  bool done = false;
  asio::co_spawn(
      io_,
      [&]() -> asio::awaitable<void> {
        http::ClientResponse res;
        const auto r = co_await pool_->request(req, res, true);
        if (!r.ok()) reply.error = r.message;
        reply.status = res.status;
        reply.body = std::move(res.body);
        reply.headers = std::move(res.headers);
        done = true;
      },
      asio::detached);
  run_until(done);
  return reply;
}

StreamReply SyncClient::stream(std::string_view target, std::string_view token,
                               std::optional<std::uint64_t> last_event_id, std::chrono::milliseconds timeout) {
  http::ClientRequest req;
  req.method = boost::beast::http::verb::get;
  req.target = std::string(target);
  if (!token.empty()) req.headers.emplace_back("Authorization", "Bearer " + std::string(token));
  if (last_event_id) req.headers.emplace_back("Last-Event-ID", std::to_string(*last_event_id));
  StreamReply reply;
  bool done = false;
  asio::co_spawn(
      io_,
      [&]() -> asio::awaitable<void> {
        http::ClientResponse res;
        const auto r = co_await pool_->stream_sse(
            req, res,
            [&](http::SseEvent&& e, TimePoint) {
              const bool end = e.event == "done" || e.event == "error";
              reply.events.push_back(std::move(e));
              return !end;
            },
            timeout);
        if (!r.ok()) reply.error = r.message;
        reply.status = res.status;
        reply.body = std::move(res.body);
        done = true;
      },
      asio::detached);
  run_until(done);
  return reply;
}

bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

}  // namespace lab::runtime::testing
