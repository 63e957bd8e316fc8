#include "common/http/client.hpp"

#include <atomic>
#include <future>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/asio/write.hpp>
#include <gtest/gtest.h>

#include "common/http/router.hpp"
#include "common/http/server.hpp"
#include "common/http/sse.hpp"

using namespace lab;
using namespace std::chrono_literals;
namespace asio = boost::asio;
namespace bhttp = boost::beast::http;

namespace {

// Runs one coroutine on a fresh io_context to completion (bounded by the test timeout).
template <class F>
auto run(F f) {
  asio::io_context io;
  auto fut = asio::co_spawn(io, f(io.get_executor()), asio::use_future);
  io.run();
  return fut.get();
}

struct Fixture {
  http::Router router;
  std::unique_ptr<http::Server> server;
  http::Url url() const { return *http::parse_url(server->url()); }
  void start() {
    server = std::make_unique<http::Server>(http::ServerOptions{}, router.handler());
    server->start();
  }
};

// A scripted HTTP/1.1 server for wire-level cases the real server never produces. For each
// request head it reads it writes the next answer, one write per piece, and closes the
// connection after an answer marked close_after. Connections are served one after another.
struct Answer {
  std::vector<std::string> pieces;
  bool close_after = false;
};

class ScriptedServer {
 public:
  ScriptedServer(asio::io_context& io, std::vector<Answer> script)
      : acceptor_(io, {asio::ip::make_address("127.0.0.1"), 0}), script_(std::move(script)) {
    asio::co_spawn(io, serve(), asio::detached);
  }
  http::Url url() const { return {"127.0.0.1", acceptor_.local_endpoint().port(), ""}; }
  void stop() { acceptor_.close(); }

 private:
  asio::awaitable<void> serve() {
    constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
    std::size_t next = 0;
    while (next < script_.size()) {
      auto [aec, socket] = co_await acceptor_.async_accept(kTuple);
      if (aec) co_return;
      std::string in;
      while (next < script_.size()) {
        auto buffer = asio::dynamic_buffer(in);
        auto [rec, n] = co_await asio::async_read_until(socket, buffer, "\r\n\r\n", kTuple);
        if (rec) break;
        in.erase(0, n);
        const Answer& answer = script_[next++];
        for (const auto& piece : answer.pieces) {
          const auto bytes = asio::buffer(piece);
          auto [wec, wn] = co_await asio::async_write(socket, bytes, kTuple);
          if (wec) break;
        }
        if (answer.close_after) break;
      }
    }
  }
  asio::ip::tcp::acceptor acceptor_;
  std::vector<Answer> script_;
};

struct Got {
  http::ClientResult result;
  http::ClientResponse response;
};

// Sends GETs for `count` scripted answers on one pool; returns each outcome and the
// connections opened.
std::pair<std::vector<Got>, std::uint64_t> run_script(std::vector<Answer> script, std::size_t count,
                                                      http::ClientOptions options = {}) {
  asio::io_context io;
  ScriptedServer server(io, std::move(script));
  auto fut = asio::co_spawn(io, [&]() -> asio::awaitable<std::pair<std::vector<Got>, std::uint64_t>> {
    http::ConnectionPool pool(co_await asio::this_coro::executor, server.url(), options);
    std::vector<Got> out(count);
    for (auto& got : out) {
      http::ClientRequest req;
      got.result = co_await pool.request(req, got.response, /*keep_headers=*/true);
    }
    server.stop();
    co_return std::pair{std::move(out), pool.connections_opened()};
  }, asio::use_future);
  io.run();
  return fut.get();
}

}  // namespace

TEST(ParseUrl, SplitsHostPortAndBase) {
  auto u = http::parse_url("http://127.0.0.1:8080/api/");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->host, "127.0.0.1");
  EXPECT_EQ(u->port, 8080);
  EXPECT_EQ(u->base_path, "/api");
  auto v6 = http::parse_url("http://[::1]:9000");
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(http::parse_url("http://example")->port, 80);
  std::string err;
  EXPECT_FALSE(http::parse_url("https://x", &err));
  EXPECT_NE(err.find("https"), std::string::npos);
  EXPECT_FALSE(http::parse_url("ftp://x", &err));
  EXPECT_FALSE(http::parse_url("http://h:99999", &err));
  EXPECT_FALSE(http::parse_url("http://:80", &err));
}

