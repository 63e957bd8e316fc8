// The LLM client against two in-process mock LLMs (primary and backup), with faults injected
// through the mock's programmatic fault API. Breakers run on a SimulatedClock.

#include "runtime/worker/llm_client.hpp"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include "common/text/json_util.hpp"
#include "mocks/llm/mock_llm.hpp"
#include "runtime/worker/simulated_tool.hpp"

namespace lab::runtime {
namespace {

namespace asio = boost::asio;
using mocks::llm::Distribution;
using mocks::llm::FaultRule;
using mocks::llm::MockLlm;
using mocks::llm::Profile;
using resilience::CircuitState;
using resilience::ErrorClass;

Profile fast_profile() {
  Profile p;
  p.latency.ttft_ms = Distribution::constant(0);
  p.latency.prefill_ms_per_token = 0;
  p.latency.itl_ms = Distribution::constant(0);
  p.output.tokens = Distribution::constant(5);
  p.tool_call_probability = 1.0;
  return p;
}

FaultRule errors(int status) {
  FaultRule r;
  r.error_rate = 1.0;
  r.status = status;
  return r;
}

class LlmClientTest : public ::testing::Test {
 protected:
  LlmClientTest() : primary_(fast_profile(), mock_clock_, 1), backup_(fast_profile(), mock_clock_, 2) {
    primary_.start();
    backup_.start();
  }

  std::unique_ptr<LlmClient> make_client(LlmClientConfig config = {}) {
    config.providers = {{primary_.url(), "primary-model"}, {backup_.url() + "/v1", "backup-model"}};
    config.retry.base_delay = Millis(1);
    config.retry.max_delay = Millis(4);
    config.retry.jitter_ratio = 0;
    return std::make_unique<LlmClient>(io_.get_executor(), config, breakers_, clock_, 7, &metrics_);
  }

  template <class T>
  T run(asio::awaitable<T> work) {
    std::optional<T> out;
    asio::co_spawn(io_, std::move(work), [&](std::exception_ptr e, T v) {
      if (e) std::rethrow_exception(e);
      out = std::move(v);
    });
    // Until the work is done, not until the context runs dry: a pooled connection's watchdog
    // timer may stay armed after its request.
    io_.restart();
    while (!out && io_.run_one() > 0) {
    }
    return std::move(*out);
  }

  LlmResult complete(LlmClient& client, bool tools = false, bool prefer_backup = false) {
    ChatRequestSpec spec;
    spec.messages.push_back({"user", "hello", {}, {}});
    if (tools) spec.tools.push_back(SimulatedTool::spec());
    streamed_.clear();
    return run(client.complete(spec, prefer_backup, [this](std::string_view d) { streamed_ += d; }));
  }

  resilience::CircuitBreaker& breaker(std::string_view name) { return *breakers_.find(name); }

  SimulatedClock mock_clock_;
  MockLlm primary_;
  MockLlm backup_;
  SimulatedClock clock_;
  resilience::CircuitBreakerRegistry breakers_{clock_};
  RuntimeMetrics metrics_;
  asio::io_context io_;
  std::string streamed_;
};

TEST_F(LlmClientTest, StreamsTextFromThePrimary) {
  auto client = make_client();
  const LlmResult r = complete(*client);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.provider, "llm_primary");
  EXPECT_EQ(r.model, "primary-model");
  EXPECT_EQ(r.attempts, 1);
  EXPECT_EQ(r.output_tokens, 5);
  EXPECT_GT(r.input_tokens, 0);
  EXPECT_FALSE(r.text.empty());
  EXPECT_EQ(r.text, streamed_);
  EXPECT_TRUE(r.emitted_text);
  EXPECT_EQ(r.finish_reason, "stop");
  EXPECT_EQ(breaker("llm_primary").metrics().total_successful, 1u);
}

TEST_F(LlmClientTest, ReturnsToolCallsAssembled) {
  auto client = make_client();
  const LlmResult r = complete(*client, /*tools=*/true);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.finish_reason, "tool_calls");
  ASSERT_EQ(r.tool_calls.size(), 1u);
  EXPECT_EQ(r.tool_calls[0].name, "lookup");
  EXPECT_FALSE(r.tool_calls[0].id.empty());
  const auto args = json::parse(r.tool_calls[0].arguments);
  ASSERT_TRUE(args && args->is_object()) << r.tool_calls[0].arguments;
  EXPECT_TRUE(args->as_object().contains("query"));
  EXPECT_TRUE(streamed_.empty());
}

TEST_F(LlmClientTest, FailsOverToTheBackupWhenThePrimaryAnswers503) {
  primary_.add_fault(errors(503));
  auto client = make_client();
  const LlmResult r = complete(*client);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.provider, "llm_backup");
  EXPECT_EQ(r.model, "backup-model");
  EXPECT_EQ(r.attempts, 2);
  EXPECT_EQ(breaker("llm_primary").metrics().total_failed, 1u);
  EXPECT_EQ(breaker("llm_backup").metrics().total_successful, 1u);
}

