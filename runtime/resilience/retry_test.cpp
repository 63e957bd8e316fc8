#include "runtime/resilience/retry.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

namespace lab::resilience {
namespace {

using namespace std::chrono_literals;
using Verdict = RetryDecision::Verdict;

struct TableRow {
  const char* component;
  RetryPolicy policy;
  std::vector<Nanos> delays;  // the seed's backoff column, one per retry
};

// Seed 002, "Retry Strategies".
std::vector<TableRow> seed_table() {
  return {
      {"LLM API", RetryPolicy::seed_llm_api(), {1s, 2s, 4s}},
      {"Tool calls", RetryPolicy::seed_tool_calls(), {500ms, 1000ms}},
      {"Checkpoint write", RetryPolicy::seed_checkpoint_write(),
       {100ms, 200ms, 400ms, 800ms, 1600ms}},
      {"Memory query", RetryPolicy::seed_memory_query(), {100ms, 100ms}},
      {"Database", RetryPolicy::seed_database(), {500ms, 1s, 2s}},
  };
}

TEST(RetryPolicy, SeedRowsGiveTheTablesNominalDelays) {
  for (const auto& row : seed_table()) {
    SCOPED_TRACE(row.component);
    EXPECT_TRUE(row.policy.validate().empty());
    ASSERT_EQ(row.policy.max_retries, static_cast<int>(row.delays.size()));
    for (int n = 1; n <= row.policy.max_retries; ++n) {
      EXPECT_EQ(row.policy.nominal_delay(n), row.delays[n - 1]) << "retry " << n;
    }
  }
  EXPECT_EQ(RetryPolicy::seed_llm_api().backoff, RetryPolicy::Backoff::kExponential);
  EXPECT_EQ(RetryPolicy::seed_tool_calls().backoff, RetryPolicy::Backoff::kLinear);
  EXPECT_EQ(RetryPolicy::seed_checkpoint_write().backoff, RetryPolicy::Backoff::kExponential);
  EXPECT_EQ(RetryPolicy::seed_memory_query().backoff, RetryPolicy::Backoff::kFixed);
  EXPECT_EQ(RetryPolicy::seed_database().backoff, RetryPolicy::Backoff::kExponential);
}

TEST(RetryPolicy, JitteredDelaysStayWithinTwentyPercentAndAverageToTheTable) {
  std::mt19937_64 rng(42);
  constexpr int kDraws = 20'000;
  for (const auto& row : seed_table()) {
    SCOPED_TRACE(row.component);
    EXPECT_DOUBLE_EQ(row.policy.jitter_ratio, 0.2);
    for (int n = 1; n <= row.policy.max_retries; ++n) {
      const double nominal = static_cast<double>(row.delays[n - 1].count());
      double low = 1e300, high = 0, sum = 0;
      for (int i = 0; i < kDraws; ++i) {
        const double d = static_cast<double>(row.policy.next_delay(n, rng).count());
        low = std::min(low, d);
        high = std::max(high, d);
        sum += d;
      }
      EXPECT_GE(low, nominal * 0.8 - 1) << "retry " << n;
      EXPECT_LE(high, nominal * 1.2 + 1) << "retry " << n;
      EXPECT_LT(low, nominal * 0.81) << "retry " << n;  // the whole range is used
      EXPECT_GT(high, nominal * 1.19) << "retry " << n;
      EXPECT_NEAR(sum / kDraws, nominal, nominal * 0.01) << "retry " << n;
    }
  }
}

TEST(RetryPolicy, JitterIsReproducibleFromTheSeed) {
  const auto policy = RetryPolicy::seed_llm_api();
  std::mt19937_64 a(7), b(7), c(8);
  std::vector<Nanos> from_a, from_b, from_c;
  for (int i = 0; i < 100; ++i) {
    from_a.push_back(policy.next_delay(1 + i % 3, a));
    from_b.push_back(policy.next_delay(1 + i % 3, b));
    from_c.push_back(policy.next_delay(1 + i % 3, c));
  }
  EXPECT_EQ(from_a, from_b);
  EXPECT_NE(from_a, from_c);
}

TEST(RetryPolicy, ZeroJitterReturnsTheTableExactly) {
  auto policy = RetryPolicy::seed_database();
  policy.jitter_ratio = 0;
  std::mt19937_64 rng(1);
  EXPECT_EQ(policy.next_delay(1, rng), 500ms);
  EXPECT_EQ(policy.next_delay(2, rng), 1s);
  EXPECT_EQ(policy.next_delay(3, rng), 2s);
}

TEST(RetryPolicy, DelaysAreCappedAtMaxDelay) {
  auto policy = RetryPolicy::seed_llm_api();
  policy.max_retries = 6;  // beyond the table: 8 s, 16 s, 32 s would follow
  EXPECT_EQ(policy.nominal_delay(4), 4s);
  EXPECT_EQ(policy.nominal_delay(6), 4s);
  EXPECT_EQ(policy.nominal_delay(0), 1s);   // clamped to the first retry
  EXPECT_EQ(policy.nominal_delay(99), 4s);  // clamped to the last
}

TEST(RetryPolicy, ValidateReportsEveryProblem) {
  RetryPolicy policy;
  policy.max_retries = -1;
  policy.base_delay = -1ms;
  policy.multiplier = 0.5;
  policy.max_delay = -2ms;
  policy.jitter_ratio = 1.0;
  policy.max_retry_after = -1ms;
  policy.retryable_mask = 1u << 20;
  EXPECT_EQ(policy.validate().size(), 7u);
}

TEST(RetryState, LlmCallRetriesThreeTimesThenGivesUp) {
  auto policy = RetryPolicy::seed_llm_api();
  policy.jitter_ratio = 0;
  std::mt19937_64 rng(3);
  RetryState state(policy);
  const Nanos expected[] = {1s, 2s, 4s};
  for (int n = 0; n < 3; ++n) {
    auto decision = state.on_failure(ErrorClass::kServerError, rng);
    ASSERT_TRUE(decision.should_retry());
    EXPECT_EQ(decision.retry, n + 1);
    EXPECT_EQ(decision.delay, expected[n]);
  }
  EXPECT_EQ(state.attempts(), 4);  // the first attempt + 3 retries
  auto last = state.on_failure(ErrorClass::kTimeout, rng);
  EXPECT_EQ(last.verdict, Verdict::kExhausted);
  EXPECT_EQ(state.retries(), 3);
  EXPECT_EQ(state.total_delay(), 7s);
}

TEST(RetryState, EveryRowRetriesExactlyItsMaxRetries) {
  std::mt19937_64 rng(11);
  for (const auto& row : seed_table()) {
    SCOPED_TRACE(row.component);
    RetryState state(row.policy);
    int retries = 0;
    while (state.on_failure(ErrorClass::kConnection, rng).should_retry()) ++retries;
    EXPECT_EQ(retries, static_cast<int>(row.delays.size()));
  }
}

TEST(RetryState, NonRetryableErrorsGiveUpAtOnce) {
  std::mt19937_64 rng(5);
  const auto policy = RetryPolicy::seed_llm_api();
  for (ErrorClass error : {ErrorClass::kCircuitOpen, ErrorClass::kClientError,
                           ErrorClass::kInvalidResponse, ErrorClass::kCancelled,
                           ErrorClass::kOther}) {
    RetryState state(policy);
    EXPECT_EQ(state.on_failure(error, rng).verdict, Verdict::kNotRetryable) << to_string(error);
    EXPECT_EQ(state.retries(), 0);
  }
  for (ErrorClass error : {ErrorClass::kTimeout, ErrorClass::kConnection,
                           ErrorClass::kServerError, ErrorClass::kRateLimited}) {
    RetryState state(policy);
    EXPECT_TRUE(state.on_failure(error, rng).should_retry()) << to_string(error);
  }
}

TEST(RetryState, RetryableClassesComeFromThePolicyMask) {
  auto policy = RetryPolicy::seed_tool_calls();
  policy.retryable_mask = 1u << static_cast<int>(ErrorClass::kTimeout);
  std::mt19937_64 rng(5);
  RetryState state(policy);
  EXPECT_EQ(state.on_failure(ErrorClass::kServerError, rng).verdict, Verdict::kNotRetryable);
  EXPECT_TRUE(state.on_failure(ErrorClass::kTimeout, rng).should_retry());
}

TEST(RetryState, RetryAfterHintIsHonouredUpToItsBound) {
  auto policy = RetryPolicy::seed_llm_api();
  policy.jitter_ratio = 0;
  std::mt19937_64 rng(5);
  {
    RetryState state(policy);  // hints ignored by default
    EXPECT_EQ(state.on_failure(ErrorClass::kRateLimited, rng, Nanos(10s)).delay, 1s);
  }
  policy.max_retry_after = 5s;
  RetryState state(policy);
  EXPECT_EQ(state.on_failure(ErrorClass::kRateLimited, rng, Nanos(3s)).delay, 3s);
  EXPECT_EQ(state.on_failure(ErrorClass::kRateLimited, rng, Nanos(1s)).delay, 2s);  // table wins
  EXPECT_EQ(state.on_failure(ErrorClass::kRateLimited, rng, Nanos(60s)).delay, 5s);  // bounded
}

TEST(ErrorClassification, HttpStatuses) {
  EXPECT_EQ(classify_http_status(408), ErrorClass::kTimeout);
  EXPECT_EQ(classify_http_status(429), ErrorClass::kRateLimited);
  EXPECT_EQ(classify_http_status(500), ErrorClass::kServerError);
  EXPECT_EQ(classify_http_status(502), ErrorClass::kServerError);
  EXPECT_EQ(classify_http_status(503), ErrorClass::kServerError);
  EXPECT_EQ(classify_http_status(504), ErrorClass::kServerError);
  EXPECT_EQ(classify_http_status(400), ErrorClass::kClientError);
  EXPECT_EQ(classify_http_status(401), ErrorClass::kClientError);
  EXPECT_EQ(classify_http_status(404), ErrorClass::kClientError);
  EXPECT_EQ(classify_http_status(200), ErrorClass::kInvalidResponse);
  EXPECT_EQ(classify_http_status(302), ErrorClass::kInvalidResponse);
}

TEST(ErrorClassification, TransportErrors) {
  using std::errc;
  EXPECT_EQ(classify_error(std::make_error_code(errc::timed_out)), ErrorClass::kTimeout);
  EXPECT_EQ(classify_error(std::make_error_code(errc::operation_canceled)),
            ErrorClass::kCancelled);
  for (errc e : {errc::connection_refused, errc::connection_reset, errc::connection_aborted,
                 errc::network_unreachable, errc::network_down, errc::host_unreachable,
                 errc::broken_pipe, errc::not_connected}) {
    EXPECT_EQ(classify_error(std::make_error_code(e)), ErrorClass::kConnection)
        << std::make_error_code(e).message();
  }
  // A system-category code (as Boost.System converts asio's errno codes) compares equal too.
  EXPECT_EQ(classify_error(std::error_code(ECONNREFUSED, std::system_category())),
            ErrorClass::kConnection);
  EXPECT_EQ(classify_error(std::make_error_code(errc::invalid_argument)), ErrorClass::kOther);
  EXPECT_EQ(to_string(ErrorClass::kRateLimited), "rate_limited");
}

}  // namespace
}  // namespace lab::resilience
