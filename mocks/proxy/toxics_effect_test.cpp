// Each toxic's observable effect on real TCP streams through the proxy (127.0.0.1, OS ports),
// measured loosely but meaningfully: lower bounds from the configured values, generous upper
// bounds against hangs. The upstream is an echo server, so what the client reads back went
// through both directions.

#include <gtest/gtest.h>

#include <cerrno>
#include <memory>
#include <random>
#include <vector>

#include <boost/beast/http/verb.hpp>

#include "mocks/proxy/address.hpp"
#include "mocks/proxy/chaos_proxy.hpp"
#include "mocks/proxy/testing/api_client.hpp"
#include "mocks/proxy/testing/echo_server.hpp"
#include "mocks/proxy/testing/tcp_client.hpp"

namespace lab::mocks::proxy {
namespace {

namespace pt = lab::mocks::proxy::testing;
using std::chrono::milliseconds;
using boost::beast::http::verb;

constexpr milliseconds kIoTimeout{5'000};

std::int64_t ms(std::chrono::steady_clock::duration d) {
  return std::chrono::duration_cast<milliseconds>(d).count();
}

std::string random_bytes(std::size_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng() & 0xff);
  return s;
}

class ToxicEffect : public ::testing::Test {
 protected:
  void SetUp() override { proxy_.start(); }

  std::uint16_t make_proxy(const std::string& name) {
    auto created = proxy_.registry().create_proxy({name, "127.0.0.1:0", echo_.address(), true});
    EXPECT_TRUE(created.ok()) << (created.ok() ? "" : created.error().message);
    if (!created.ok()) return 0;
    return parse_host_port(created.value().listen)->port;
  }

  static Toxic toxic(ToxicType type, Direction stream, ToxicAttributes attributes,
                     double toxicity = 1.0) {
    Toxic t;
    t.type = type;
    t.stream = stream;
    t.attributes = attributes;
    t.toxicity = toxicity;
    return t;
  }

  void add(const std::string& proxy, const Toxic& t) {
    auto added = proxy_.registry().add_toxic(proxy, t);
    ASSERT_TRUE(added.ok()) << added.error().message;
  }