TEST_F(LlmClientTest, PrefersTheBackupUnderDegradation) {
  auto client = make_client();
  const LlmResult r = complete(*client, false, /*prefer_backup=*/true);
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.provider, "llm_backup");
  EXPECT_EQ(r.attempts, 1);
}

TEST_F(LlmClientTest, OpensThePrimaryBreakerAfterFiveFailuresThenSkipsIt) {
  primary_.add_fault(errors(503));
  auto client = make_client();
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(complete(*client).ok);
  EXPECT_EQ(breaker("llm_primary").state(), CircuitState::kOpen);
  const LlmResult r = complete(*client);
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.attempts, 1);  // the open primary is not called
  EXPECT_EQ(r.provider, "llm_backup");
  EXPECT_GE(breaker("llm_primary").metrics().total_not_permitted, 1u);
}

TEST_F(LlmClientTest, AProbeClosesTheHalfOpenPrimaryOnceItRecovers) {
  const auto fault = primary_.add_fault(errors(503));
  auto client = make_client();
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(complete(*client).ok);
  ASSERT_EQ(breaker("llm_primary").state(), CircuitState::kOpen);
  clock_.advance(resilience::CircuitBreakerConfig::seed_llm_api().wait_duration_in_open);
  ASSERT_EQ(breaker("llm_primary").state(), CircuitState::kHalfOpen);
  EXPECT_FALSE(run(client->probe(0)));  // still failing: back to OPEN
  EXPECT_EQ(breaker("llm_primary").state(), CircuitState::kOpen);
  primary_.remove_fault(fault);
  clock_.advance(resilience::CircuitBreakerConfig::seed_llm_api().wait_duration_in_open);
  ASSERT_EQ(breaker("llm_primary").state(), CircuitState::kHalfOpen);
  EXPECT_TRUE(run(client->probe(0)));
  EXPECT_EQ(breaker("llm_primary").state(), CircuitState::kClosed);
  EXPECT_EQ(complete(*client).provider, "llm_primary");
}

TEST_F(LlmClientTest, RetriesRoundsWithBackoffWhenEveryProviderFails) {
  primary_.add_fault(errors(502));
  backup_.add_fault(errors(503));
  LlmClientConfig config;
  config.retry.max_retries = 1;
  auto client = make_client(config);
  const LlmResult r = complete(*client);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.error_class, ErrorClass::kServerError);
  EXPECT_EQ(r.attempts, 4);  // 2 providers × (1 + 1 retry)
  EXPECT_EQ(breaker("llm_primary").metrics().total_failed, 2u);
  EXPECT_EQ(breaker("llm_backup").metrics().total_failed, 2u);
}

TEST_F(LlmClientTest, ClientErrorsAreNeitherRetriedNorHeldAgainstTheProvider) {
  LlmClientConfig config;
  config.headers.emplace_back("x-mock-fault", "error=400");
  auto client = make_client(config);
  const LlmResult r = complete(*client);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.error_class, ErrorClass::kClientError);
  EXPECT_EQ(r.attempts, 1);
  EXPECT_EQ(breaker("llm_primary").metrics().total_failed, 0u);
  EXPECT_EQ(breaker("llm_primary").metrics().total_released, 1u);
}

TEST_F(LlmClientTest, FailsFastWhenEveryCircuitIsOpen) {
  auto client = make_client();
  breaker("llm_primary").force_open();
  breaker("llm_backup").force_open();
  const LlmResult r = complete(*client);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.error_class, ErrorClass::kCircuitOpen);
  EXPECT_EQ(r.attempts, 0);
  EXPECT_NE(r.error.find("no LLM provider available"), std::string::npos);
}

TEST_F(LlmClientTest, AHungPrimaryTimesOutAndFailsOver) {
  FaultRule hang;
  hang.hang_rate = 1.0;
  primary_.add_fault(hang);
  LlmClientConfig config;
  config.idle_timeout = Millis(150);
  auto client = make_client(config);
  const LlmResult r = complete(*client);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.provider, "llm_backup");
  EXPECT_EQ(breaker("llm_primary").metrics().total_failed, 1u);
}

TEST_F(LlmClientTest, AStreamCutAfterTextReachedTheClientIsNotReplayed) {
  FaultRule cut;
  cut.disconnect_after_tokens = 2;
  cut.disconnect_rate = 1.0;
  primary_.add_fault(cut);
  auto client = make_client();
  const LlmResult r = complete(*client);
  EXPECT_FALSE(r.ok);
  EXPECT_TRUE(r.emitted_text);
  EXPECT_EQ(r.attempts, 1);  // no failover: the client already has part of this answer
  EXPECT_FALSE(streamed_.empty());
  EXPECT_EQ(breaker("llm_primary").metrics().total_failed, 1u);
}

TEST_F(LlmClientTest, MalformedStreamsCountAsFailuresAndFailOver) {
  FaultRule broken;
  broken.malformed_rate = 1.0;
  primary_.add_fault(broken);
  auto client = make_client();
  const LlmResult r = complete(*client, /*tools=*/true);  // a tool call: nothing streamed before the break
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.provider, "llm_backup");
}

}  // namespace
}  // namespace lab::runtime
