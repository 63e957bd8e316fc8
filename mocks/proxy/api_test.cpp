// The Toxiproxy HTTP API: paths, JSON shapes, status codes and error bodies, driven over real
// HTTP against an in-process ChaosProxy, with an echo server as the upstream.

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "mocks/proxy/api.hpp"
#include "mocks/proxy/chaos_proxy.hpp"
#include "mocks/proxy/testing/api_client.hpp"
#include "mocks/proxy/testing/echo_server.hpp"
#include "mocks/proxy/testing/tcp_client.hpp"

namespace lab::mocks::proxy {
namespace {

namespace bj = boost::json;
namespace pt = lab::mocks::proxy::testing;
using boost::beast::http::verb;
using std::chrono::milliseconds;

constexpr milliseconds kIoTimeout{3'000};

class ChaosProxyApi : public ::testing::Test {
 protected:
  void SetUp() override { proxy_.start(); }

  pt::ApiResponse call(verb method, std::string_view target, std::string_view body = {}) {
    return pt::api_call(proxy_.port(), method, target, body);
  }
  pt::ApiResponse create(const std::string& name, const std::string& upstream) {
    return call(verb::post, "/proxies",
                R"({"name":")" + name + R"(","listen":"127.0.0.1:0","upstream":")" + upstream + R"("})");
  }
  /// Whether bytes sent through `port` come back.
  static bool echoes(std::uint16_t port) {
    return pt::echo_round_trip(port, "ping", kIoTimeout).count() >= 0;
  }
  static bool refused(std::uint16_t port) {
    pt::TcpClient c;
    return c.connect(port) == ECONNREFUSED;
  }
  static void expect_error(const pt::ApiResponse& r, int status, std::string_view message) {
    EXPECT_EQ(r.status, status) << r.body;
    ASSERT_TRUE(r.json.is_object()) << r.body;
    EXPECT_EQ(r.json.at("status").to_number<int>(), status);
    EXPECT_EQ(r.json.at("error").as_string(), message) << r.body;
  }

  ChaosProxy proxy_;
  pt::EchoServer echo_;
};

TEST_F(ChaosProxyApi, CreateShowListDeleteWithToxiproxysShapes) {
  const auto created = create("redis", echo_.address());
  ASSERT_EQ(created.status, 201) << created.body;
  const auto& p = created.json.as_object();
  std::vector<std::string_view> keys;
  for (const auto& kv : p) keys.push_back(kv.key());
  EXPECT_EQ(keys, (std::vector<std::string_view>{"name", "listen", "upstream", "enabled", "toxics"}));
  EXPECT_EQ(p.at("name").as_string(), "redis");
  EXPECT_EQ(p.at("upstream").as_string(), echo_.address());
  EXPECT_TRUE(p.at("enabled").as_bool());
  EXPECT_TRUE(p.at("toxics").as_array().empty());
  const std::uint16_t port = pt::listen_port(created.json);
  ASSERT_NE(port, 0) << "listen must report the bound port, not :0";
  EXPECT_EQ(p.at("listen").as_string(), "127.0.0.1:" + std::to_string(port));
  EXPECT_TRUE(echoes(port));

  const auto list = call(verb::get, "/proxies");
  EXPECT_EQ(list.status, 200);
  EXPECT_EQ(list.json, bj::value({{"redis", created.json}}));
  const auto shown = call(verb::get, "/proxies/redis");
  EXPECT_EQ(shown.status, 200);
  EXPECT_EQ(shown.json, created.json);

  const auto deleted = call(verb::delete_, "/proxies/redis");
  EXPECT_EQ(deleted.status, 204);
  EXPECT_TRUE(deleted.body.empty());
  expect_error(call(verb::get, "/proxies/redis"), 404, "proxy not found");
  EXPECT_TRUE(refused(port));
  EXPECT_EQ(call(verb::get, "/proxies").json, bj::value(bj::object()));
}

TEST_F(ChaosProxyApi, ErrorsCarryToxiproxysStatusCodesAndMessages) {
  ASSERT_EQ(create("pg", echo_.address()).status, 201);
  expect_error(create("pg", echo_.address()), 409, "proxy already exists");
  expect_error(call(verb::post, "/proxies", R"({"name":"x"})"), 400, "missing required field: upstream");
  expect_error(call(verb::post, "/proxies", R"({"upstream":"127.0.0.1:1"})"), 400,
               "missing required field: name");
  const auto malformed = call(verb::post, "/proxies", R"({"name":)");
  EXPECT_EQ(malformed.status, 400);
  EXPECT_EQ(malformed.json.at("error").as_string().subview().substr(0, 16), "bad request body");
  const auto taken = call(verb::post, "/proxies",
                          R"({"name":"y","upstream":"127.0.0.1:1","listen":")" + echo_.address() + R"("})");
  EXPECT_EQ(taken.status, 500) << taken.body;
  EXPECT_NE(taken.body.find("listen tcp"), std::string::npos);
  expect_error(call(verb::get, "/proxies/nope"), 404, "proxy not found");
  expect_error(call(verb::get, "/proxies/nope/toxics"), 404, "proxy not found");
  expect_error(call(verb::post, "/proxies/nope/toxics", R"({"type":"latency"})"), 404, "proxy not found");

  expect_error(call(verb::post, "/proxies/pg/toxics", R"({"type":"lag"})"), 400, "invalid toxic type");
  expect_error(call(verb::post, "/proxies/pg/toxics", R"({"type":"latency","stream":"both"})"), 400,
               "stream was invalid, can be either upstream or downstream");
  const auto fractional =
      call(verb::post, "/proxies/pg/toxics", R"({"type":"latency","attributes":{"latency":1.5}})");
  EXPECT_EQ(fractional.status, 400);
  EXPECT_NE(fractional.body.find("bad request body"), std::string::npos);
  EXPECT_EQ(call(verb::post, "/proxies/pg/toxics",
                 R"({"type":"slicer","attributes":{"average_size":10,"size_variation":10}})").status,
            400);
  ASSERT_EQ(call(verb::post, "/proxies/pg/toxics", R"({"type":"timeout"})").status, 200);
  expect_error(call(verb::post, "/proxies/pg/toxics", R"({"type":"timeout"})"), 409,
               "toxic already exists");
  expect_error(call(verb::get, "/proxies/pg/toxics/nope"), 404, "toxic not found");
  expect_error(call(verb::delete_, "/proxies/pg/toxics/nope"), 404, "toxic not found");
  expect_error(call(verb::post, "/proxies/pg/toxics/nope", R"({"toxicity":0})"), 404, "toxic not found");

  EXPECT_EQ(call(verb::get, "/nothing").status, 404);
  EXPECT_EQ(call(verb::put, "/proxies").status, 405);
}

TEST_F(ChaosProxyApi, ToxicsRoundTripWithDefaultsPartialUpdatesAndChainOrder) {
  ASSERT_EQ(create("api", echo_.address()).status, 201);
  const auto latency =
      call(verb::post, "/proxies/api/toxics", R"({"type":"latency","attributes":{"latency":100}})");
  ASSERT_EQ(latency.status, 200) << latency.body;
  EXPECT_EQ(bj::serialize(latency.json),
            R"({"attributes":{"latency":100,"jitter":0},"name":"latency_downstream",)"
            R"("type":"latency","stream":"downstream","toxicity":1})");
  const auto cut = call(verb::post, "/proxies/api/toxics",
                        R"({"name":"cut","type":"limit_data","stream":"upstream","toxicity":0.5,)"
                        R"("attributes":{"bytes":10}})");
  ASSERT_EQ(cut.status, 200) << cut.body;
  EXPECT_DOUBLE_EQ(cut.json.at("toxicity").to_number<double>(), 0.5);

  const auto list = call(verb::get, "/proxies/api/toxics");
  ASSERT_EQ(list.status, 200);
  ASSERT_EQ(list.json.as_array().size(), 2u);
  EXPECT_EQ(list.json.as_array()[0], cut.json);  // upstream chain first, as Toxiproxy lists
  EXPECT_EQ(list.json.as_array()[1], latency.json);
  EXPECT_EQ(call(verb::get, "/proxies/api").json.at("toxics"), list.json);
  EXPECT_EQ(call(verb::get, "/proxies/api/toxics/cut").json, cut.json);

  const auto jitter = call(verb::post, "/proxies/api/toxics/latency_downstream",
                           R"({"attributes":{"jitter":5}})");
  ASSERT_EQ(jitter.status, 200) << jitter.body;
  EXPECT_EQ(jitter.json.at("attributes"), bj::parse(R"({"latency":100,"jitter":5})"));
  EXPECT_EQ(jitter.json.at("toxicity").to_number<double>(), 1.0);
  const auto patched = call(verb::patch, "/proxies/api/toxics/latency_downstream", R"({"toxicity":0})");
  ASSERT_EQ(patched.status, 200);
  EXPECT_EQ(patched.json.at("toxicity").to_number<double>(), 0.0);
  EXPECT_EQ(patched.json.at("attributes").at("jitter").to_number<int>(), 5);

  EXPECT_EQ(call(verb::delete_, "/proxies/api/toxics/latency_downstream").status, 204);
  EXPECT_EQ(call(verb::get, "/proxies/api/toxics/latency_downstream").status, 404);
  EXPECT_EQ(call(verb::get, "/proxies/api/toxics").json.as_array().size(), 1u);
}

TEST_F(ChaosProxyApi, UpdateDisablesEnablesOnTheSamePortAndMovesUpstream) {
  const auto created = create("svc", echo_.address());
  const std::uint16_t port = pt::listen_port(created.json);
  ASSERT_TRUE(echoes(port));

  const auto down = call(verb::post, "/proxies/svc", R"({"enabled":false})");
  ASSERT_EQ(down.status, 200) << down.body;
  EXPECT_FALSE(down.json.at("enabled").as_bool());
  EXPECT_TRUE(refused(port));
  const auto up = call(verb::post, "/proxies/svc", R"({"enabled":true})");
  ASSERT_EQ(up.status, 200);
  EXPECT_EQ(pt::listen_port(up.json), port);
  EXPECT_TRUE(echoes(port));

  pt::EchoServer other;
  const auto moved = call(verb::patch, "/proxies/svc", R"({"upstream":")" + other.address() + R"("})");
  ASSERT_EQ(moved.status, 200) << moved.body;
  EXPECT_EQ(moved.json.at("upstream").as_string(), other.address());
  EXPECT_TRUE(moved.json.at("enabled").as_bool());
  EXPECT_TRUE(echoes(port));
  EXPECT_EQ(other.connections_accepted(), 1u);
}

TEST_F(ChaosProxyApi, PopulateCreatesKeepsMatchingProxiesAndReplacesChangedOnes) {
  const std::string body = R"([{"name":"a","listen":"127.0.0.1:0","upstream":")" + echo_.address() +
                           R"("},{"name":"b","upstream":")" + echo_.address() + R"(","enabled":false}])";
  const auto first = call(verb::post, "/populate", body);
  ASSERT_EQ(first.status, 201) << first.body;
  const auto& proxies = first.json.at("proxies").as_array();
  ASSERT_EQ(proxies.size(), 2u);
  EXPECT_EQ(proxies[0].at("name").as_string(), "a");
  EXPECT_TRUE(proxies[0].at("enabled").as_bool());
  EXPECT_FALSE(proxies[1].at("enabled").as_bool());
  const std::uint16_t port = pt::listen_port(proxies[0]);
  ASSERT_NE(port, 0);
  EXPECT_TRUE(echoes(port));

  ASSERT_EQ(call(verb::post, "/proxies/a/toxics", R"({"type":"latency"})").status, 200);
  const auto again = call(verb::post, "/populate", body);  // same config: untouched
  ASSERT_EQ(again.status, 201);
  EXPECT_EQ(pt::listen_port(again.json.at("proxies").as_array()[0]), port);
  EXPECT_EQ(again.json.at("proxies").as_array()[0].at("toxics").as_array().size(), 1u);

  pt::EchoServer other;
  const auto replaced = call(verb::post, "/populate",
                             R"([{"name":"a","listen":"127.0.0.1:0","upstream":")" + other.address() + R"("}])");
  ASSERT_EQ(replaced.status, 201) << replaced.body;
  EXPECT_TRUE(replaced.json.at("proxies").as_array()[0].at("toxics").as_array().empty());
  EXPECT_TRUE(echoes(pt::listen_port(replaced.json.at("proxies").as_array()[0])));
  EXPECT_EQ(other.connections_accepted(), 1u);

  const auto bad = call(verb::post, "/populate", R"([{"name":"x"}])");
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(bad.json, bj::parse(R"({"error":"missing required field: upstream at proxy 1",)"
                                R"("status":400,"proxies":null})"));
  EXPECT_EQ(call(verb::get, "/proxies/x").status, 404);
  EXPECT_EQ(call(verb::post, "/populate", R"({"name":"x"})").status, 400);
}

