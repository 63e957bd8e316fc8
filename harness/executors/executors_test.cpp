// Each executor's schedule, checked exactly: the schedules are pure functions of time.
#include <gtest/gtest.h>

#include "harness/executors/constant_arrival_rate.hpp"
#include "harness/executors/constant_vus.hpp"
#include "harness/executors/ramping_arrival_rate.hpp"
#include "harness/executors/ramping_vus.hpp"

using namespace lab::harness;
using namespace std::chrono_literals;

namespace {
std::int64_t count_arrivals(const Executor& e) {
  std::int64_t n = 0;
  while (e.arrival(n)) ++n;
  return n;
}

std::unique_ptr<Executor> parse(const std::string& yaml, Diagnostics& diag, double scale = 1.0) {
  YAML::Node n = YAML::Load(yaml);
  ExecutorRegistry reg;
  register_builtin_executors(reg);
  Fields f(n, "phases[0]", diag, scale);
  const auto* factory = reg.find(n["executor"].as<std::string>());
  return factory ? (*factory)(f) : nullptr;
}
}  // namespace

TEST(ConstantArrivalRate, SpacesStartsEvenlyFromZero) {
  ConstantArrivalRate e(500, 5s, 10);
  EXPECT_EQ(e.arrival(0), 0ns);
  EXPECT_EQ(e.arrival(1), 2ms);
  EXPECT_EQ(e.arrival(250), 500ms);
  EXPECT_EQ(count_arrivals(e), 2500);
  EXPECT_FALSE(e.arrival(2500));
  EXPECT_EQ(e.max_in_flight(), 10);
}

TEST(ConstantArrivalRate, DoesNotDriftOverLongPhases) {
  ConstantArrivalRate e(3, 1h, 10);  // 1/3 s is not representable exactly
  EXPECT_EQ(e.arrival(3 * 3000), 3000s);
  EXPECT_EQ(count_arrivals(e), 3 * 3600);
}

TEST(RampingArrivalRate, IntegratesALinearRamp) {
  // 0 → 100/s over 10 s: 500 arrivals; arrival i at sqrt(2 i L / r1) = sqrt(i / 5) s.
  RampingArrivalRate e(0, {{10s, 100}}, 50);
  EXPECT_EQ(count_arrivals(e), 500);
  EXPECT_NEAR(e.arrival(5)->count() / 1e9, 1.0, 1e-9);
  EXPECT_NEAR(e.arrival(125)->count() / 1e9, 5.0, 1e-9);
  EXPECT_DOUBLE_EQ(e.rate_at(5s), 50);
}

TEST(RampingArrivalRate, HoldsAndRampsDownAcrossStages) {
  RampingArrivalRate e(10, {{2s, 10}, {2s, 0}}, 50);  // 20 + 10 arrivals
  EXPECT_EQ(count_arrivals(e), 30);
  EXPECT_EQ(e.arrival(10), 1s);
  EXPECT_LT(*e.arrival(29), 4s);
  for (std::int64_t i = 1; i < 30; ++i) EXPECT_GE(*e.arrival(i), *e.arrival(i - 1));
}

TEST(ConstantVus, HoldsTheCountForTheDuration) {
  ConstantVus e(100, 60s);
  EXPECT_EQ(e.vus_at(0s), 100);
  EXPECT_EQ(e.vus_at(59s), 100);
  EXPECT_EQ(e.vus_at(60s), 0);
  EXPECT_EQ(e.max_vus(), 100);
}

TEST(RampingVus, InterpolatesBetweenStages) {
  RampingVus e(0, {{10s, 1000}, {20s, 1000}, {5s, 0}});
  EXPECT_EQ(e.vus_at(0s), 0);
  EXPECT_EQ(e.vus_at(5s), 500);
  EXPECT_EQ(e.vus_at(10s), 1000);
  EXPECT_EQ(e.vus_at(29s), 1000);
  EXPECT_EQ(e.vus_at(32500ms), 500);
  EXPECT_EQ(e.vus_at(35s), 0);
  EXPECT_EQ(e.max_vus(), 1000);
  EXPECT_EQ(e.duration(), 35s);
}

TEST(ExecutorYaml, ScalesDurationsButNotRates) {
  Diagnostics diag("t.yaml");
  auto e = parse("{executor: constant-arrival-rate, rate: 100/s, duration: 10m}", diag, 0.01);
  ASSERT_TRUE(diag.ok()) << diag.format();
  EXPECT_EQ(e->duration(), 6s);
  EXPECT_EQ(count_arrivals(*e), 600);
}

TEST(ExecutorYaml, ReportsEveryBadFieldWithItsLine) {
  Diagnostics diag("t.yaml");
  auto e = parse("executor: ramping-vus\nstages:\n  - {target: x, duration: 5s}\n  - {target: 3, duration: soon}\nbogus: 1\n", diag);
  EXPECT_EQ(e, nullptr);
  ASSERT_EQ(diag.items().size(), 3u) << diag.format();
  const std::string text = diag.format();
  EXPECT_NE(text.find("t.yaml:3:"), std::string::npos) << text;
  EXPECT_NE(text.find("phases[0].stages[0].target"), std::string::npos) << text;
  EXPECT_NE(text.find("phases[0].stages[1].duration: 'soon' is not a duration"), std::string::npos) << text;
  EXPECT_NE(text.find("phases[0].bogus: unknown field"), std::string::npos) << text;
}
