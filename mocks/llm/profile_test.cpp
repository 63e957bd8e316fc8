#include "mocks/llm/profile.hpp"

#include <gtest/gtest.h>

namespace lab::mocks::llm {
namespace {

TEST(Profile, DefaultsModelASmallModelOnOneGpu) {
  const Profile p;
  EXPECT_EQ(p.latency.itl_ms.mean, 12.0);
  EXPECT_EQ(p.latency.ttft_ms.mean, 30.0);
  EXPECT_EQ(p.latency.prefill_ms_per_token, 0.2);
  EXPECT_EQ(p.load.max_num_seqs, 256);
  EXPECT_EQ(p.load.time_factor_under_load, 2.0);
}

TEST(Profile, ParsesEverySection) {
  auto parsed = parse_profile(R"(
models: [small, large]
accept_any_model: false
latency:
  ttft: {dist: lognormal, mean_ms: 80, stddev_ms: 8, min_ms: 10}
  prefill_ms_per_token: 0.3
  itl: 20
output:
  tokens: {dist: normal, mean: 100, jitter: 0.2, max: 300}
  use_max_tokens: true
load: {max_num_seqs: 8, max_waiting: 16, time_factor_under_load: 3, retry_after_s: 2}
rate_limits:
  default: {rpm: 100}
  keys:
    sk-small: {rpm: 5, tpm: 1000}
tools: {call_probability: 0.5}
limits: {max_body_bytes: 65536, max_hang_s: 30}
faults:
  - {error_rate: 0.1, status: 502}
  - {latency_multiplier: 3, duration: 10s}
)", "p.yaml");
  ASSERT_TRUE(std::holds_alternative<Profile>(parsed)) << std::get<std::vector<std::string>>(parsed).front();
  const Profile& p = std::get<Profile>(parsed);
  EXPECT_EQ(p.models, (std::vector<std::string>{"small", "large"}));
  EXPECT_FALSE(p.accept_any_model);
  EXPECT_EQ(p.latency.ttft_ms.kind, DistKind::kLogNormal);
  EXPECT_EQ(p.latency.ttft_ms.mean, 80.0);
  EXPECT_EQ(p.latency.ttft_ms.min, 10.0);
  EXPECT_EQ(p.latency.itl_ms.kind, DistKind::kConstant);
  EXPECT_EQ(p.latency.itl_ms.mean, 20.0);
  EXPECT_EQ(p.output.tokens.kind, DistKind::kNormal);
  EXPECT_DOUBLE_EQ(p.output.tokens.stddev, 20.0);
  EXPECT_TRUE(p.output.use_max_tokens);
  EXPECT_EQ(p.load.max_num_seqs, 8);
  EXPECT_EQ(p.load.max_waiting, 16);
  EXPECT_EQ(p.load.retry_after, Seconds(2));
  EXPECT_EQ(p.default_rate_limit.rpm, 100);
  EXPECT_EQ(p.key_rate_limits.at("sk-small").tpm, 1000);
  EXPECT_EQ(p.tool_call_probability, 0.5);
  EXPECT_EQ(p.max_body_bytes, 65536u);
  EXPECT_EQ(p.max_hang, Seconds(30));
  ASSERT_EQ(p.faults.size(), 2u);
  EXPECT_EQ(p.faults[0].status, 502);
  EXPECT_EQ(p.faults[1].duration, Seconds(10));
}

TEST(Profile, ReportsEveryProblemWithFileAndLine) {
  auto parsed = parse_profile(R"(latency:
  itl: {dist: gamma, mean_ms: 10}
  ttft: -5
load:
  max_num_seqs: 0
colour: red
faults:
  - {error_rate: 7}
)", "bad.yaml");
  ASSERT_TRUE(std::holds_alternative<std::vector<std::string>>(parsed));
  const auto& errors = std::get<std::vector<std::string>>(parsed);
  ASSERT_EQ(errors.size(), 5u);
  EXPECT_EQ(errors[0].substr(0, 31), "bad.yaml:2: latency.itl.dist: e");
  EXPECT_EQ(errors[1].substr(0, 24), "bad.yaml:3: latency.ttft");
  EXPECT_EQ(errors[2].substr(0, 29), "bad.yaml:5: load.max_num_seqs");
  EXPECT_EQ(errors[3].substr(0, 34), "bad.yaml:6: colour: unknown field ");
  EXPECT_EQ(errors[4].substr(0, 22), "bad.yaml:8: faults[0]:");
}

TEST(Profile, SyntaxErrorsAndMissingFiles) {
  auto syntax = parse_profile("latency: [unclosed", "x.yaml");
  ASSERT_TRUE(std::holds_alternative<std::vector<std::string>>(syntax));
  EXPECT_EQ(std::get<std::vector<std::string>>(syntax).front().substr(0, 7), "x.yaml:");
  auto missing = load_profile("/nonexistent/profile.yaml");
  ASSERT_TRUE(std::holds_alternative<std::vector<std::string>>(missing));
  EXPECT_EQ(std::get<std::vector<std::string>>(missing).front(),
            "/nonexistent/profile.yaml: cannot read the profile file");
  EXPECT_TRUE(std::holds_alternative<Profile>(parse_profile("", "empty.yaml")));
}

}  // namespace
}  // namespace lab::mocks::llm