TEST(ConnectionPool, ReusesKeepAliveConnections) {
  Fixture fx;
  fx.router.add(bhttp::verb::post, "/echo", [](http::Exchange& ex, const http::PathParams&) -> asio::awaitable<void> {
    co_await ex.respond(http::Status::ok, ex.request().body());
  });
  fx.start();
  auto [bodies, opened] = run([&](asio::any_io_executor exec) -> asio::awaitable<std::pair<std::vector<std::string>, std::uint64_t>> {
    http::ConnectionPool pool(exec, fx.url(), {});
    std::vector<std::string> out;
    for (int i = 0; i < 5; ++i) {
      http::ClientRequest req;
      req.method = bhttp::verb::post;
      req.target = "/echo";
      req.body = "n" + std::to_string(i);
      http::ClientResponse res;
      auto r = co_await pool.request(req, res);
      EXPECT_TRUE(r.ok()) << r.message;
      EXPECT_EQ(res.status, 200u);
      EXPECT_GE(res.first_byte_at, res.sent_at);
      out.push_back(res.body);
    }
    co_return std::pair{out, pool.connections_opened()};
  });
  EXPECT_EQ(bodies, (std::vector<std::string>{"n0", "n1", "n2", "n3", "n4"}));
  EXPECT_EQ(opened, 1u);
}

TEST(ConnectionPool, ClassifiesConnectAndTimeoutErrors) {
  std::uint16_t closed_port;
  {
    asio::io_context io;
    asio::ip::tcp::acceptor a(io, {asio::ip::make_address("127.0.0.1"), 0});
    closed_port = a.local_endpoint().port();
  }
  auto refused = run([&](asio::any_io_executor exec) -> asio::awaitable<http::ClientResult> {
    http::ConnectionPool pool(exec, *http::parse_url("http://127.0.0.1:" + std::to_string(closed_port)), {});
    // Named, not a temporary: GCC 12 destroys non-trivial temporaries in a co_await twice.
    http::ClientRequest req;
    http::ClientResponse res;
    co_return co_await pool.request(req, res);
  });
  EXPECT_EQ(refused.error, http::ErrorClass::kConnect) << refused.message;

  Fixture fx;
  fx.router.add(bhttp::verb::get, "/slow", [](http::Exchange& ex, const http::PathParams&) -> asio::awaitable<void> {
    asio::steady_timer t(ex.executor());
    t.expires_after(2s);
    co_await t.async_wait(asio::use_awaitable);
    co_await ex.respond(http::Status::ok, "late");
  });
  fx.start();
  auto timed_out = run([&](asio::any_io_executor exec) -> asio::awaitable<http::ClientResult> {
    http::ConnectionPool pool(exec, fx.url(), {});
    http::ClientRequest req;
    req.target = "/slow";
    req.timeout = 100ms;
    http::ClientResponse res;
    co_return co_await pool.request(req, res);
  });
  EXPECT_EQ(timed_out.error, http::ErrorClass::kTimeout) << timed_out.message;
}

