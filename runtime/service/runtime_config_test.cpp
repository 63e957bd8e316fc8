#include "runtime/service/runtime_config.hpp"

#include <gtest/gtest.h>

#include <yaml-cpp/yaml.h>

namespace lab::runtime {
namespace {

TEST(RuntimeConfig, AppliesAScenarioRuntimeBlock) {
  const YAML::Node n = YAML::Load(R"(
workers: 4
max_active_agents: 1000
idle_timeout: 5m
queue: memory
store: memory
queue_bound: 500
user_rate: 10/s
user_burst: 5
llm: http://127.0.0.1:9000,http://127.0.0.1:9001
tool_latency: 20ms
tools: false
llm_retry: {max_retries: 2, base_delay: 100ms, jitter: 0}
breakers:
  llm: {failures: 3, window: 10s, wait_in_open: 5s}
  tools: {window: 50, failure_rate: 25%, minimum_calls: 10}
degradation: {recovery_hold: 2s}
)");
  RuntimeConfig c;
  std::vector<std::string> errors;
  apply_runtime_yaml(n, "scenario.yaml", c, errors);
  ASSERT_TRUE(errors.empty()) << errors.front();
  EXPECT_EQ(c.workers, 4);
  EXPECT_EQ(c.max_active_agents, 1000u);
  EXPECT_EQ(c.idle_timeout, Seconds(300));
  EXPECT_EQ(c.queue_bound, 500u);
  EXPECT_DOUBLE_EQ(c.user_rate_per_s, 10.0);
  EXPECT_DOUBLE_EQ(c.user_burst, 5.0);
  ASSERT_EQ(c.llm_urls.size(), 2u);
  EXPECT_EQ(c.llm_urls[1], "http://127.0.0.1:9001");
  EXPECT_EQ(c.tool_latency, Millis(20));
  EXPECT_FALSE(c.tools);
  EXPECT_EQ(c.llm_retry.max_retries, 2);
  EXPECT_EQ(c.llm_retry.base_delay, Millis(100));
  EXPECT_EQ(c.llm_breaker.failure_count_threshold, 3);
  EXPECT_EQ(c.llm_breaker.window_type, resilience::CircuitBreakerConfig::WindowType::kTimeBased);
  EXPECT_EQ(c.llm_breaker.window_size, 10);
  EXPECT_EQ(c.llm_breaker.wait_duration_in_open, Millis(5000));
  EXPECT_EQ(c.tool_breaker.window_type, resilience::CircuitBreakerConfig::WindowType::kCountBased);
  EXPECT_DOUBLE_EQ(c.tool_breaker.failure_rate_threshold, 25.0);
  EXPECT_EQ(c.degradation.recovery_hold, Millis(2000));
  EXPECT_TRUE(c.validate().empty()) << c.validate().front();
}

TEST(RuntimeConfig, ReportsEveryProblemWithItsLine) {
  const YAML::Node n = YAML::Load("workers: many\nidle_timeout: soon\ncolour: blue\nbreakers: {llm: {failures: -1}}\n");
  RuntimeConfig c;
  std::vector<std::string> errors;
  apply_runtime_yaml(n, "s.yaml", c, errors);
  ASSERT_EQ(errors.size(), 4u);
  EXPECT_EQ(errors[0].rfind("s.yaml:1: workers:", 0), 0u) << errors[0];
  EXPECT_EQ(errors[1].rfind("s.yaml:2: idle_timeout:", 0), 0u) << errors[1];
  EXPECT_NE(errors[2].find("breakers.llm.failures"), std::string::npos) << errors[2];
  EXPECT_EQ(errors[3], "s.yaml:3: colour: unknown key");
}

}  // namespace
}  // namespace lab::runtime
