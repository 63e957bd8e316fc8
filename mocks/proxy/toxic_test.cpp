#include "mocks/proxy/toxic.hpp"

#include <gtest/gtest.h>

#include <numeric>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "mocks/proxy/address.hpp"

namespace lab::mocks::proxy {
namespace {

namespace bj = boost::json;

TEST(Toxic, NamesRoundTripForEveryTypeAndDirection) {
  for (const char* name :
       {"latency", "bandwidth", "slow_close", "timeout", "reset_peer", "slicer", "limit_data"}) {
    const auto type = parse_toxic_type(name);
    ASSERT_TRUE(type.has_value()) << name;
    EXPECT_EQ(to_string(*type), name);
  }
  EXPECT_FALSE(parse_toxic_type("down").has_value());  // "down" is enabled=false, not a toxic
  EXPECT_FALSE(parse_toxic_type("").has_value());
  EXPECT_EQ(parse_direction("upstream"), Direction::kUpstream);
  EXPECT_EQ(parse_direction("downstream"), Direction::kDownstream);
  EXPECT_FALSE(parse_direction("sideways").has_value());
}

TEST(Toxic, JsonHasToxiproxysShapeAndKeyOrder) {
  Toxic t;
  t.name = "latency_downstream";
  t.type = ToxicType::kLatency;
  t.attributes.latency = 100;
  t.attributes.jitter = 10;
  t.attributes.rate = 7;  // not a latency attribute: must not appear
  EXPECT_EQ(bj::serialize(to_json(t)),
            R"({"attributes":{"latency":100,"jitter":10},"name":"latency_downstream",)"
            R"("type":"latency","stream":"downstream","toxicity":1})");

  t.type = ToxicType::kSlicer;
  t.stream = Direction::kUpstream;
  t.toxicity = 0.5;
  const bj::value v = bj::parse(bj::serialize(to_json(t)));
  EXPECT_EQ(v.at("stream").as_string(), "upstream");
  EXPECT_DOUBLE_EQ(v.at("toxicity").to_number<double>(), 0.5);
  const auto& attrs = v.at("attributes").as_object();
  EXPECT_EQ(attrs.size(), 3u);
  EXPECT_TRUE(attrs.contains("average_size") && attrs.contains("size_variation") &&
              attrs.contains("delay"));
}

TEST(Toxic, ReadAttributesMergesOverExistingValuesAndRejectsFractions) {
  ToxicAttributes a;
  a.latency = 100;
  a.jitter = 5;
  EXPECT_EQ(read_attributes(ToxicType::kLatency, bj::parse(R"({"jitter":20,"rate":9})").as_object(), a), "");
  EXPECT_EQ(a.latency, 100);  // untouched
  EXPECT_EQ(a.jitter, 20);
  EXPECT_EQ(a.rate, 0);  // not a latency attribute: ignored
  EXPECT_EQ(read_attributes(ToxicType::kLatency, bj::parse(R"({"latency":250.0})").as_object(), a), "");
  EXPECT_EQ(a.latency, 250);
  EXPECT_NE(read_attributes(ToxicType::kLatency, bj::parse(R"({"latency":1.5})").as_object(), a), "");
  EXPECT_NE(read_attributes(ToxicType::kBandwidth, bj::parse(R"({"rate":"fast"})").as_object(), a), "");
}

TEST(Toxic, ValidateRejectsNegativesAndAnImpossibleSlicer) {
  Toxic t;
  t.type = ToxicType::kTimeout;
  EXPECT_EQ(validate(t), "");
  t.attributes.timeout = -1;
  EXPECT_NE(validate(t), "");

  Toxic s;
  s.type = ToxicType::kSlicer;
  s.attributes.average_size = 0;
  EXPECT_NE(validate(s), "");
  s.attributes.average_size = 10;
  s.attributes.size_variation = 10;
  EXPECT_NE(validate(s), "");
  s.attributes.size_variation = 9;
  EXPECT_EQ(validate(s), "");
}

TEST(Slicer, SlicesSumToTheInputAndStayNearTheAverage) {
  std::mt19937_64 rng(7);
  const auto sizes = slice_sizes(10'000, 100, 20, rng);
  EXPECT_EQ(std::accumulate(sizes.begin(), sizes.end(), std::size_t{0}), 10'000u);
  for (const std::size_t s : sizes) {
    EXPECT_GE(s, 1u);
    EXPECT_LE(s, 120u);  // a slice stops splitting once within the variation of the average
  }
  const double mean = 10'000.0 / static_cast<double>(sizes.size());
  EXPECT_GT(mean, 50.0);
  EXPECT_LE(mean, 120.0);
  EXPECT_EQ(slice_sizes(50, 100, 20, rng), std::vector<std::size_t>{50});  // small: one slice
  EXPECT_TRUE(slice_sizes(0, 100, 20, rng).empty());
}

TEST(Slicer, SameSeedSameSlices) {
  std::mt19937_64 a(42), b(42);
  EXPECT_EQ(slice_sizes(5'000, 64, 30, a), slice_sizes(5'000, 64, 30, b));
}

TEST(Latency, DrawsStayWithinTheJitterAndCenterOnTheLatency) {
  std::mt19937_64 rng(3);
  ToxicAttributes a;
  a.latency = 100;
  a.jitter = 40;
  double sum = 0;
  for (int i = 0; i < 2000; ++i) {
    const std::int64_t d = latency_draw_ms(a, rng);
    ASSERT_GE(d, 60);
    ASSERT_LT(d, 140);
    sum += static_cast<double>(d);
  }
  EXPECT_NEAR(sum / 2000.0, 100.0, 4.0);
  a.jitter = 0;
  EXPECT_EQ(latency_draw_ms(a, rng), 100);
  a.latency = 5;
  a.jitter = 50;  // may go below zero: clamped
  for (int i = 0; i < 100; ++i) EXPECT_GE(latency_draw_ms(a, rng), 0);
}

TEST(Address, ParsesToxiproxyListenAndUpstreamForms) {
  auto hp = parse_host_port("127.0.0.1:8474");
  ASSERT_TRUE(hp);
  EXPECT_EQ(hp->host, "127.0.0.1");
  EXPECT_EQ(hp->port, 8474);
  hp = parse_host_port("[::]:18080");
  ASSERT_TRUE(hp);
  EXPECT_EQ(hp->host, "::");
  hp = parse_host_port(":0");
  ASSERT_TRUE(hp);
  EXPECT_EQ(hp->host, "");
  EXPECT_EQ(hp->port, 0);
  std::string why;
  EXPECT_FALSE(parse_host_port("localhost", &why));
  EXPECT_NE(why.find("missing port"), std::string::npos);
  EXPECT_FALSE(parse_host_port("host:99999"));
  EXPECT_FALSE(parse_host_port("::1:80"));
}

}  // namespace
}  // namespace lab::mocks::proxy