TEST(ConnectionPool, ReadsSseIncrementallyAndStopsAtTheCallersWord) {
  Fixture fx;
  fx.router.add(bhttp::verb::get, "/events", [](http::Exchange& ex, const http::PathParams&) -> asio::awaitable<void> {
    co_await ex.start_stream(http::Status::ok, "text/event-stream");
    asio::steady_timer t(ex.executor());
    for (int i = 1; i <= 3; ++i) {
      t.expires_after(30ms);
      co_await t.async_wait(asio::use_awaitable);
      co_await ex.write_chunk(http::format_sse("tick", "line " + std::to_string(i) + "\nsecond", std::to_string(i)));
    }
    co_await ex.write_chunk(http::format_sse("done", "{}"));
    co_await ex.finish_stream();
  });
  fx.router.add(bhttp::verb::get, "/notsse", [](http::Exchange& ex, const http::PathParams&) -> asio::awaitable<void> {
    co_await ex.respond(http::Status::service_unavailable, R"({"error":"busy"})");
  });
  fx.start();
  struct Out {
    std::vector<std::string> data;
    std::vector<TimePoint> times;
    std::uint64_t opened = 0;
    unsigned bad_status = 0;
    std::string bad_body;
  };
  auto out = run([&](asio::any_io_executor exec) -> asio::awaitable<Out> {
    http::ConnectionPool pool(exec, fx.url(), {});
    Out o;
    for (int round = 0; round < 2; ++round) {
      http::ClientRequest req;
      req.target = "/events";
      http::ClientResponse res;
      auto r = co_await pool.stream_sse(req, res, [&](http::SseEvent&& e, TimePoint t) {
        o.data.push_back(e.event + ":" + e.data);
        o.times.push_back(t);
        return e.event != "done";
      }, 5s);
      EXPECT_TRUE(r.ok()) << r.message;
    }
    http::ClientRequest req;
    req.target = "/notsse";
    http::ClientResponse res;
    auto r = co_await pool.stream_sse(req, res, [](http::SseEvent&&, TimePoint) { return true; }, 5s);
    EXPECT_TRUE(r.ok());
    o.bad_status = res.status;
    o.bad_body = res.body;
    o.opened = pool.connections_opened();
    co_return o;
  });
  ASSERT_EQ(out.data.size(), 8u);
  EXPECT_EQ(out.data[0], "tick:line 1\nsecond");
  EXPECT_EQ(out.data[3], "done:{}");
  // Events arrive as they are written (~30 ms apart), not all at the end.
  EXPECT_GE(out.times[2] - out.times[0], 40ms);
  EXPECT_EQ(out.opened, 1u);  // the stream ended cleanly, so the connection was reused
  EXPECT_EQ(out.bad_status, 503u);
  EXPECT_EQ(out.bad_body, R"({"error":"busy"})");
}

TEST(ConnectionPool, StreamDeadlineIsATimeout) {
  Fixture fx;
  fx.router.add(bhttp::verb::get, "/forever", [](http::Exchange& ex, const http::PathParams&) -> asio::awaitable<void> {
    co_await ex.start_stream(http::Status::ok, "text/event-stream");
    co_await ex.write_chunk(http::format_sse("first", "x"));
    asio::steady_timer t(ex.executor());
    while (!ex.closed()) {
      t.expires_after(20ms);
      co_await t.async_wait(asio::use_awaitable);
    }
  });
  fx.start();
  auto r = run([&](asio::any_io_executor exec) -> asio::awaitable<std::pair<http::ClientResult, int>> {
    http::ConnectionPool pool(exec, fx.url(), {});
    http::ClientRequest req;
    req.target = "/forever";
    http::ClientResponse res;
    int events = 0;
    auto result = co_await pool.stream_sse(req, res, [&](http::SseEvent&&, TimePoint) { ++events; return true; }, 200ms);
    co_return std::pair{result, events};
  });
  EXPECT_EQ(r.first.error, http::ErrorClass::kTimeout) << r.first.message;
  EXPECT_EQ(r.second, 1);
}

