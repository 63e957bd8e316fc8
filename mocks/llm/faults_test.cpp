#include "mocks/llm/faults.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <gtest/gtest.h>

namespace lab::mocks::llm {
namespace {

namespace json = boost::json;

FaultRule rule_of(std::string_view text) {
  auto parsed = parse_fault_rule(json::parse(text));
  if (auto* errs = std::get_if<std::vector<std::string>>(&parsed)) {
    ADD_FAILURE() << text << ": " << errs->front();
    return {};
  }
  return std::get<FaultRule>(parsed);
}

std::vector<std::string> errors_of(std::string_view text) {
  auto parsed = parse_fault_rule(json::parse(text));
  auto* errs = std::get_if<std::vector<std::string>>(&parsed);
  return errs ? *errs : std::vector<std::string>{};
}

TEST(FaultRule, ParsesEveryKindFromTheIssue) {
  EXPECT_EQ(rule_of(R"({"error_rate": 1.0, "status": 503})").status, 503);
  EXPECT_EQ(rule_of(R"({"latency_multiplier": 10})").latency_multiplier, 10.0);
  EXPECT_EQ(rule_of(R"({"hang_rate": 0.1})").hang_rate, 0.1);
  const FaultRule d = rule_of(R"({"disconnect_after_tokens": 5, "disconnect_rate": 0.5})");
  EXPECT_EQ(d.disconnect_after_tokens, 5);
  EXPECT_EQ(d.disconnect_rate, 0.5);
  EXPECT_EQ(rule_of(R"({"disconnect_after_tokens": 5})").disconnect_rate, 1.0);
  EXPECT_EQ(rule_of(R"({"fail_first": 3})").fail_first, 3);
  EXPECT_EQ(rule_of(R"({"malformed_rate": 0.01})").malformed_rate, 0.01);
  EXPECT_EQ(rule_of(R"({"stall_after_tokens": 2})").stall_rate, 1.0);
  const FaultRule timed = rule_of(R"({"error_rate": 1, "duration": "30s", "delay": 2.5, "api": "anthropic"})");
  EXPECT_EQ(timed.duration, Seconds(30));
  EXPECT_EQ(timed.delay, Millis(2500));
  EXPECT_EQ(timed.api, Api::kAnthropic);
}

TEST(FaultRule, ReportsEveryProblemAtOnce) {
  const auto errors = errors_of(R"({"error_rate": 2, "status": 200, "colour": "red", "duration": -1})");
  ASSERT_EQ(errors.size(), 4u);
  EXPECT_NE(errors[0].find("error_rate"), std::string::npos);
  EXPECT_NE(errors[1].find("status"), std::string::npos);
  EXPECT_NE(errors[2].find("colour: unknown field"), std::string::npos);
  EXPECT_NE(errors[3].find("duration"), std::string::npos);
  EXPECT_EQ(errors_of("{}").size(), 1u);  // no effect
  EXPECT_EQ(errors_of("[1]").size(), 1u);
}

TEST(FaultRule, RoundTripsThroughJson) {
  const FaultRule r = rule_of(R"({"error_rate": 0.5, "status": 502, "duration": 10, "stall_after_tokens": 4, "stall_rate": 0.2})");
  const FaultRule back = rule_of(json::serialize(fault_rule_to_json(r)));
  EXPECT_EQ(back.error_rate, 0.5);
  EXPECT_EQ(back.status, 502);
  EXPECT_EQ(back.duration, Seconds(10));
  EXPECT_EQ(back.stall_after_tokens, 4);
  EXPECT_EQ(back.stall_rate, 0.2);
}

TEST(ParseDuration, AcceptsSecondsAndUnits) {
  EXPECT_EQ(parse_duration_text("250ms"), Millis(250));
  EXPECT_EQ(parse_duration_text("2m"), Seconds(120));
  EXPECT_EQ(parse_duration_text("1.5"), Millis(1500));
  EXPECT_EQ(parse_duration_text("1h"), Seconds(3600));
  EXPECT_FALSE(parse_duration_text("soon"));
  EXPECT_FALSE(parse_duration_text("5 parsecs"));
}

TEST(FaultInjector, NoRulesNoFaults) {
  SimulatedClock clock;
  FaultInjector injector(clock, 1);
  EXPECT_FALSE(injector.decide(Api::kOpenAi).any());
}

TEST(FaultInjector, FailFirstFailsExactlyTheFirstN) {
  SimulatedClock clock;
  FaultInjector injector(clock, 1);
  injector.add(rule_of(R"({"fail_first": 3, "status": 429})"));
  for (int i = 0; i < 3; ++i) EXPECT_EQ(injector.decide(Api::kOpenAi).error_status, 429);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(injector.decide(Api::kOpenAi).error_status, 0);
}

TEST(FaultInjector, ErrorRateHitsTheRateAndIsRepeatableBySeed) {
  auto run = [](std::uint64_t seed) {
    SimulatedClock clock;
    FaultInjector injector(clock, seed);
    injector.add(rule_of(R"({"error_rate": 0.3})"));
    std::vector<bool> outcome;
    for (int i = 0; i < 2000; ++i) outcome.push_back(injector.decide(Api::kOpenAi).error_status == 503);
    return outcome;
  };
  const auto a = run(7);
  const auto b = run(7);
  const auto c = run(8);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  const auto errors = std::count(a.begin(), a.end(), true);
  EXPECT_GT(errors, 520);  // 600 expected; ±3.5σ
  EXPECT_LT(errors, 680);
}

TEST(FaultInjector, EveryKindReachesTheDecision) {
  SimulatedClock clock;
  FaultInjector injector(clock, 3);
  injector.add(rule_of(R"({"hang_rate": 1})"));
  injector.add(rule_of(R"({"disconnect_after_tokens": 4})"));
  injector.add(rule_of(R"({"stall_after_tokens": 9})"));
  injector.add(rule_of(R"({"malformed_rate": 1})"));
  injector.add(rule_of(R"({"latency_multiplier": 10})"));
  injector.add(rule_of(R"({"latency_multiplier": 2})"));
  const FaultDecision d = injector.decide(Api::kAnthropic);
  EXPECT_TRUE(d.hang);
  EXPECT_EQ(d.disconnect_after, 4);
  EXPECT_EQ(d.stall_after, 9);
  EXPECT_GE(d.malformed_at, 0.0);
  EXPECT_LT(d.malformed_at, 1.0);
  EXPECT_EQ(d.latency_multiplier, 20.0);
}

TEST(FaultInjector, DelayAndDurationFollowTheClock) {
  SimulatedClock clock;
  FaultInjector injector(clock, 1);
  injector.add(rule_of(R"({"error_rate": 1, "delay": 30, "duration": 30})"));
  EXPECT_EQ(injector.decide(Api::kOpenAi).error_status, 0);  // pending
  EXPECT_EQ(injector.to_json().at("faults").at(0).at("state"), "pending");
  clock.advance(Seconds(30));
  EXPECT_EQ(injector.decide(Api::kOpenAi).error_status, 503);  // the outage window
  EXPECT_EQ(injector.to_json().at("faults").at(0).at("state"), "active");
  EXPECT_EQ(injector.to_json().at("faults").at(0).at("matched"), 1);
  clock.advance(Seconds(29));
  EXPECT_EQ(injector.decide(Api::kOpenAi).error_status, 503);
  clock.advance(Seconds(1));
  EXPECT_EQ(injector.decide(Api::kOpenAi).error_status, 0);  // over
  EXPECT_TRUE(injector.to_json().at("faults").as_array().empty());
  EXPECT_EQ(injector.size(), 0u);
}

TEST(FaultInjector, ApiFilterAndRemoveAndClear) {
  SimulatedClock clock;
  FaultInjector injector(clock, 1);
  const std::uint64_t id = injector.add(rule_of(R"({"error_rate": 1, "api": "openai"})"));
  EXPECT_EQ(injector.decide(Api::kAnthropic).error_status, 0);
  EXPECT_EQ(injector.decide(Api::kOpenAi).error_status, 503);
  EXPECT_TRUE(injector.remove(id));
  EXPECT_FALSE(injector.remove(id));
  EXPECT_EQ(injector.decide(Api::kOpenAi).error_status, 0);
  injector.add(rule_of(R"({"error_rate": 1})"));
  injector.clear();
  EXPECT_FALSE(injector.decide(Api::kOpenAi).any());
}

TEST(FaultInjector, HoldsABoundedNumberOfRules) {
  SimulatedClock clock;
  FaultInjector injector(clock, 1);
  for (std::size_t i = 0; i < FaultInjector::kMaxRules; ++i) {
    ASSERT_NE(injector.add(rule_of(R"({"latency_multiplier": 1.01})")), 0u);
  }
  EXPECT_EQ(injector.add(rule_of(R"({"error_rate": 1})")), 0u);
  injector.clear();
  EXPECT_NE(injector.add(rule_of(R"({"error_rate": 1})")), 0u);
}

TEST(FaultHeader, ParsesEveryKindAndRejectsNonsense) {
  FaultDecision d;
  EXPECT_FALSE(parse_fault_header("error=502, disconnect=3,latency=2.5, malformed", d));
  EXPECT_EQ(d.error_status, 502);
  EXPECT_EQ(d.disconnect_after, 3);
  EXPECT_EQ(d.latency_multiplier, 2.5);
  EXPECT_GE(d.malformed_at, 0.0);
  FaultDecision h;
  EXPECT_FALSE(parse_fault_header("hang", h));
  EXPECT_TRUE(h.hang);
  FaultDecision e;
  EXPECT_FALSE(parse_fault_header("error", e));
  EXPECT_EQ(e.error_status, 503);
  FaultDecision bad;
  EXPECT_TRUE(parse_fault_header("error=200", bad));
  EXPECT_TRUE(parse_fault_header("explode", bad));
  EXPECT_TRUE(parse_fault_header("latency=fast", bad));
}

}  // namespace
}  // namespace lab::mocks::llm
