#include "common/http/server.hpp"

#include <gtest/gtest.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/json/parse.hpp>
#include <future>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "common/http/router.hpp"
#include "common/http/sse.hpp"

namespace lab::http {
namespace {

using namespace std::chrono_literals;
namespace bhttp = beast::http;
using verb = bhttp::verb;

constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
/// Bound on every single wait in these tests (a failure shows up as a timeout, not a hang).
constexpr std::chrono::seconds kTimeout{5};

ServerOptions local_options() {
  ServerOptions options;
  options.address = "127.0.0.1";
  options.port = 0;
  return options;
}

Handler respond_ok() {
  return [](Exchange& ex) -> asio::awaitable<void> {
    co_await ex.respond(Status::ok, "ok", "text/plain");
  };
}

/// A plain Beast client on its own io_context; every call runs it for at most kTimeout.
class TestClient {
 public:
  explicit TestClient(std::uint16_t port) : port_(port) {}

  template <class T>
  T run(asio::awaitable<T> task) {
    std::optional<T> result;
    std::exception_ptr error;
    asio::co_spawn(ioc_, std::move(task), [&](std::exception_ptr e, T value) {
      error = e;
      result.emplace(std::move(value));
    });
    ioc_.restart();
    ioc_.run_for(kTimeout);
    if (!result && !error) {
      ioc_.stop();
      throw std::runtime_error("test client: operation did not finish in time");
    }
    if (error) std::rethrow_exception(error);
    return std::move(*result);
  }

  error_code connect() { return run(co_connect()); }
  error_code send(Request req) {
    req.prepare_payload();
    return run(co_send(std::move(req)));
  }
  error_code send_raw(std::string bytes) { return run(co_send_raw(std::move(bytes))); }
  std::pair<error_code, Response> receive() { return run(co_receive()); }
  /// Reads the answer to a HEAD request (header only).
  std::pair<error_code, bhttp::response<bhttp::empty_body>> receive_head_response() {
    return run(co_receive_head());
  }
  /// Reads until the server closes; returns the error that ended the read (eof or reset).
  error_code read_until_closed() { return run(co_read_until_closed()); }

  /// Sends a request and reads the answer; fails the test on any transport error.
  Response request(verb method, std::string target, std::string body = {}) {
    Request req{method, target, 11};
    req.set(bhttp::field::host, "127.0.0.1");
    req.body() = std::move(body);
    const error_code sent = send(std::move(req));
    if (sent) throw std::runtime_error("send failed: " + sent.message());
    auto [ec, res] = receive();
    if (ec) throw std::runtime_error("receive failed: " + ec.message());
    return res;
  }

  /// Streaming: reads the header of a chunked response.
  std::pair<error_code, bhttp::response<bhttp::empty_body>> read_stream_header(
      std::uint64_t body_limit = 1 << 20) {
    parser_.emplace();
    parser_->body_limit(body_limit);
    chunks_.clear();
    partial_.clear();
    on_chunk_body_ = [this](std::uint64_t remain, std::string_view body, error_code&) {
      partial_.append(body);
      if (body.size() == remain) {
        chunks_.push_back(std::move(partial_));
        partial_.clear();
      }
      return body.size();
    };
    parser_->on_chunk_body(on_chunk_body_);
    const error_code ec = run(co_read_stream_header());
    return {ec, parser_->get()};
  }
  /// Streaming: the next complete chunk; nullopt once the stream ended (done or error).
  std::optional<std::string> next_chunk(error_code* end = nullptr) {
    const error_code ec = run(co_fill_chunk());
    if (end != nullptr) *end = ec;
    if (chunks_.empty()) return std::nullopt;
    std::string chunk = std::move(chunks_.front());
    chunks_.erase(chunks_.begin());
    return chunk;
  }
  bool stream_done() const { return parser_ && parser_->is_done(); }

  void close() {
    error_code ec;
    stream_.socket().close(ec);
  }

 private:
  asio::awaitable<error_code> co_connect() {
    stream_.expires_after(kTimeout);
    auto [ec] = co_await stream_.async_connect(
        tcp::endpoint(asio::ip::make_address("127.0.0.1"), port_), kNoThrow);
    co_return ec;
  }
  asio::awaitable<error_code> co_send(Request req) {
    stream_.expires_after(kTimeout);
    auto [ec, n] = co_await bhttp::async_write(stream_, req, kNoThrow);
    co_return ec;
  }
  asio::awaitable<error_code> co_send_raw(std::string bytes) {
    stream_.expires_after(kTimeout);
    auto [ec, n] = co_await asio::async_write(stream_, asio::buffer(bytes), kNoThrow);
    co_return ec;
  }
  asio::awaitable<std::pair<error_code, Response>> co_receive() {
    Response res;
    stream_.expires_after(kTimeout);
    auto [ec, n] = co_await bhttp::async_read(stream_, buffer_, res, kNoThrow);
    co_return std::pair<error_code, Response>{ec, std::move(res)};
  }
  asio::awaitable<std::pair<error_code, bhttp::response<bhttp::empty_body>>> co_receive_head() {
    bhttp::response_parser<bhttp::empty_body> parser;
    parser.skip(true);
    stream_.expires_after(kTimeout);
    auto [ec, n] = co_await bhttp::async_read(stream_, buffer_, parser, kNoThrow);
    co_return std::pair<error_code, bhttp::response<bhttp::empty_body>>{ec, parser.release()};
  }
  asio::awaitable<error_code> co_read_until_closed() {
    for (;;) {
      stream_.expires_after(kTimeout);
      char sink[4096];
      auto [ec, n] = co_await stream_.async_read_some(asio::buffer(sink), kNoThrow);
      if (ec) co_return ec;
    }
  }
  asio::awaitable<error_code> co_read_stream_header() {
    stream_.expires_after(kTimeout);
    auto [ec, n] = co_await bhttp::async_read_header(stream_, buffer_, *parser_, kNoThrow);
    co_return ec;
  }
  asio::awaitable<error_code> co_fill_chunk() {
    while (chunks_.empty() && !parser_->is_done()) {
      stream_.expires_after(kTimeout);
      auto [ec, n] = co_await bhttp::async_read_some(stream_, buffer_, *parser_, kNoThrow);
      if (ec) co_return ec;
    }
    co_return error_code{};
  }