TEST_F(ChaosProxyApi, ResetEnablesEveryProxyAndRemovesEveryToxic) {
  const std::uint16_t a = pt::listen_port(create("a", echo_.address()).json);
  const std::uint16_t b = pt::listen_port(create("b", echo_.address()).json);
  ASSERT_EQ(call(verb::post, "/proxies/a/toxics", R"({"type":"timeout","attributes":{"timeout":0}})").status, 200);
  ASSERT_EQ(call(verb::post, "/proxies/b", R"({"enabled":false})").status, 200);
  EXPECT_LT(pt::echo_round_trip(a, "held", milliseconds(300)).count(), 0);  // timeout 0 holds
  EXPECT_TRUE(refused(b));

  const auto reset = call(verb::post, "/reset");
  EXPECT_EQ(reset.status, 204);
  EXPECT_TRUE(echoes(a));
  EXPECT_TRUE(echoes(b));
  EXPECT_TRUE(call(verb::get, "/proxies/a/toxics").json.as_array().empty());
  EXPECT_TRUE(call(verb::get, "/proxies/b").json.at("enabled").as_bool());
}

TEST_F(ChaosProxyApi, VersionMetricsAndTheBrowserBlock) {
  const auto version = call(verb::get, "/version");
  EXPECT_EQ(version.status, 200);
  EXPECT_EQ(version.json.at("version").as_string(), kVersion);
  const auto browser =
      pt::api_call(proxy_.port(), verb::get, "/proxies", {}, "Mozilla/5.0 (X11; Linux x86_64)");
  EXPECT_EQ(browser.status, 403);

  const std::uint16_t port = pt::listen_port(create("m", echo_.address()).json);
  ASSERT_TRUE(echoes(port));  // 4 bytes each way
  const auto metrics = call(verb::get, "/metrics");
  EXPECT_EQ(metrics.status, 200);
  EXPECT_NE(metrics.body.find("toxiproxy_proxy_received_bytes_total{direction=\"upstream\",listener=\"127.0.0.1:" +
                              std::to_string(port) + "\",proxy=\"m\",upstream=\"" + echo_.address() + "\"} 4"),
            std::string::npos)
      << metrics.body;
  EXPECT_NE(metrics.body.find("agentlab_chaos_proxy_connections_accepted_total{proxy=\"m\"} 1"),
            std::string::npos);
}

}  // namespace
}  // namespace lab::mocks::proxy