  ChaosProxy proxy_;
  pt::EchoServer echo_;
};

TEST_F(ToxicEffect, WithoutToxicsBytesPassUnchangedBothWays) {
  const std::uint16_t port = make_proxy("plain");
  for (int i = 0; i < 3; ++i) {
    pt::TcpClient c;
    ASSERT_EQ(c.connect(port), 0);
    const std::string payload = random_bytes(300'000, static_cast<std::uint64_t>(i));
    ASSERT_TRUE(c.send(payload));
    const auto r = c.read(payload.size(), kIoTimeout);
    ASSERT_EQ(r.data.size(), payload.size());
    EXPECT_TRUE(r.data == payload);
  }
  const auto stats = proxy_.registry().stats();
  ASSERT_EQ(stats.size(), 1u);
  EXPECT_EQ(stats[0].connections_accepted, 3u);
  EXPECT_EQ(stats[0].received_bytes[0], 900'000u);
}

TEST_F(ToxicEffect, LatencyDelaysEveryResponseByAtLeastTheLatency) {
  const std::uint16_t port = make_proxy("slow");
  ASSERT_GE(pt::echo_round_trip(port, "ping", kIoTimeout).count(), 0);
  add("slow", toxic(ToxicType::kLatency, Direction::kDownstream, {.latency = 200}));
  for (int i = 0; i < 3; ++i) {
    const auto rtt = pt::echo_round_trip(port, "ping", kIoTimeout);
    EXPECT_GE(rtt.count(), 200);
    EXPECT_LT(rtt.count(), 2'000);
  }
  // Both directions: the delays add up.
  add("slow", toxic(ToxicType::kLatency, Direction::kUpstream, {.latency = 150}));
  EXPECT_GE(pt::echo_round_trip(port, "ping", kIoTimeout).count(), 350);
}

TEST_F(ToxicEffect, ToxicsAddedAndRemovedActOnOpenConnections) {
  const std::uint16_t port = make_proxy("live");
  pt::TcpClient c;
  ASSERT_EQ(c.connect(port), 0);
  auto round_trip = [&](std::string_view msg) {
    const auto start = std::chrono::steady_clock::now();
    EXPECT_TRUE(c.send(msg));
    const auto r = c.read(msg.size(), kIoTimeout);
    EXPECT_EQ(r.data, msg);
    return ms(std::chrono::steady_clock::now() - start);
  };
  EXPECT_LT(round_trip("one"), 150);
  add("live", toxic(ToxicType::kLatency, Direction::kDownstream, {.latency = 300}));
  EXPECT_GE(round_trip("two"), 300);
  ASSERT_FALSE(proxy_.registry().remove_toxic("live", "latency_downstream").has_value());
  EXPECT_LT(round_trip("three"), 150);

  // A latency toxic removed while a chunk waits in it lets the chunk go at once.
  add("live", toxic(ToxicType::kLatency, Direction::kDownstream, {.latency = 5'000}));
  const auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(c.send("four"));
  EXPECT_TRUE(c.read(4, milliseconds(200)).timed_out);
  ASSERT_FALSE(proxy_.registry().remove_toxic("live", "latency_downstream").has_value());
  EXPECT_EQ(c.read(4, kIoTimeout).data, "four");
  EXPECT_LT(ms(std::chrono::steady_clock::now() - start), 2'000);
}

TEST_F(ToxicEffect, BandwidthCapsThroughput) {
  const std::uint16_t port = make_proxy("narrow");
  const std::string payload = random_bytes(100'000, 5);
  {
    pt::TcpClient c;
    ASSERT_EQ(c.connect(port), 0);
    ASSERT_TRUE(c.send(payload));
    const auto r = c.read(payload.size(), kIoTimeout);
    ASSERT_EQ(r.data.size(), payload.size());
    EXPECT_LT(ms(r.elapsed), 500) << "unthrottled baseline";
  }
  add("narrow", toxic(ToxicType::kBandwidth, Direction::kDownstream, {.rate = 100}));  // 100 KB/s
  pt::TcpClient c;
  ASSERT_EQ(c.connect(port), 0);
  const auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(c.send(payload));
  const auto r = c.read(payload.size(), milliseconds(10'000));
  const auto elapsed = ms(std::chrono::steady_clock::now() - start);
  ASSERT_EQ(r.data.size(), payload.size());
  EXPECT_TRUE(r.data == payload);
  EXPECT_GE(elapsed, 800) << "100 KB at 100 KB/s takes about a second";
  EXPECT_LT(elapsed, 3'000);
}

TEST_F(ToxicEffect, TimeoutStallsDataThenCloses) {
  const std::uint16_t port = make_proxy("stall");
  add("stall", toxic(ToxicType::kTimeout, Direction::kDownstream, {.timeout = 300}));
  pt::TcpClient c;
  const auto start = std::chrono::steady_clock::now();
  ASSERT_EQ(c.connect(port), 0);
  ASSERT_TRUE(c.send("hello"));
  const auto r = c.read_to_end(kIoTimeout);
  const auto elapsed = ms(std::chrono::steady_clock::now() - start);
  EXPECT_TRUE(r.data.empty()) << "data is dropped while the toxic is active";
  EXPECT_TRUE(r.eof || r.error != 0);
  EXPECT_FALSE(r.timed_out);
  EXPECT_GE(elapsed, 300);
  EXPECT_LT(elapsed, 3'000);
}

TEST_F(ToxicEffect, TimeoutRestartsWithEveryDroppedChunk) {
  const std::uint16_t port = make_proxy("keep");
  add("keep", toxic(ToxicType::kTimeout, Direction::kDownstream, {.timeout = 300}));
  pt::TcpClient c;
  ASSERT_EQ(c.connect(port), 0);
  for (int i = 0; i < 6; ++i) {  // data every ~100 ms for ~600 ms: twice the timeout
    ASSERT_TRUE(c.send("k"));
    const auto r = c.read(1, milliseconds(100));
    ASSERT_TRUE(r.timed_out) << "dropped, and still open at round " << i;
  }
  const auto start = std::chrono::steady_clock::now();
  const auto r = c.read_to_end(kIoTimeout);  // silence: closes one timeout after the last drop
  EXPECT_FALSE(r.timed_out);
  EXPECT_GE(ms(std::chrono::steady_clock::now() - start), 150);
}

TEST_F(ToxicEffect, TimeoutZeroHoldsUntilRemoved) {
  const std::uint16_t port = make_proxy("hold");
  add("hold", toxic(ToxicType::kTimeout, Direction::kDownstream, {.timeout = 0}));
  pt::TcpClient c;
  ASSERT_EQ(c.connect(port), 0);
  ASSERT_TRUE(c.send("lost"));
  const auto held = c.read(4, milliseconds(400));
  EXPECT_TRUE(held.timed_out);
  EXPECT_TRUE(held.data.empty());
  ASSERT_FALSE(proxy_.registry().remove_toxic("hold", "timeout_downstream").has_value());
  ASSERT_TRUE(c.send("back"));
  EXPECT_EQ(c.read(4, kIoTimeout).data, "back");  // the connection survived; "lost" stays lost
}

TEST_F(ToxicEffect, ResetPeerGivesConnectionReset) {
  const std::uint16_t port = make_proxy("rst");
  add("rst", toxic(ToxicType::kResetPeer, Direction::kDownstream, {.timeout = 0}));
  {
    pt::TcpClient c;
    ASSERT_EQ(c.connect(port), 0);
    ASSERT_TRUE(c.send("x"));
    const auto r = c.read_to_end(kIoTimeout);
    EXPECT_EQ(r.error, ECONNRESET);
    EXPECT_TRUE(r.data.empty());
  }
  ASSERT_FALSE(proxy_.registry().remove_toxic("rst", "reset_peer_downstream").has_value());
  add("rst", toxic(ToxicType::kResetPeer, Direction::kDownstream, {.timeout = 250}));
  pt::TcpClient c;
  ASSERT_EQ(c.connect(port), 0);
  const auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(c.send("y"));
  const auto r = c.read_to_end(kIoTimeout);
  EXPECT_EQ(r.error, ECONNRESET);
  EXPECT_GE(ms(std::chrono::steady_clock::now() - start), 250);
}

TEST_F(ToxicEffect, LimitDataClosesAfterExactlyTheLimit) {
  const std::uint16_t port = make_proxy("cap");
  add("cap", toxic(ToxicType::kLimitData, Direction::kDownstream, {.bytes = 1'000}));
  pt::TcpClient c;
  ASSERT_EQ(c.connect(port), 0);
  const std::string payload = random_bytes(5'000, 9);
  ASSERT_TRUE(c.send(payload));
  const auto r = c.read_to_end(kIoTimeout);
  EXPECT_FALSE(r.timed_out);
  ASSERT_EQ(r.data.size(), 1'000u);
  EXPECT_EQ(r.data, payload.substr(0, 1'000));
}

TEST_F(ToxicEffect, LimitDataUpstreamCutsTheRequest) {
  const std::uint16_t port = make_proxy("req");
  add("req", toxic(ToxicType::kLimitData, Direction::kUpstream, {.bytes = 10}));
  pt::TcpClient c;
  ASSERT_EQ(c.connect(port), 0);
  ASSERT_TRUE(c.send(std::string(100, 'r')));
  const auto r = c.read_to_end(kIoTimeout);
  EXPECT_FALSE(r.timed_out);
  EXPECT_LE(r.data.size(), 10u);
  ASSERT_TRUE(echo_.wait_ended(1, kIoTimeout));
  EXPECT_EQ(echo_.bytes_received(), 10u);
}

TEST_F(ToxicEffect, SlicerSplitsWritesIntoSmallDelayedPieces) {
  const std::uint16_t port = make_proxy("slices");
  add("slices", toxic(ToxicType::kSlicer, Direction::kDownstream,
                      {.delay = 20'000, .average_size = 10, .size_variation = 4}));  // delay µs
  pt::TcpClient c;
  ASSERT_EQ(c.connect(port), 0);
  const std::string payload = random_bytes(100, 11);
  ASSERT_TRUE(c.send(payload));
  const auto r = c.read(payload.size(), kIoTimeout);
  ASSERT_EQ(r.data, payload);
  EXPECT_GE(r.reads, 5u) << "100 bytes in ~10-byte slices 20 ms apart arrive in many reads";
  EXPECT_GE(ms(r.elapsed), 100);
}

TEST_F(ToxicEffect, SlowCloseDelaysTheClose) {
  const std::uint16_t port = make_proxy("linger");
  add("linger", toxic(ToxicType::kSlowClose, Direction::kDownstream, {.delay = 400}));
  pt::TcpClient c;
  ASSERT_EQ(c.connect(port), 0);
  ASSERT_TRUE(c.send("bye"));
  ASSERT_EQ(c.read(3, kIoTimeout).data, "bye");
  const auto start = std::chrono::steady_clock::now();
  c.shutdown_write();  // echo server closes on EOF; the close reaches us through the toxic
  const auto r = c.read_to_end(kIoTimeout);
  EXPECT_TRUE(r.eof);
  EXPECT_GE(ms(std::chrono::steady_clock::now() - start), 400);
}

TEST_F(ToxicEffect, ToxicityZeroNeverAppliesAndOneHalfAppliesToSome) {
  const std::uint16_t port = make_proxy("dice");
  add("dice", toxic(ToxicType::kLatency, Direction::kDownstream, {.latency = 1'000}, 0.0));
  for (int i = 0; i < 8; ++i) EXPECT_LT(pt::echo_round_trip(port, "p", kIoTimeout).count(), 500);

  ASSERT_FALSE(proxy_.registry().remove_toxic("dice", "latency_downstream").has_value());
  add("dice", toxic(ToxicType::kLatency, Direction::kDownstream, {.latency = 100}, 0.5));
  int slow = 0;
  for (int i = 0; i < 24; ++i) {
    const auto rtt = pt::echo_round_trip(port, "p", kIoTimeout);
    ASSERT_GE(rtt.count(), 0);
    if (rtt.count() >= 100) ++slow;
  }
  EXPECT_GT(slow, 2);  // P(≤ 2 of 24) ≈ 2e-5 for a fair coin
  EXPECT_LT(slow, 22);
}

TEST_F(ToxicEffect, DisableRefusesAndClosesConnectionsEnableRestores) {
  const std::uint16_t port = make_proxy("down");
  pt::TcpClient open;
  ASSERT_EQ(open.connect(port), 0);
  ASSERT_TRUE(open.send("a"));
  ASSERT_EQ(open.read(1, kIoTimeout).data, "a");

  const auto disabled =
      pt::api_call(proxy_.port(), verb::post, "/proxies/down", R"({"enabled":false})");
  ASSERT_EQ(disabled.status, 200);
  const auto r = open.read_to_end(kIoTimeout);
  EXPECT_FALSE(r.timed_out) << "the open connection is closed";
  pt::TcpClient refused;
  EXPECT_EQ(refused.connect(port), ECONNREFUSED);

  ASSERT_EQ(pt::api_call(proxy_.port(), verb::post, "/proxies/down", R"({"enabled":true})").status, 200);
  EXPECT_GE(pt::echo_round_trip(port, "again", kIoTimeout).count(), 0);
}

TEST_F(ToxicEffect, UnreachableUpstreamClosesTheClientAndIsCounted) {
  std::uint16_t dead = 0;
  {
    pt::EchoServer gone;
    dead = gone.port();
  }
  auto created = proxy_.registry().create_proxy(
      {"dead", "127.0.0.1:0", "127.0.0.1:" + std::to_string(dead), true});
  ASSERT_TRUE(created.ok());
  pt::TcpClient c;
  ASSERT_EQ(c.connect(parse_host_port(created.value().listen)->port), 0);  // the proxy accepts
  const auto r = c.read_to_end(kIoTimeout);
  EXPECT_FALSE(r.timed_out);
  EXPECT_TRUE(r.data.empty());
  EXPECT_EQ(proxy_.registry().stats()[0].upstream_failures, 1u);
}

TEST(ChaosProxyThreads, ToxicChangesAndDisableReachConnectionsOnEveryDataThread) {
  ChaosProxyOptions options;
  options.data.threads = 3;
  ChaosProxy proxy(options);
  proxy.start();
  pt::EchoServer echo;
  auto created = proxy.registry().create_proxy({"multi", "127.0.0.1:0", echo.address(), true});
  ASSERT_TRUE(created.ok());
  const std::uint16_t port = parse_host_port(created.value().listen)->port;

  std::vector<std::unique_ptr<pt::TcpClient>> clients;
  for (int i = 0; i < 6; ++i) {  // round-robin: two connections on each data thread
    clients.push_back(std::make_unique<pt::TcpClient>());
    ASSERT_EQ(clients.back()->connect(port), 0);
  }
  auto all_round_trips = [&](std::int64_t at_least_ms, std::int64_t below_ms) {
    for (auto& c : clients) {
      const auto start = std::chrono::steady_clock::now();
      ASSERT_TRUE(c->send("m"));
      ASSERT_EQ(c->read(1, kIoTimeout).data, "m");
      const auto took = ms(std::chrono::steady_clock::now() - start);
      EXPECT_GE(took, at_least_ms);
      EXPECT_LT(took, below_ms);
    }
  };
  all_round_trips(0, 150);
  Toxic latency;
  latency.type = ToxicType::kLatency;
  latency.attributes.latency = 200;
  ASSERT_TRUE(proxy.registry().add_toxic("multi", latency).ok());
  all_round_trips(200, 2'000);
  ASSERT_FALSE(proxy.registry().remove_toxic("multi", "latency_downstream").has_value());
  all_round_trips(0, 150);

  ProxyUpdate off;
  off.enabled = false;
  ASSERT_TRUE(proxy.registry().update_proxy("multi", off).ok());
  for (auto& c : clients) EXPECT_FALSE(c->read_to_end(kIoTimeout).timed_out);
  EXPECT_EQ(proxy.registry().stats()[0].connections_accepted, 6u);
}

}  // namespace
}  // namespace lab::mocks::proxy