  std::uint16_t port_;
  asio::io_context ioc_;
  beast::tcp_stream stream_{ioc_};
  beast::flat_buffer buffer_;
  std::optional<bhttp::response_parser<bhttp::empty_body>> parser_;
  std::function<std::size_t(std::uint64_t, std::string_view, error_code&)> on_chunk_body_;
  std::vector<std::string> chunks_;
  std::string partial_;
};

/// Lets the test release a waiting handler step by step: handler waits for release number n.
class Gate {
 public:
  /// Handler side: waits until release() was called at least n times (or kTimeout passed).
  asio::awaitable<bool> wait(asio::any_io_executor ex, int n) {
    asio::steady_timer timer(ex, kTimeout);
    {
      std::lock_guard lock(mutex_);
      if (released_ >= n) co_return true;
      timer_ = &timer;
      executor_ = ex;
    }
    co_await timer.async_wait(kNoThrow);
    std::lock_guard lock(mutex_);
    timer_ = nullptr;
    co_return released_ >= n;
  }
  /// Test side.
  void release() {
    std::lock_guard lock(mutex_);
    ++released_;
    if (timer_ != nullptr) {
      asio::post(executor_, [this] {
        std::lock_guard inner(mutex_);
        if (timer_ != nullptr) timer_->cancel();
      });
    }
  }