TEST(ConnectionPool, ReadsEveryBodyFramingOffTheWire) {
  auto [got, opened] = run_script(
      {
          {{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", "lo\r\n6\r\n world\r\n0\r\n\r\n"}},
          {{"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"}},
          {{"HTTP/1.1 204 No Content\r\n\r\n"}},
          {{"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 3\r\n\r\nbye"}, true},
          {{"HTTP/1.1 200 OK\r\n\r\nuntil ", "the close"}, true},
          {{"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n", "ok"}},
      },
      6);
  std::vector<std::string> bodies;
  std::vector<bool> reused;
  for (const auto& g : got) {
    EXPECT_TRUE(g.result.ok()) << g.result.message;
    bodies.push_back(g.response.body);
    reused.push_back(g.response.reused_connection);
  }
  EXPECT_EQ(bodies, (std::vector<std::string>{"hello world", "", "", "bye", "until the close", "ok"}));
  // Connection: close and a close-framed body end their connection; the others are reused.
  EXPECT_EQ(reused, (std::vector<bool>{false, true, true, true, false, false}));
  EXPECT_EQ(opened, 3u);
  EXPECT_EQ(got[0].response.header("transfer-encoding"), "chunked");
  EXPECT_EQ(got[2].response.status, 204u);
  EXPECT_EQ(got[5].response.status, 201u);
}

TEST(ConnectionPool, MalformedOversizeAndTruncatedResponsesAreProtocolErrors) {
  http::ClientOptions options;
  options.max_header_bytes = 16 << 10;
  auto [got, opened] = run_script(
      {
          {{"HTTP/1.1 OK\r\n\r\n"}, true},
          {{"HTTP/1.1 200 OK\r\nX-Big: " + std::string(20 << 10, 'a') + "\r\nContent-Length: 0\r\n\r\n"}, true},
          {{"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"}, true},
          {{"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx"}},
      },
      4, options);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(got[static_cast<std::size_t>(i)].result.error, http::ErrorClass::kProtocol) << i;
  EXPECT_NE(got[0].result.message.find("status line"), std::string::npos) << got[0].result.message;
  EXPECT_NE(got[1].result.message.find("size limit"), std::string::npos) << got[1].result.message;
  EXPECT_NE(got[2].result.message.find("closed"), std::string::npos) << got[2].result.message;
  EXPECT_TRUE(got[3].result.ok()) << got[3].result.message;  // a failed connection is never reused
  EXPECT_EQ(opened, 4u);
}

TEST(ConnectionPool, RetriesOnceWhenTheServerClosedAnIdleConnection) {
  auto [got, opened] = run_script(
      {
          {{"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na"}, true},  // closes without saying so
          {{"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb"}},
      },
      2);
  ASSERT_TRUE(got[1].result.ok()) << got[1].result.message;
  EXPECT_EQ(got[1].response.body, "b");
  EXPECT_FALSE(got[1].response.reused_connection);
  EXPECT_EQ(opened, 2u);
}

TEST(ConnectionPool, ASoonerDeadlineOnAReusedConnectionStillFires) {
  Fixture fx;
  fx.router.add(bhttp::verb::get, "/fast", [](http::Exchange& ex, const http::PathParams&) -> asio::awaitable<void> {
    co_await ex.respond(http::Status::ok, "fast");
  });
  fx.router.add(bhttp::verb::get, "/slow", [](http::Exchange& ex, const http::PathParams&) -> asio::awaitable<void> {
    asio::steady_timer t(ex.executor());
    t.expires_after(3s);
    co_await t.async_wait(asio::use_awaitable);
    co_await ex.respond(http::Status::ok, "late");
  });
  fx.start();
  struct Out {
    http::ClientResult slow;
    std::chrono::steady_clock::duration took{};
    http::ClientResult after;
    std::uint64_t opened = 0;
  };
  auto out = run([&](asio::any_io_executor exec) -> asio::awaitable<Out> {
    http::ConnectionPool pool(exec, fx.url(), {});  // 60 s request timeout: the watchdog is armed far out
    Out o;
    http::ClientRequest fast;
    fast.target = "/fast";
    http::ClientResponse res;
    auto first = co_await pool.request(fast, res);
    EXPECT_TRUE(first.ok()) << first.message;
    http::ClientRequest slow;
    slow.target = "/slow";
    slow.timeout = 100ms;
    const auto t0 = std::chrono::steady_clock::now();
    o.slow = co_await pool.request(slow, res);
    o.took = std::chrono::steady_clock::now() - t0;
    EXPECT_TRUE(res.reused_connection);
    o.after = co_await pool.request(fast, res);
    o.opened = pool.connections_opened();
    co_return o;
  });
  EXPECT_EQ(out.slow.error, http::ErrorClass::kTimeout) << out.slow.message;
  EXPECT_LT(out.took, 1s);  // not the 60 s the connection's timer was armed for, nor the 3 s reply
  EXPECT_TRUE(out.after.ok()) << out.after.message;
  EXPECT_EQ(out.opened, 2u);  // the timed-out connection was dropped
}