 private:
  std::mutex mutex_;
  int released_ = 0;
  asio::steady_timer* timer_ = nullptr;
  asio::any_io_executor executor_;
};

/// Waits (bounded) for a future the handler fulfils.
template <class T>
bool ready(std::future<T>& f) {
  return f.wait_for(kTimeout) == std::future_status::ready;
}

bool is_closed_error(const error_code& ec) {
  return ec == asio::error::eof || ec == asio::error::connection_reset ||
         ec == bhttp::error::end_of_stream || ec == bhttp::error::partial_message;
}

// ---------------------------------------------------------------------------------------------

TEST(Server, RespondsAndKeepsTheConnectionAlive) {
  Server server(local_options(), respond_ok());
  server.start();
  ASSERT_NE(server.port(), 0);
  EXPECT_EQ(server.url(), "http://127.0.0.1:" + std::to_string(server.port()));

  TestClient client(server.port());
  ASSERT_FALSE(client.connect());
  for (int i = 0; i < 3; ++i) {
    const Response res = client.request(verb::get, "/");
    EXPECT_EQ(res.result(), Status::ok);
    EXPECT_EQ(res.body(), "ok");
    EXPECT_EQ(res[bhttp::field::content_length], "2");
    EXPECT_EQ(res[bhttp::field::server], "agentlab");
    EXPECT_EQ(res[bhttp::field::content_type], "text/plain");
    EXPECT_TRUE(res.keep_alive());
  }
  EXPECT_EQ(server.stats().connections_accepted.load(), 1u);
  EXPECT_EQ(server.stats().requests.load(), 3u);
  EXPECT_EQ(server.stats().connections_open.load(), 1u);
  server.stop();
  EXPECT_EQ(server.stats().connections_open.load(), 0u);
}

TEST(Server, ClosesAfterAnsweringConnectionClose) {
  Server server(local_options(), respond_ok());
  server.start();
  TestClient client(server.port());
  ASSERT_FALSE(client.connect());
  Request req{verb::get, "/", 11};
  req.keep_alive(false);
  ASSERT_FALSE(client.send(req));
  auto [ec, res] = client.receive();
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_FALSE(res.keep_alive());
  EXPECT_TRUE(is_closed_error(client.read_until_closed()));
}

TEST(Server, AnswersPipelinedRequestsInOrder) {
  Handler echo_target = [](Exchange& ex) -> asio::awaitable<void> {
    co_await ex.respond(Status::ok, std::string(std::string_view(ex.request().target())),
                        "text/plain");
  };
  Server server(local_options(), echo_target);
  server.start();
  TestClient client(server.port());
  ASSERT_FALSE(client.connect());
  ASSERT_FALSE(
      client.send_raw("GET /one HTTP/1.1\r\nHost: x\r\n\r\nGET /two HTTP/1.1\r\nHost: x\r\n\r\n"));
  auto [ec1, one] = client.receive();
  ASSERT_FALSE(ec1);
  auto [ec2, two] = client.receive();
  ASSERT_FALSE(ec2);
  EXPECT_EQ(one.body(), "/one");
  EXPECT_EQ(two.body(), "/two");
}

TEST(Server, ReadsBodiesUpToTheLimitAndAnswers413Above) {
  ServerOptions options = local_options();
  options.body_limit = 16;
  Handler echo = [](Exchange& ex) -> asio::awaitable<void> {
    co_await ex.respond(Status::ok, ex.request().body(), "text/plain");
  };
  Server server(options, echo);
  server.start();

  TestClient ok_client(server.port());
  ASSERT_FALSE(ok_client.connect());
  EXPECT_EQ(ok_client.request(verb::post, "/", "sixteen bytes..!").body(), "sixteen bytes..!");

  TestClient big_client(server.port());
  ASSERT_FALSE(big_client.connect());
  Request req{verb::post, "/", 11};
  req.body() = std::string(100, 'x');
  ASSERT_FALSE(big_client.send(req));
  auto [ec, res] = big_client.receive();
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(res.result(), Status::payload_too_large);
  EXPECT_FALSE(res.keep_alive());
  const auto body = boost::json::parse(res.body());
  EXPECT_EQ(body.at("error").at("type").as_string(), "invalid_request_error");
  EXPECT_TRUE(is_closed_error(big_client.read_until_closed()));
  EXPECT_EQ(server.stats().body_too_large.load(), 1u);
  EXPECT_EQ(server.stats().requests.load(), 1u);  // only the one that reached the handler
}

TEST(Server, Answers100ContinueBeforeReadingTheBody) {
  Handler echo = [](Exchange& ex) -> asio::awaitable<void> {
    co_await ex.respond(Status::ok, ex.request().body(), "text/plain");
  };
  Server server(local_options(), echo);
  server.start();
  TestClient client(server.port());
  ASSERT_FALSE(client.connect());
  ASSERT_FALSE(client.send_raw(
      "POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"));
  auto [ec1, interim] = client.receive();  // the body is not sent until this arrives
  ASSERT_FALSE(ec1) << ec1.message();
  EXPECT_EQ(interim.result(), Status::continue_);
  ASSERT_FALSE(client.send_raw("hello"));
  auto [ec2, res] = client.receive();
  ASSERT_FALSE(ec2);
  EXPECT_EQ(res.body(), "hello");
}

TEST(Server, Answers400ToGarbageAndCloses) {
  Server server(local_options(), respond_ok());
  server.start();
  TestClient client(server.port());
  ASSERT_FALSE(client.connect());
  ASSERT_FALSE(client.send_raw("this is not http\r\n\r\n"));
  auto [ec, res] = client.receive();
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(res.result(), Status::bad_request);
  EXPECT_FALSE(res.keep_alive());
  const auto body = boost::json::parse(res.body());
  EXPECT_TRUE(body.at("error").at("message").as_string().starts_with("malformed HTTP request"));
  EXPECT_TRUE(is_closed_error(client.read_until_closed()));
  EXPECT_EQ(server.stats().bad_requests.load(), 1u);
  EXPECT_EQ(server.stats().requests.load(), 0u);
}

TEST(Server, RoutesWithParamsAndAnswers404And405) {
  Router router;
  router.add(verb::get, "/api/agents/{id}",
             [](Exchange& ex, const PathParams& p) -> asio::awaitable<void> {
               co_await ex.respond(Status::ok, "agent " + p.at("id"), "text/plain");
             });
  router.add(verb::post, "/api/agents/{id}/hibernate",
             [](Exchange& ex, const PathParams& p) -> asio::awaitable<void> {
               co_await ex.respond(Status::accepted, "hibernate " + p.at("id"), "text/plain");
             });
  router.add(verb::put, "/api/agents/{id}",
             [](Exchange& ex, const PathParams&) -> asio::awaitable<void> {
               co_await ex.respond(Status::ok, "put", "text/plain");
             });
  router.add(verb::get, "/", [](Exchange& ex, const PathParams&) -> asio::awaitable<void> {
    co_await ex.respond(Status::ok, "root", "text/plain");
  });
  Server server(local_options(), router.handler());
  server.start();
  TestClient client(server.port());
  ASSERT_FALSE(client.connect());

  Response res = client.request(verb::get, "/api/agents/a%20b?x=1");
  EXPECT_EQ(res.result(), Status::ok);
  EXPECT_EQ(res.body(), "agent a b");
  res = client.request(verb::post, "/api/agents/42/hibernate");
  EXPECT_EQ(res.result(), Status::accepted);
  EXPECT_EQ(res.body(), "hibernate 42");
  EXPECT_EQ(client.request(verb::get, "/").body(), "root");

  res = client.request(verb::delete_, "/api/agents/42");
  EXPECT_EQ(res.result(), Status::method_not_allowed);
  EXPECT_EQ(res[bhttp::field::allow], "GET, PUT");
  EXPECT_EQ(boost::json::parse(res.body()).at("error").at("type").as_string(),
            "invalid_request_error");

  for (const char* target : {"/api/agents", "/api/agents/42/hibernate/x", "/api/agents//hibernate",
                             "/nope", "/api/agents/42/"}) {
    res = client.request(verb::get, target);
    EXPECT_EQ(res.result(), Status::not_found) << target;
    EXPECT_EQ(boost::json::parse(res.body()).at("error").at("type").as_string(), "not_found_error");
  }
  EXPECT_TRUE(res.keep_alive());  // errors from the router keep the connection
}

TEST(Router, PathOfAndQueryParamDecode) {
  EXPECT_EQ(path_of("/a/b?x=1#f"), "/a/b");
  EXPECT_EQ(path_of("/a/b#f"), "/a/b");
  EXPECT_EQ(path_of("/a"), "/a");
  EXPECT_EQ(query_param("/p?a=1&b=two%20words&c=x+y", "b"), "two words");
  EXPECT_EQ(query_param("/p?a=1&b=2", "a"), "1");
  EXPECT_EQ(query_param("/p?a=1&c=x+y", "c"), "x y");
  EXPECT_EQ(query_param("/p?flag&a=1", "flag"), "");
  EXPECT_EQ(query_param("/p?a%5Bb%5D=v", "a[b]"), "v");
  EXPECT_EQ(query_param("/p?a=%zz%4", "a"), "%zz%4");  // broken escapes kept as they are
  EXPECT_EQ(query_param("/p?a=1#b=2", "b"), std::nullopt);
  EXPECT_EQ(query_param("/p?a=1", "b"), std::nullopt);
  EXPECT_EQ(query_param("/p", "a"), std::nullopt);
  EXPECT_EQ(query_param("/p?a=1&a=2", "a"), "1");
}

TEST(Server, StreamsChunksOneAtATime) {
  Gate gate;
  Handler stream = [&](Exchange& ex) -> asio::awaitable<void> {
    std::vector<std::pair<std::string, std::string>> headers;
    headers.emplace_back("X-Test", "yes");
    co_await ex.start_stream(Status::ok, "text/plain", std::move(headers));
    for (int i = 0; i < 3; ++i) {
      const std::string chunk = "chunk-" + std::to_string(i);
      if (co_await ex.write_chunk(chunk)) co_return;
      // The next chunk is written only once the client has read this one.
      if (!co_await gate.wait(ex.executor(), i + 1)) co_return;
    }
    co_await ex.finish_stream();
  };
  Server server(local_options(), stream);
  server.start();
  TestClient client(server.port());
  ASSERT_FALSE(client.connect());
  Request req{verb::get, "/", 11};
  ASSERT_FALSE(client.send(req));
  auto [ec, head] = client.read_stream_header();
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_TRUE(head.chunked());
  EXPECT_EQ(head[bhttp::field::content_type], "text/plain");
  EXPECT_EQ(head[bhttp::field::cache_control], "no-cache");
  EXPECT_EQ(head["X-Test"], "yes");
  EXPECT_EQ(head.count("X-Accel-Buffering"), 0u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(client.next_chunk(), "chunk-" + std::to_string(i));
    gate.release();
  }
  EXPECT_EQ(client.next_chunk(), std::nullopt);
  EXPECT_TRUE(client.stream_done());
  EXPECT_EQ(server.stats().requests.load(), 1u);
}

TEST(Server, StreamsServerSentEventsAndKeepsTheConnection) {
  Handler handler = [](Exchange& ex) -> asio::awaitable<void> {
    if (ex.request().target() != "/events") {
      co_await ex.respond(Status::ok, "after", "text/plain");
      co_return;
    }
    co_await ex.start_stream(Status::ok, "text/event-stream");
    co_await ex.write_chunk(": hello\n\n");
    for (int i = 0; i < 5; ++i) {
      co_await ex.write_chunk(format_sse("token", "t" + std::to_string(i), std::to_string(i)));
    }
    co_await ex.write_chunk(format_sse("done", "{}"));
    co_await ex.finish_stream();
  };
  Server server(local_options(), handler);
  server.start();
  TestClient client(server.port());
  ASSERT_FALSE(client.connect());
  ASSERT_FALSE(client.send(Request{verb::get, "/events", 11}));
  auto [ec, head] = client.read_stream_header();
  ASSERT_FALSE(ec);
  EXPECT_EQ(head[bhttp::field::content_type], "text/event-stream");
  EXPECT_EQ(head[bhttp::field::cache_control], "no-cache");
  EXPECT_EQ(head["X-Accel-Buffering"], "no");
  SseParser parser;
  std::vector<SseEvent> events;
  while (auto chunk = client.next_chunk()) {
    ASSERT_TRUE(parser.feed(*chunk, [&](SseEvent&& e) { events.push_back(std::move(e)); }));
  }
  ASSERT_TRUE(client.stream_done());
  ASSERT_EQ(events.size(), 6u);
  EXPECT_EQ(events[2].event, "token");
  EXPECT_EQ(events[2].data, "t2");
  EXPECT_EQ(events[5].event, "done");
  EXPECT_EQ(events[5].id, "4");
  EXPECT_EQ(parser.comments(), 1u);
  EXPECT_EQ(client.request(verb::get, "/next").body(), "after");
  EXPECT_EQ(server.stats().connections_accepted.load(), 1u);
}

/// Writes one chunk without suspending: with try_write_chunk(), or, given a batch, with
/// queue_chunk() and the batch's submit() (the sink's result is returned).
Exchange::ChunkWrite write_without_waiting(Exchange& ex, std::string_view data, SendBatch* batch) {
  if (batch == nullptr) return ex.try_write_chunk(data);
  struct Sink final : Exchange::ChunkSink {
    std::optional<Exchange::ChunkWrite> result;
    void on_chunk_written(Exchange::ChunkWrite r) noexcept override { result = r; }
  } sink;
  const Exchange::ChunkWrite queued = ex.queue_chunk(*batch, data, sink);
  if (queued != Exchange::ChunkWrite::kQueued) {
    EXPECT_EQ(batch->size(), 0u);
    return queued;
  }
  EXPECT_EQ(batch->submit(), 1u);
  EXPECT_TRUE(sink.result.has_value()) << "submit() did not tell the sink";
  return sink.result.value_or(Exchange::ChunkWrite::kQueued);
}

/// The two ways to write without waiting, for tests that run with each.
struct NonBlockingWrite {
  const char* name;
  bool batched;
};
constexpr NonBlockingWrite kNonBlockingWrites[] = {{"try_write_chunk", false}, {"queue_chunk", true}};

/// What a handler saw while filling a socket the client does not read.
struct FillReport {
  int sent = 0;  ///< chunks try_write_chunk took whole before it returned something else
  Exchange::ChunkWrite last = Exchange::ChunkWrite::kSent;
};

/// A chunk that says which one it is: "chunk 00000012 " and then filler.
std::string numbered_chunk(int i, std::size_t size) {
  std::string chunk = "chunk " + std::to_string(100'000'000 + i).substr(1) + " ";
  chunk.resize(size, 'x');
  return chunk;
}

TEST(Server, NonBlockingWritesKeepWhatAFullSocketRefusesAndSendItFirstLater) {
  // /flush: flush() then write_chunk(); /finish: finish_stream() straight away. Either way the
  // bytes kept from the refused chunk go out first, in order. Once with try_write_chunk(), once
  // with queue_chunk() through a SendBatch (io_uring where the kernel has it).
  constexpr std::size_t kChunk = 64 * 1024;
  constexpr int kMaxChunks = 4096;  // 256 MiB: far more than any socket buffers
  Gate gate;
  std::promise<FillReport> filled;
  std::promise<error_code> flushed;
  SendBatch batch;
  bool batched = false;
  Handler handler = [&](Exchange& ex) -> asio::awaitable<void> {
    co_await ex.start_stream(Status::ok, "application/octet-stream");
    FillReport report;
    while (report.sent < kMaxChunks) {
      report.last = write_without_waiting(ex, numbered_chunk(report.sent, kChunk), batched ? &batch : nullptr);
      if (report.last != Exchange::ChunkWrite::kSent) break;
      ++report.sent;
    }
    filled.set_value(report);
    if (report.last != Exchange::ChunkWrite::kPending) co_return;
    co_await gate.wait(ex.executor(), 1);  // the client starts reading now
    if (ex.request().target() == "/flush") {
      flushed.set_value(co_await ex.flush());
      co_await ex.write_chunk("tail");
    } else {
      flushed.set_value(error_code{});
    }
    co_await ex.finish_stream();
  };
  Server server(local_options(), handler);
  server.start();
  for (const auto& [how, batched_now] : kNonBlockingWrites)
  for (const std::string target : {"/flush", "/finish"}) {
    SCOPED_TRACE(std::string(how) + " " + target);
    batched = batched_now;
    filled = {};
    flushed = {};
    TestClient client(server.port());
    ASSERT_FALSE(client.connect());
    ASSERT_FALSE(client.send(Request{verb::get, target, 11}));
    auto report_future = filled.get_future();
    ASSERT_TRUE(ready(report_future));
    const FillReport report = report_future.get();
    ASSERT_EQ(report.last, Exchange::ChunkWrite::kPending);
    ASSERT_GT(report.sent, 0);
    gate.release();
    auto [ec, head] = client.read_stream_header(std::uint64_t{1} << 30);
    ASSERT_FALSE(ec) << ec.message();
    int i = 0;
    std::string after;
    while (auto chunk = client.next_chunk()) {
      if (i <= report.sent) {
        ASSERT_EQ(*chunk, numbered_chunk(i, kChunk)) << "chunk " << i;
      } else {
        after += *chunk;
      }
      ++i;
    }
    EXPECT_TRUE(client.stream_done());
    EXPECT_EQ(i - 1, report.sent + (target == "/flush" ? 1 : 0));  // + the refused chunk, whole
    EXPECT_EQ(after, target == "/flush" ? "tail" : "");
    auto flush_future = flushed.get_future();
    ASSERT_TRUE(ready(flush_future));
    EXPECT_FALSE(flush_future.get());
  }
}

TEST(Server, NonBlockingWritesFailOnceThePeerIsGoneAndOutsideAStream) {
  for (const auto& [how, batched] : kNonBlockingWrites) {
    SCOPED_TRACE(how);
    SendBatch batch;
    SendBatch* use = batched ? &batch : nullptr;
    std::promise<void> first_sent;
    std::promise<std::pair<Exchange::ChunkWrite, bool>> outcome;
    std::promise<std::pair<Exchange::ChunkWrite, Exchange::ChunkWrite>> outside;
    Handler handler = [&](Exchange& ex) -> asio::awaitable<void> {
      if (ex.request().target() == "/plain") {
        const auto before = write_without_waiting(ex, "x", use);  // no stream started
        co_await ex.respond(Status::ok, "ok", "text/plain");
        outside.set_value({before, write_without_waiting(ex, "x", use)});
        co_return;
      }
      co_await ex.start_stream(Status::ok, "text/event-stream");
      EXPECT_EQ(write_without_waiting(ex, format_sse("", "first"), use), Exchange::ChunkWrite::kSent);
      first_sent.set_value();
      asio::steady_timer timer(ex.executor());
      const auto deadline = std::chrono::steady_clock::now() + kTimeout;
      Exchange::ChunkWrite last = Exchange::ChunkWrite::kSent;
      while (last != Exchange::ChunkWrite::kFailed && std::chrono::steady_clock::now() < deadline) {
        timer.expires_after(2ms);
        co_await timer.async_wait(kNoThrow);
        last = write_without_waiting(ex, format_sse("", "more"), use);
      }
      outcome.set_value({last, ex.closed()});
      EXPECT_TRUE(co_await ex.write_chunk("after"));  // the same error from the coroutine API
    };
    Server server(local_options(), handler);
    server.start();

    TestClient plain(server.port());
    ASSERT_FALSE(plain.connect());
    EXPECT_EQ(plain.request(verb::get, "/plain").body(), "ok");
    auto outside_future = outside.get_future();
    ASSERT_TRUE(ready(outside_future));
    const auto [before, after] = outside_future.get();
    EXPECT_EQ(before, Exchange::ChunkWrite::kFailed);
    EXPECT_EQ(after, Exchange::ChunkWrite::kFailed);

    TestClient client(server.port());
    ASSERT_FALSE(client.connect());
    ASSERT_FALSE(client.send(Request{verb::get, "/stream", 11}));
    auto started = first_sent.get_future();
    ASSERT_TRUE(ready(started));
    client.close();
    auto result = outcome.get_future();
    ASSERT_TRUE(ready(result));
    const auto [last, closed] = result.get();
    EXPECT_EQ(last, Exchange::ChunkWrite::kFailed);
    EXPECT_TRUE(closed);
  }
}

TEST(Server, AbortIsSeenByTheClientAsEndOfConnection) {
  Handler handler = [](Exchange& ex) -> asio::awaitable<void> {
    if (ex.request().target() == "/mid-stream") {
      co_await ex.start_stream(Status::ok, "text/event-stream");
      co_await ex.write_chunk(format_sse("", "partial"));
    }
    ex.abort();
    EXPECT_TRUE(ex.closed());
    const error_code after = co_await ex.write_chunk("more");  // no bytes after abort()
    EXPECT_TRUE(after);
  };
  Server server(local_options(), handler);
  server.start();

  TestClient before(server.port());
  ASSERT_FALSE(before.connect());
  ASSERT_FALSE(before.send(Request{verb::get, "/", 11}));
  auto [ec, res] = before.receive();
  EXPECT_TRUE(is_closed_error(ec)) << ec.message();

  TestClient during(server.port());
  ASSERT_FALSE(during.connect());
  ASSERT_FALSE(during.send(Request{verb::get, "/mid-stream", 11}));
  auto [hec, head] = during.read_stream_header();
  ASSERT_FALSE(hec);
  EXPECT_EQ(during.next_chunk(), format_sse("", "partial"));
  error_code end;
  EXPECT_EQ(during.next_chunk(&end), std::nullopt);
  EXPECT_TRUE(is_closed_error(end)) << end.message();
  EXPECT_FALSE(during.stream_done());
}

TEST(Server, HeadGetsTheHeaderWithoutTheBody) {
  Handler handler = [](Exchange& ex) -> asio::awaitable<void> {
    if (ex.request().target() == "/stream") {
      co_await ex.start_stream(Status::ok, "text/event-stream");
      co_await ex.write_chunk(format_sse("", "not sent"));
      co_await ex.finish_stream();
      co_return;
    }
    co_await ex.respond(Status::ok, "twelve bytes", "text/plain");
  };
  Server server(local_options(), handler);
  server.start();
  TestClient client(server.port());
  ASSERT_FALSE(client.connect());
  // Both HEAD answers and the GET come back on one connection: no stray body bytes in between.
  ASSERT_FALSE(
      client.send_raw("HEAD / HTTP/1.1\r\nHost: x\r\n\r\n"
                      "HEAD /stream HTTP/1.1\r\nHost: x\r\n\r\n"
                      "GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  auto [ec, res] = client.receive_head_response();
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(res[bhttp::field::content_length], "12");
  auto [ec2, res2] = client.receive_head_response();
  ASSERT_FALSE(ec2) << ec2.message();
  EXPECT_EQ(res2[bhttp::field::content_type], "text/event-stream");
  auto [ec3, res3] = client.receive();
  ASSERT_FALSE(ec3) << ec3.message();
  EXPECT_EQ(res3.body(), "twelve bytes");
}

TEST(Server, InvalidResponseFromTheHandlerGets500) {
  Handler handler = [](Exchange& ex) -> asio::awaitable<void> {
    co_await ex.respond(Status::no_content, "a 204 cannot have a body", "text/plain");
  };
  Server server(local_options(), handler);
  server.start();
  TestClient client(server.port());
  ASSERT_FALSE(client.connect());
  EXPECT_EQ(client.request(verb::get, "/").result(), Status::internal_server_error);
}

TEST(Server, HandlerThatDoesNotAnswerGets500) {
  Handler handler = [](Exchange&) -> asio::awaitable<void> { co_return; };
  Server server(local_options(), handler);
  server.start();
  TestClient client(server.port());
  ASSERT_FALSE(client.connect());
  const Response res = client.request(verb::get, "/");
  EXPECT_EQ(res.result(), Status::internal_server_error);
  EXPECT_EQ(boost::json::parse(res.body()).at("error").at("type").as_string(), "server_error");
}

TEST(Server, HandlerThatThrowsGets500OrAClose) {
  Handler handler = [](Exchange& ex) -> asio::awaitable<void> {
    if (ex.request().target() == "/after-stream-start") {
      co_await ex.start_stream(Status::ok, "text/plain");
      co_await ex.write_chunk("x");
    }
    throw std::runtime_error("expected test failure");
  };
  Server server(local_options(), handler);
  server.start();

  TestClient client(server.port());
  ASSERT_FALSE(client.connect());
  const Response res = client.request(verb::get, "/");
  EXPECT_EQ(res.result(), Status::internal_server_error);
  EXPECT_FALSE(res.keep_alive());
  EXPECT_TRUE(is_closed_error(client.read_until_closed()));

  TestClient streaming(server.port());
  ASSERT_FALSE(streaming.connect());
  ASSERT_FALSE(streaming.send(Request{verb::get, "/after-stream-start", 11}));
  auto [ec, head] = streaming.read_stream_header();
  ASSERT_FALSE(ec);
  EXPECT_EQ(streaming.next_chunk(), "x");
  error_code end;
  EXPECT_EQ(streaming.next_chunk(&end), std::nullopt);
  EXPECT_TRUE(is_closed_error(end)) << end.message();
}

TEST(Server, ClosedTurnsTrueWhenThePeerDisconnects) {
  std::promise<void> handler_started;
  std::promise<bool> saw_closed;
  Handler handler = [&](Exchange& ex) -> asio::awaitable<void> {
    EXPECT_FALSE(ex.closed());
    handler_started.set_value();
    asio::steady_timer timer(ex.executor());
    const auto deadline = std::chrono::steady_clock::now() + kTimeout;
    while (!ex.closed() && std::chrono::steady_clock::now() < deadline) {
      timer.expires_after(2ms);
      co_await timer.async_wait(kNoThrow);
    }
    saw_closed.set_value(ex.closed());
    co_await ex.respond(Status::ok, "late", "text/plain");
  };
  Server server(local_options(), handler);
  server.start();
  auto started = handler_started.get_future();
  auto closed = saw_closed.get_future();
  TestClient client(server.port());
  ASSERT_FALSE(client.connect());
  ASSERT_FALSE(client.send(Request{verb::get, "/", 11}));
  ASSERT_TRUE(ready(started));
  client.close();
  ASSERT_TRUE(ready(closed));
  EXPECT_TRUE(closed.get());
}

TEST(Server, KeepsPipelinedBytesReadWhileWatchingForClose) {
  Gate gate;
  std::promise<void> slow_started;
  Handler handler = [&](Exchange& ex) -> asio::awaitable<void> {
    const std::string target(std::string_view(ex.request().target()));
    if (target == "/slow") {
      EXPECT_FALSE(ex.closed());  // starts the peer watch
      slow_started.set_value();
      co_await gate.wait(ex.executor(), 1);
      EXPECT_FALSE(ex.closed());  // the pipelined request is data, not a close
    }
    co_await ex.respond(Status::ok, target, "text/plain");
  };
  Server server(local_options(), handler);
  server.start();
  auto started = slow_started.get_future();
  TestClient client(server.port());
  ASSERT_FALSE(client.connect());
  ASSERT_FALSE(client.send_raw("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"));
  ASSERT_TRUE(ready(started));
  ASSERT_FALSE(client.send_raw("GET /fast HTTP/1.1\r\nHost: x\r\n\r\n"));
  gate.release();
  auto [ec1, one] = client.receive();
  ASSERT_FALSE(ec1) << ec1.message();
  auto [ec2, two] = client.receive();
  ASSERT_FALSE(ec2) << ec2.message();
  EXPECT_EQ(one.body(), "/slow");
  EXPECT_EQ(two.body(), "/fast");
}

TEST(Server, StopEndsCooperativeStreamsAndClosesIdleConnections) {
  Handler handler = [](Exchange& ex) -> asio::awaitable<void> {
    if (ex.request().target() != "/stream") {
      co_await ex.respond(Status::ok, "ok", "text/plain");
      co_return;
    }
    co_await ex.start_stream(Status::ok, "text/event-stream");
    asio::steady_timer timer(ex.executor());
    const auto deadline = std::chrono::steady_clock::now() + kTimeout;
    while (!ex.closed() && std::chrono::steady_clock::now() < deadline) {
      if (co_await ex.write_chunk(format_sse("tick", "."))) co_return;
      timer.expires_after(5ms);
      co_await timer.async_wait(kNoThrow);
    }
    co_await ex.write_chunk(format_sse("bye", "server stopping"));
    co_await ex.finish_stream();
  };
  Server server(local_options(), handler);
  server.start();
  TestClient idle(server.port());
  ASSERT_FALSE(idle.connect());
  EXPECT_EQ(idle.request(verb::get, "/").body(), "ok");

  TestClient streaming(server.port());
  ASSERT_FALSE(streaming.connect());
  ASSERT_FALSE(streaming.send(Request{verb::get, "/stream", 11}));
  auto [ec, head] = streaming.read_stream_header();
  ASSERT_FALSE(ec);
  ASSERT_TRUE(streaming.next_chunk().has_value());

  const auto t0 = std::chrono::steady_clock::now();
  server.stop(std::chrono::seconds(3));
  const auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_LT(took, std::chrono::seconds(1));  // the stream ended by itself, well before the drain

  std::string last;
  while (auto chunk = streaming.next_chunk()) last = *chunk;
  EXPECT_TRUE(streaming.stream_done());
  EXPECT_EQ(last, format_sse("bye", "server stopping"));
  EXPECT_TRUE(is_closed_error(idle.read_until_closed()));
  EXPECT_EQ(server.stats().connections_open.load(), 0u);
}

TEST(Server, StopReturnsWithinTheDrainBoundWhenAHandlerIgnoresClosed) {
  std::promise<void> started;
  Handler handler = [&](Exchange& ex) -> asio::awaitable<void> {
    co_await ex.start_stream(Status::ok, "text/event-stream");
    co_await ex.write_chunk(format_sse("", "first"));
    started.set_value();
    asio::steady_timer timer(ex.executor(), std::chrono::seconds(60));
    co_await timer.async_wait(kNoThrow);  // ignores closed(); stop() must not wait for it
    co_await ex.finish_stream();
  };
  Server server(local_options(), handler);
  server.start();
  auto handler_started = started.get_future();
  TestClient client(server.port());
  ASSERT_FALSE(client.connect());
  ASSERT_FALSE(client.send(Request{verb::get, "/", 11}));
  ASSERT_TRUE(ready(handler_started));

  const auto drain = std::chrono::milliseconds(200);
  const auto t0 = std::chrono::steady_clock::now();
  server.stop(drain);
  const auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(took, drain);
  EXPECT_LT(took, drain + std::chrono::seconds(1));
  EXPECT_EQ(server.stats().connections_open.load(), 0u);
  auto [ec, head] = client.read_stream_header();
  ASSERT_FALSE(ec);
  EXPECT_EQ(client.next_chunk(), format_sse("", "first"));
  error_code end;
  EXPECT_EQ(client.next_chunk(&end), std::nullopt);
  EXPECT_TRUE(is_closed_error(end)) << end.message();
}

TEST(Server, RejectsConnectionsOverMaxConnections) {
  ServerOptions options = local_options();
  options.max_connections = 1;
  Server server(options, respond_ok());
  server.start();
  TestClient first(server.port());
  ASSERT_FALSE(first.connect());
  EXPECT_EQ(first.request(verb::get, "/").body(), "ok");  // now surely counted as open

  TestClient second(server.port());
  ASSERT_FALSE(second.connect());  // the kernel completes the handshake; the server closes
  EXPECT_TRUE(is_closed_error(second.read_until_closed()));
  EXPECT_EQ(server.stats().connections_rejected.load(), 1u);
  EXPECT_EQ(server.stats().connections_accepted.load(), 1u);
  EXPECT_EQ(first.request(verb::get, "/").body(), "ok");
}

TEST(Server, ClosesIdleConnectionsAfterTheIdleTimeout) {
  ServerOptions options = local_options();
  options.idle_timeout = std::chrono::milliseconds(50);
  Server server(options, respond_ok());
  server.start();
  TestClient client(server.port());
  ASSERT_FALSE(client.connect());
  EXPECT_EQ(client.request(verb::get, "/").body(), "ok");
  EXPECT_TRUE(is_closed_error(client.read_until_closed()));
  // Beast closes the socket before the read completes with the timeout; stop() waits for the
  // connection's coroutine to finish, so the count is final after it.
  server.stop();
  EXPECT_EQ(server.stats().timeouts.load(), 1u);
}

TEST(Server, ClosesAConnectionThatSendsAPartialRequestAfterTheReadTimeout) {
  ServerOptions options = local_options();
  options.read_timeout = std::chrono::milliseconds(50);
  Server server(options, respond_ok());
  server.start();
  TestClient client(server.port());
  ASSERT_FALSE(client.connect());
  ASSERT_FALSE(client.send_raw("GET / HTTP/1.1\r\nHost:"));
  EXPECT_TRUE(is_closed_error(client.read_until_closed()));
  // Beast closes the socket before the read completes with the timeout; stop() waits for the
  // connection's coroutine to finish, so the count is final after it.
  server.stop();
  EXPECT_EQ(server.stats().timeouts.load(), 1u);
  EXPECT_EQ(server.stats().requests.load(), 0u);
}

TEST(Server, ServesConnectionsOnEveryThread) {
  ServerOptions options = local_options();
  options.threads = 2;
  std::mutex mutex;
  std::set<std::thread::id> threads;
  Handler handler = [&](Exchange& ex) -> asio::awaitable<void> {
    {
      std::lock_guard lock(mutex);
      threads.insert(std::this_thread::get_id());
    }
    co_await ex.respond(Status::ok, "ok", "text/plain");
  };
  Server server(options, handler);
  server.start();
  std::vector<std::unique_ptr<TestClient>> clients;
  for (int i = 0; i < 4; ++i) {
    clients.push_back(std::make_unique<TestClient>(server.port()));
    ASSERT_FALSE(clients.back()->connect());
    EXPECT_EQ(clients.back()->request(verb::get, "/").body(), "ok");
  }
  EXPECT_EQ(threads.size(), 2u);  // round-robin over the two io_contexts
  EXPECT_EQ(server.stats().connections_accepted.load(), 4u);
}

TEST(Server, StopIsSafeTwiceAndWithoutStart) {
  Server never_started(local_options(), respond_ok());
  never_started.stop();
  never_started.stop();

  Server server(local_options(), respond_ok());
  server.start();
  server.stop();
  server.stop();
  TestClient client(server.port());
  EXPECT_TRUE(client.connect());  // nobody listens any more
}

TEST(Server, StartThrowsNamingTheAddressWhenThePortIsTaken) {
  Server first(local_options(), respond_ok());
  first.start();
  ServerOptions options = local_options();
  options.port = first.port();
  Server second(options, respond_ok());
  try {
    second.start();
    FAIL() << "start() on a taken port should throw";
  } catch (const std::system_error& e) {
    EXPECT_NE(std::string(e.what()).find("127.0.0.1:" + std::to_string(first.port())),
              std::string::npos)
        << e.what();
  }
}

TEST(JsonError, HasTheOpenAiShape) {
  const auto v = boost::json::parse(json_error("bad \"thing\"", "rate_limit_error"));
  EXPECT_EQ(v.at("error").at("message").as_string(), "bad \"thing\"");
  EXPECT_EQ(v.at("error").at("type").as_string(), "rate_limit_error");
}

}  // namespace
}  // namespace lab::http
