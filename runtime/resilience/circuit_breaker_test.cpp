#include "runtime/resilience/circuit_breaker.hpp"

#include <gtest/gtest.h>

#include <random>
#include <thread>
#include <vector>

namespace lab::resilience {
namespace {

using namespace std::chrono_literals;
using WindowType = CircuitBreakerConfig::WindowType;

constexpr Nanos kFast = 10ms;

// A breaker on a simulated clock that records every transition it announces.
struct Harness {
  explicit Harness(CircuitBreakerConfig config) : breaker("dep", clock, config) {
    breaker.add_listener([this](const CircuitTransition& t) { transitions.push_back(t); });
  }

  void succeed(Nanos duration = kFast) {
    auto permit = breaker.try_acquire();
    ASSERT_TRUE(permit) << "rejected in " << to_string(breaker.state());
    breaker.on_success(permit, duration);
  }
  void fail(Nanos duration = kFast) {
    auto permit = breaker.try_acquire();
    ASSERT_TRUE(permit) << "rejected in " << to_string(breaker.state());
    breaker.on_error(permit, duration);
  }
  // Trips a breaker whose config opens on `n` failures.
  void trip(int n) {
    for (int i = 0; i < n; ++i) fail();
    ASSERT_EQ(breaker.state(), CircuitState::kOpen);
  }

  SimulatedClock clock;
  CircuitBreaker breaker;
  std::vector<CircuitTransition> transitions;
};

CircuitBreakerConfig count_window(int size, int minimum, double failure_rate) {
  CircuitBreakerConfig config;
  config.window_type = WindowType::kCountBased;
  config.window_size = size;
  config.minimum_number_of_calls = minimum;
  config.failure_rate_threshold = failure_rate;
  return config;
}

// ---------------------------------------------------------------- config

TEST(CircuitBreakerConfig, DefaultsAreResilience4jWithTheSeedsSingleTrialCall) {
  const CircuitBreakerConfig config;
  EXPECT_TRUE(config.validate().empty());
  EXPECT_EQ(config.window_type, WindowType::kCountBased);
  EXPECT_EQ(config.window_size, 100);
  EXPECT_EQ(config.minimum_number_of_calls, 100);
  EXPECT_DOUBLE_EQ(config.failure_rate_threshold, 50.0);
  EXPECT_EQ(config.failure_count_threshold, 0);
  EXPECT_EQ(config.slow_call_duration_threshold, 60s);
  EXPECT_DOUBLE_EQ(config.slow_call_rate_threshold, 100.0);
  EXPECT_EQ(config.wait_duration_in_open, 60s);
  EXPECT_EQ(config.permitted_calls_in_half_open, 1);  // seed: "HALF_OPEN (test with 1 req)"
  EXPECT_EQ(config.half_open_call_timeout, 10s);
}

TEST(CircuitBreakerConfig, SeedPresetsQuoteTheRetryTableBreakerColumn) {
  struct Row {
    CircuitBreakerConfig config;
    int failures;
    int window_seconds;
  };
  const Row rows[] = {
      {CircuitBreakerConfig::seed_llm_api(), 5, 30},
      {CircuitBreakerConfig::seed_tool_calls(), 10, 60},
      {CircuitBreakerConfig::seed_memory_query(), 20, 60},
      {CircuitBreakerConfig::seed_database(), 10, 30},
  };
  for (const auto& row : rows) {
    EXPECT_TRUE(row.config.validate().empty());
    EXPECT_EQ(row.config.window_type, WindowType::kTimeBased);
    EXPECT_EQ(row.config.window_size, row.window_seconds);
    EXPECT_EQ(row.config.failure_count_threshold, row.failures);
    EXPECT_EQ(row.config.permitted_calls_in_half_open, 1);
  }
}

TEST(CircuitBreakerConfig, ValidateReportsEveryProblem) {
  CircuitBreakerConfig config;
  config.window_size = 0;
  config.minimum_number_of_calls = 0;
  config.failure_rate_threshold = 0;
  config.slow_call_rate_threshold = 101;
  config.failure_count_threshold = -1;
  config.slow_call_duration_threshold = 0ms;
  config.wait_duration_in_open = -1ms;
  config.permitted_calls_in_half_open = 0;
  config.half_open_call_timeout = 0ms;
  const auto problems = config.validate();
  ASSERT_EQ(problems.size(), 9u);
  const char* fields[] = {"window_size", "minimum_number_of_calls", "failure_rate_threshold",
                          "slow_call_rate_threshold", "failure_count_threshold",
                          "slow_call_duration_threshold", "wait_duration_in_open",
                          "permitted_calls_in_half_open", "half_open_call_timeout"};
  for (const char* field : fields) {
    bool found = false;
    for (const auto& p : problems) found = found || p.find(field) != std::string::npos;
    EXPECT_TRUE(found) << field;
  }
}

TEST(CircuitBreakerConfig, RejectsAFailureCountACountWindowCannotHold) {
  auto config = count_window(4, 4, 50);
  config.failure_count_threshold = 5;
  ASSERT_EQ(config.validate().size(), 1u);
  EXPECT_NE(config.validate()[0].find("can never be reached"), std::string::npos);
}

TEST(CircuitBreakerDeathTest, AbortsOnInvalidConfig) {
  SimulatedClock clock;
  CircuitBreakerConfig config;
  config.window_size = 0;
  EXPECT_DEATH(CircuitBreaker("bad", clock, config), "window_size");
}

// ---------------------------------------------------------------- CLOSED, count window

TEST(CircuitBreaker, StaysClosedBelowMinimumCallsEvenIfAllFail) {
  Harness h(count_window(20, 10, 50));
  for (int i = 0; i < 9; ++i) h.fail();
  EXPECT_EQ(h.breaker.state(), CircuitState::kClosed);
  auto m = h.breaker.metrics();
  EXPECT_EQ(m.buffered_calls, 9);
  EXPECT_EQ(m.failed_calls, 9);
  EXPECT_DOUBLE_EQ(m.failure_rate, -1.0);
  h.fail();
  EXPECT_EQ(h.breaker.state(), CircuitState::kOpen);
  ASSERT_EQ(h.transitions.size(), 1u);
  EXPECT_EQ(h.transitions[0].reason, TransitionReason::kFailureRateExceeded);
}

TEST(CircuitBreaker, OpensAfterFailureRateReachesThreshold) {
  Harness h(count_window(10, 10, 50));
  for (int i = 0; i < 5; ++i) h.succeed();
  for (int i = 0; i < 4; ++i) h.fail();
  h.succeed();  // 10 calls, 40 % failed
  EXPECT_EQ(h.breaker.state(), CircuitState::kClosed);
  EXPECT_DOUBLE_EQ(h.breaker.metrics().failure_rate, 40.0);
  h.fail();  // evicts a success: 5 of 10 = 50 % ≥ 50 %
  EXPECT_EQ(h.breaker.state(), CircuitState::kOpen);
  ASSERT_EQ(h.transitions.size(), 1u);
  EXPECT_EQ(h.transitions[0].from, CircuitState::kClosed);
  EXPECT_EQ(h.transitions[0].to, CircuitState::kOpen);
  EXPECT_EQ(h.transitions[0].reason, TransitionReason::kFailureRateExceeded);
  EXPECT_EQ(h.transitions[0].breaker, "dep");
  EXPECT_EQ(h.transitions[0].at, h.clock.now());
}

TEST(CircuitBreaker, CountWindowForgetsTheOldestCall) {
  // 4-call window, 75 %: F F S S F F F. Cumulatively 5/7 = 71 % (would stay closed); over the
  // last 4 calls the rate goes 50 %, 50 %, 50 %, 75 %.
  Harness h(count_window(4, 4, 75));
  h.fail();
  h.fail();
  h.succeed();
  h.succeed();
  h.fail();
  h.fail();
  auto m = h.breaker.metrics();
  EXPECT_EQ(m.buffered_calls, 4);
  EXPECT_EQ(m.failed_calls, 2);
  EXPECT_EQ(m.successful_calls, 2);
  EXPECT_EQ(h.breaker.state(), CircuitState::kClosed);
  h.fail();
  EXPECT_EQ(h.breaker.state(), CircuitState::kOpen);
}

TEST(CircuitBreaker, MinimumCallsIsCappedAtTheCountWindowSize) {
  Harness h(count_window(5, 100, 50));
  for (int i = 0; i < 4; ++i) h.fail();
  EXPECT_EQ(h.breaker.state(), CircuitState::kClosed);
  h.fail();
  EXPECT_EQ(h.breaker.state(), CircuitState::kOpen);
}

TEST(CircuitBreaker, OpensOnSlowCallRateAndSlowMeansStrictlyLonger) {
  auto config = count_window(2, 2, 100);
  config.slow_call_duration_threshold = 1000ms;
  config.slow_call_rate_threshold = 100;
  Harness h(config);
  h.succeed(1000ms);
  h.succeed(1000ms);  // exactly the threshold is not slow
  EXPECT_EQ(h.breaker.metrics().slow_calls, 0);
  h.succeed(1000ms + 1ns);
  auto m = h.breaker.metrics();
  EXPECT_EQ(m.slow_calls, 1);
  EXPECT_EQ(m.slow_successful_calls, 1);
  EXPECT_DOUBLE_EQ(m.slow_call_rate, 50.0);
  EXPECT_EQ(h.breaker.state(), CircuitState::kClosed);
  h.succeed(2s);
  EXPECT_EQ(h.breaker.state(), CircuitState::kOpen);
  ASSERT_EQ(h.transitions.size(), 1u);
  EXPECT_EQ(h.transitions[0].reason, TransitionReason::kSlowCallRateExceeded);
}

TEST(CircuitBreaker, SlowFailedCallsCountAsFailedAndSlow) {
  auto config = count_window(10, 10, 100);
  config.slow_call_duration_threshold = 100ms;
  Harness h(config);
  h.fail(200ms);
  h.fail(50ms);
  h.succeed(200ms);
  h.succeed(50ms);
  auto m = h.breaker.metrics();
  EXPECT_EQ(m.buffered_calls, 4);
  EXPECT_EQ(m.failed_calls, 2);
  EXPECT_EQ(m.successful_calls, 2);
  EXPECT_EQ(m.slow_calls, 2);
  EXPECT_EQ(m.slow_failed_calls, 1);
  EXPECT_EQ(m.slow_successful_calls, 1);
  EXPECT_EQ(m.total_failed, 2u);
  EXPECT_EQ(m.total_successful, 2u);
  EXPECT_EQ(m.total_slow, 2u);
}

// ---------------------------------------------------------------- CLOSED, time window

TEST(CircuitBreaker, SeedLlmBreakerOpensOnFiveFailuresWithinThirtySeconds) {
  Harness h(CircuitBreakerConfig::seed_llm_api());
  for (int i = 0; i < 100; ++i) h.succeed();
  for (int i = 0; i < 4; ++i) {
    h.fail();
    h.clock.advance(7s);  // failures at 0, 7, 14, 21 s
  }
  h.clock.advance(1s);  // 29 s: all four still in the 30 one-second buckets
  EXPECT_EQ(h.breaker.state(), CircuitState::kClosed);
  h.fail();  // fifth failure; failure rate only 5/105, the seed's count rule trips
  EXPECT_EQ(h.breaker.state(), CircuitState::kOpen);
  ASSERT_EQ(h.transitions.size(), 1u);
  EXPECT_EQ(h.transitions[0].reason, TransitionReason::kFailureCountExceeded);
}

TEST(CircuitBreaker, TimeWindowEvictsFailuresOlderThanTheWindow) {
  Harness h(CircuitBreakerConfig::seed_llm_api());
  for (int i = 0; i < 4; ++i) h.fail();  // second S
  h.clock.advance(30s);                  // second S+30: S has left the window [S+1, S+30]
  h.fail();
  EXPECT_EQ(h.breaker.state(), CircuitState::kClosed);
  EXPECT_EQ(h.breaker.metrics().failed_calls, 1);
}

TEST(CircuitBreaker, TimeWindowRatesUseOnlyTheLastNSeconds) {
  CircuitBreakerConfig config;
  config.window_type = WindowType::kTimeBased;
  config.window_size = 10;
  config.minimum_number_of_calls = 4;
  config.failure_rate_threshold = 50;
  Harness h(config);
  for (int i = 0; i < 4; ++i) h.succeed();  // second S
  h.clock.advance(5s);
  for (int i = 0; i < 3; ++i) h.fail();  // second S+5: 3/7 = 43 %
  EXPECT_EQ(h.breaker.state(), CircuitState::kClosed);
  EXPECT_NEAR(h.breaker.metrics().failure_rate, 300.0 / 7.0, 1e-9);
  h.clock.advance(5s);  // second S+10: the successes at S are gone, 3 calls < minimum 4
  auto m = h.breaker.metrics();
  EXPECT_EQ(m.buffered_calls, 3);
  EXPECT_DOUBLE_EQ(m.failure_rate, -1.0);
  h.fail();  // 4/4
  EXPECT_EQ(h.breaker.state(), CircuitState::kOpen);
  EXPECT_EQ(h.transitions.at(0).reason, TransitionReason::kFailureRateExceeded);
}

TEST(CircuitBreaker, TimeWindowIsEmptyAfterALongIdle) {
  Harness h(CircuitBreakerConfig::seed_tool_calls());
  for (int i = 0; i < 9; ++i) h.fail();
  EXPECT_EQ(h.breaker.metrics().buffered_calls, 9);
  h.clock.advance(3600s);
  EXPECT_EQ(h.breaker.metrics().buffered_calls, 0);
  h.fail();
  EXPECT_EQ(h.breaker.state(), CircuitState::kClosed);
}

// ---------------------------------------------------------------- OPEN

TEST(CircuitBreaker, RejectsWhileOpenAndCountsNotPermitted) {
  auto config = count_window(2, 2, 50);
  config.wait_duration_in_open = 20s;
  Harness h(config);
  h.trip(2);
  h.clock.advance(5s);
  for (int i = 0; i < 3; ++i) {
    auto permit = h.breaker.try_acquire();
    EXPECT_FALSE(permit);
    EXPECT_EQ(permit.retry_after, Nanos(15s));
  }
  auto m = h.breaker.metrics();
  EXPECT_EQ(m.state, CircuitState::kOpen);
  EXPECT_EQ(m.not_permitted_calls, 3);
  EXPECT_EQ(m.total_not_permitted, 3u);
  // The window that tripped it stays visible while OPEN.
  EXPECT_EQ(m.failed_calls, 2);
  EXPECT_DOUBLE_EQ(m.failure_rate, 100.0);
}

TEST(CircuitBreaker, MovesToHalfOpenExactlyWhenTheWaitElapses) {
  auto config = count_window(2, 2, 50);
  config.wait_duration_in_open = 20s;
  Harness h(config);
  h.trip(2);
  const TimePoint opened = h.clock.now();
  h.clock.advance(20s - 1ns);
  EXPECT_EQ(h.breaker.state(), CircuitState::kOpen);
  EXPECT_FALSE(h.breaker.try_acquire());
  h.clock.advance(1ns);
  EXPECT_EQ(h.breaker.state(), CircuitState::kHalfOpen);
  ASSERT_EQ(h.transitions.size(), 2u);
  EXPECT_EQ(h.transitions[1].from, CircuitState::kOpen);
  EXPECT_EQ(h.transitions[1].to, CircuitState::kHalfOpen);
  EXPECT_EQ(h.transitions[1].reason, TransitionReason::kWaitDurationElapsed);
  EXPECT_EQ(h.transitions[1].at, opened + 20s);
}

TEST(CircuitBreaker, LateObservationStampsTheTransitionWhenItWasDue) {
  auto config = count_window(2, 2, 50);
  config.wait_duration_in_open = 20s;
  Harness h(config);
  h.trip(2);
  const TimePoint opened = h.clock.now();
  h.clock.advance(95s);
  EXPECT_TRUE(h.breaker.try_acquire());  // a trial call
  ASSERT_EQ(h.transitions.size(), 2u);
  EXPECT_EQ(h.transitions[1].at, opened + 20s);
}

// ---------------------------------------------------------------- HALF_OPEN

// Opens on 2 failures of 2, waits 10 s, admits `trials` trial calls with a 5 s timeout.
CircuitBreakerConfig half_open_config(int trials) {
  auto config = count_window(2, 2, 50);
  config.wait_duration_in_open = 10s;
  config.permitted_calls_in_half_open = trials;
  config.half_open_call_timeout = 5s;
  return config;
}

TEST(CircuitBreaker, HalfOpenAdmitsOnlyThePermittedTrialCalls) {
  Harness h(half_open_config(3));
  h.trip(2);
  h.clock.advance(10s);
  std::vector<CircuitBreaker::Permit> permits;
  for (int i = 0; i < 3; ++i) permits.push_back(h.breaker.try_acquire());
  for (const auto& p : permits) EXPECT_TRUE(p);
  auto rejected = h.breaker.try_acquire();
  EXPECT_FALSE(rejected);
  EXPECT_EQ(rejected.retry_after, Nanos(0));
  auto m = h.breaker.metrics();
  EXPECT_EQ(m.state, CircuitState::kHalfOpen);
  EXPECT_EQ(m.not_permitted_calls, 1);
}

TEST(CircuitBreaker, HalfOpenClosesWhenTheTrialsSucceed) {
  Harness h(half_open_config(3));
  h.trip(2);
  h.clock.advance(10s);
  std::vector<CircuitBreaker::Permit> permits;
  for (int i = 0; i < 3; ++i) permits.push_back(h.breaker.try_acquire());
  h.breaker.on_success(permits[0], kFast);
  h.breaker.on_success(permits[1], kFast);
  EXPECT_EQ(h.breaker.state(), CircuitState::kHalfOpen);  // decided only when all 3 are in
  h.breaker.on_success(permits[2], kFast);
  EXPECT_EQ(h.breaker.state(), CircuitState::kClosed);
  ASSERT_EQ(h.transitions.size(), 3u);
  EXPECT_EQ(h.transitions[2].from, CircuitState::kHalfOpen);
  EXPECT_EQ(h.transitions[2].reason, TransitionReason::kTrialCallsSucceeded);
  // CLOSED starts with an empty window.
  EXPECT_EQ(h.breaker.metrics().buffered_calls, 0);
  h.fail();
  EXPECT_EQ(h.breaker.state(), CircuitState::kClosed);
}

TEST(CircuitBreaker, HalfOpenReopensWhenTrialFailureRateReachesThreshold) {
  Harness h(half_open_config(2));
  h.trip(2);
  h.clock.advance(10s);
  auto a = h.breaker.try_acquire();
  auto b = h.breaker.try_acquire();
  h.breaker.on_success(a, kFast);
  h.clock.advance(1s);
  h.breaker.on_error(b, kFast);  // 1 of 2 = 50 %
  EXPECT_EQ(h.breaker.state(), CircuitState::kOpen);
  ASSERT_EQ(h.transitions.size(), 3u);
  EXPECT_EQ(h.transitions[2].reason, TransitionReason::kTrialCallsFailed);
  const TimePoint reopened = h.clock.now();
  auto m = h.breaker.metrics();  // the trials are what OPEN shows now
  EXPECT_EQ(m.buffered_calls, 2);
  EXPECT_DOUBLE_EQ(m.failure_rate, 50.0);
  // A fresh wait starts at the reopening.
  h.clock.advance(10s - 1ns);
  EXPECT_EQ(h.breaker.state(), CircuitState::kOpen);
  h.clock.advance(1ns);
  EXPECT_EQ(h.breaker.state(), CircuitState::kHalfOpen);
  EXPECT_EQ(h.transitions.back().at, reopened + 10s);
}

TEST(CircuitBreaker, SeedBreakerTestsWithOneRequest) {
  Harness h(CircuitBreakerConfig::seed_database());  // 10 failures / 30 s
  h.trip(10);
  h.clock.advance(60s);
  auto trial = h.breaker.try_acquire();
  ASSERT_TRUE(trial);
  EXPECT_FALSE(h.breaker.try_acquire());  // only one trial request
  h.breaker.on_error(trial, kFast);       // failure → OPEN
  EXPECT_EQ(h.breaker.state(), CircuitState::kOpen);
  h.clock.advance(60s);
  trial = h.breaker.try_acquire();
  ASSERT_TRUE(trial);
  h.breaker.on_success(trial, kFast);  // success → CLOSED
  EXPECT_EQ(h.breaker.state(), CircuitState::kClosed);
}

TEST(CircuitBreaker, TrialCallSlowerThanItsTimeoutCountsAsFailed) {
  Harness h(half_open_config(1));
  h.trip(2);
  h.clock.advance(10s);
  auto trial = h.breaker.try_acquire();
  h.breaker.on_success(trial, 5s + 1ns);
  EXPECT_EQ(h.breaker.state(), CircuitState::kOpen);
  EXPECT_EQ(h.transitions.back().reason, TransitionReason::kTrialCallsFailed);
  auto m = h.breaker.metrics();
  EXPECT_EQ(m.total_trial_timeouts, 1u);
  EXPECT_EQ(m.failed_calls, 1);

  h.clock.advance(10s);
  trial = h.breaker.try_acquire();
  h.breaker.on_success(trial, 5s);  // exactly the timeout is in time
  EXPECT_EQ(h.breaker.state(), CircuitState::kClosed);
}

TEST(CircuitBreaker, TrialCallWithoutAResultFailsWhenItsTimeoutPasses) {
  Harness h(half_open_config(1));
  h.trip(2);
  h.clock.advance(10s);
  auto trial = h.breaker.try_acquire();
  const TimePoint acquired = h.clock.now();
  h.clock.advance(5s);
  EXPECT_EQ(h.breaker.state(), CircuitState::kHalfOpen);
  h.clock.advance(1ns);
  EXPECT_EQ(h.breaker.state(), CircuitState::kOpen);
  EXPECT_EQ(h.transitions.back().reason, TransitionReason::kTrialCallsFailed);
  EXPECT_EQ(h.transitions.back().at, acquired + 5s);
  EXPECT_EQ(h.breaker.metrics().total_trial_timeouts, 1u);
  // Its result finally arrives: too late to matter.
  h.breaker.on_success(trial, 6s);
  auto m = h.breaker.metrics();
  EXPECT_EQ(m.state, CircuitState::kOpen);
  EXPECT_EQ(m.total_stale_outcomes, 1u);
}

TEST(CircuitBreaker, UnobservedTimeoutAndWaitChainInOrder) {
  Harness h(half_open_config(1));
  h.trip(2);
  h.clock.advance(10s);
  h.breaker.try_acquire();  // never completes
  const TimePoint acquired = h.clock.now();
  h.clock.advance(60s);  // timeout at +5 s, reopen, wait 10 s → HALF_OPEN again at +15 s
  EXPECT_EQ(h.breaker.state(), CircuitState::kHalfOpen);
  ASSERT_EQ(h.transitions.size(), 4u);
  EXPECT_EQ(h.transitions[2].to, CircuitState::kOpen);
  EXPECT_EQ(h.transitions[2].at, acquired + 5s);
  EXPECT_EQ(h.transitions[3].to, CircuitState::kHalfOpen);
  EXPECT_EQ(h.transitions[3].at, acquired + 15s);
}

TEST(CircuitBreaker, ReleasedTrialPermitFreesItsSlot) {
  Harness h(half_open_config(1));
  h.trip(2);
  h.clock.advance(10s);
  auto trial = h.breaker.try_acquire();
  EXPECT_FALSE(h.breaker.try_acquire());
  h.breaker.release(trial);
  auto again = h.breaker.try_acquire();
  EXPECT_TRUE(again);
  h.breaker.on_success(again, kFast);
  EXPECT_EQ(h.breaker.state(), CircuitState::kClosed);
  EXPECT_EQ(h.breaker.metrics().total_released, 1u);
}

TEST(CircuitBreaker, SlowTrialCallsReopenBySlowCallRate) {
  auto config = half_open_config(2);
  config.slow_call_duration_threshold = 1s;
  config.slow_call_rate_threshold = 50;
  Harness h(config);
  h.trip(2);
  h.clock.advance(10s);
  auto a = h.breaker.try_acquire();
  auto b = h.breaker.try_acquire();
  h.breaker.on_success(a, 2s);  // slow, but within the 5 s trial timeout
  h.breaker.on_success(b, kFast);
  EXPECT_EQ(h.breaker.state(), CircuitState::kOpen);
  EXPECT_EQ(h.transitions.back().reason, TransitionReason::kTrialCallsFailed);
}

// ---------------------------------------------------------------- stale outcomes

TEST(CircuitBreaker, OutcomeOfAPermitFromAnEarlierStateIsIgnored) {
  Harness h(half_open_config(1));
  auto old_permit = h.breaker.try_acquire();  // CLOSED, still running
  h.trip(2);
  h.clock.advance(10s);
  auto trial = h.breaker.try_acquire();
  h.breaker.on_error(old_permit, kFast);  // belongs to the CLOSED epoch
  EXPECT_EQ(h.breaker.state(), CircuitState::kHalfOpen);
  h.breaker.on_success(trial, kFast);
  EXPECT_EQ(h.breaker.state(), CircuitState::kClosed);
  auto m = h.breaker.metrics();
  EXPECT_EQ(m.total_stale_outcomes, 1u);
  EXPECT_EQ(m.total_failed, 3u);  // 2 trip failures + the stale one
  EXPECT_EQ(m.buffered_calls, 0);
}

TEST(CircuitBreaker, RejectedPermitHasNoOutcome) {
  Harness h(half_open_config(1));
  h.trip(2);
  auto rejected = h.breaker.try_acquire();
  ASSERT_FALSE(rejected);
  h.breaker.on_error(rejected, kFast);
  auto m = h.breaker.metrics();
  EXPECT_EQ(m.total_failed, 2u);
  EXPECT_EQ(m.total_stale_outcomes, 0u);
}

// ---------------------------------------------------------------- manual states

TEST(CircuitBreaker, DisabledPermitsEverythingAndNeverTrips) {
  Harness h(count_window(2, 2, 50));
  h.breaker.disable();
  for (int i = 0; i < 10; ++i) h.fail();
  EXPECT_EQ(h.breaker.state(), CircuitState::kDisabled);
  auto m = h.breaker.metrics();
  EXPECT_EQ(m.buffered_calls, 0);
  EXPECT_EQ(m.total_failed, 10u);
  ASSERT_EQ(h.transitions.size(), 1u);
  EXPECT_EQ(h.transitions[0].reason, TransitionReason::kManual);
}

TEST(CircuitBreaker, ForcedOpenRejectsAndNeverLeavesByItself) {
  Harness h(half_open_config(1));
  h.breaker.force_open();
  h.clock.advance(1h);
  EXPECT_FALSE(h.breaker.try_acquire());
  EXPECT_EQ(h.breaker.state(), CircuitState::kForcedOpen);
  EXPECT_EQ(h.breaker.metrics().total_not_permitted, 1u);
}

TEST(CircuitBreaker, ResetClosesWithAnEmptyWindow) {
  Harness h(count_window(4, 4, 50));
  h.fail();
  h.fail();
  h.succeed();
  h.breaker.force_open();
  h.breaker.reset();
  EXPECT_EQ(h.breaker.state(), CircuitState::kClosed);
  EXPECT_EQ(h.breaker.metrics().buffered_calls, 0);
  ASSERT_EQ(h.transitions.size(), 2u);
  EXPECT_EQ(h.transitions[1].from, CircuitState::kForcedOpen);
  EXPECT_EQ(h.transitions[1].to, CircuitState::kClosed);
  EXPECT_EQ(h.transitions[1].reason, TransitionReason::kManual);
}

// ---------------------------------------------------------------- listeners

TEST(CircuitBreaker, ListenerSeesAFullCycleInOrder) {
  Harness h(half_open_config(1));
  const TimePoint start = h.clock.now();
  h.trip(2);
  h.clock.advance(10s);
  auto trial = h.breaker.try_acquire();
  h.clock.advance(1s);
  h.breaker.on_success(trial, 1s);
  ASSERT_EQ(h.transitions.size(), 3u);
  const CircuitState expected[][2] = {{CircuitState::kClosed, CircuitState::kOpen},
                                      {CircuitState::kOpen, CircuitState::kHalfOpen},
                                      {CircuitState::kHalfOpen, CircuitState::kClosed}};
  const TimePoint times[] = {start, start + 10s, start + 11s};
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(h.transitions[i].from, expected[i][0]) << i;
    EXPECT_EQ(h.transitions[i].to, expected[i][1]) << i;
    EXPECT_EQ(h.transitions[i].at, times[i]) << i;
  }
  EXPECT_EQ(h.breaker.metrics().total_transitions, 3u);
}

TEST(CircuitBreaker, ListenerMayCallBackIntoTheBreaker) {
  SimulatedClock clock;
  CircuitBreaker breaker("dep", clock, half_open_config(1));
  std::vector<CircuitState> seen;
  breaker.add_listener([&](const CircuitTransition& t) {
    seen.push_back(breaker.state());
    EXPECT_EQ(breaker.metrics().state, t.to);
    if (t.to == CircuitState::kOpen && seen.size() == 1) breaker.force_open();  // re-entrant
  });
  for (int i = 0; i < 2; ++i) breaker.on_error(breaker.try_acquire(), kFast);
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0], CircuitState::kOpen);
  EXPECT_EQ(seen[1], CircuitState::kForcedOpen);
}

TEST(CircuitBreaker, StateNamesMatchTheApiSpelling) {
  EXPECT_EQ(to_string(CircuitState::kClosed), "CLOSED");
  EXPECT_EQ(to_string(CircuitState::kOpen), "OPEN");
  EXPECT_EQ(to_string(CircuitState::kHalfOpen), "HALF_OPEN");
  EXPECT_EQ(to_string(CircuitState::kDisabled), "DISABLED");
  EXPECT_EQ(to_string(CircuitState::kForcedOpen), "FORCED_OPEN");
  EXPECT_EQ(to_string(TransitionReason::kFailureCountExceeded), "failure_count_exceeded");
}

// ---------------------------------------------------------------- threads

TEST(CircuitBreaker, ConcurrentCallsKeepCountsConsistent) {
  SimulatedClock clock;
  auto config = count_window(1000, 1000, 100);  // 1 error in 4 never reaches 100 %
  CircuitBreaker breaker("dep", clock, config);
  constexpr int kThreads = 4;
  constexpr int kCalls = 20'000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&breaker, &clock, t] {
      for (int i = 0; i < kCalls; ++i) {
        auto permit = breaker.try_acquire();
        if (i % 4 == t % 4) {
          breaker.on_error(permit, kFast);
        } else {
          breaker.on_success(permit, kFast);
        }
        if (i % 1000 == 0) clock.advance(1ms);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  auto m = breaker.metrics();
  EXPECT_EQ(m.state, CircuitState::kClosed);
  EXPECT_EQ(m.total_successful + m.total_failed, static_cast<std::uint64_t>(kThreads * kCalls));
  EXPECT_EQ(m.total_failed, static_cast<std::uint64_t>(kThreads * kCalls / 4));
  EXPECT_EQ(m.buffered_calls, 1000);
}

TEST(CircuitBreaker, ConcurrentTransitionsReachListenersAsAnUnbrokenChain) {
  SimulatedClock clock;
  auto config = count_window(4, 4, 50);
  config.wait_duration_in_open = 0ms;  // every observation after a trip admits a trial
  config.permitted_calls_in_half_open = 2;
  CircuitBreaker breaker("dep", clock, config);
  std::vector<CircuitTransition> seen;  // listeners run one at a time: no lock needed
  breaker.add_listener([&seen](const CircuitTransition& t) { seen.push_back(t); });
  constexpr int kThreads = 4;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&breaker, t] {
      std::mt19937 rng(static_cast<unsigned>(t));
      for (int i = 0; i < 20'000; ++i) {
        auto permit = breaker.try_acquire();
        if (!permit) continue;
        if (rng() % 2 == 0) {
          breaker.on_error(permit, kFast);
        } else {
          breaker.on_success(permit, kFast);
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  breaker.state();  // deliver anything still queued
  ASSERT_GT(seen.size(), 100u);
  EXPECT_EQ(seen.front().from, CircuitState::kClosed);
  for (std::size_t i = 1; i < seen.size(); ++i) {
    ASSERT_EQ(seen[i].from, seen[i - 1].to) << "transition " << i;
  }
  EXPECT_EQ(breaker.metrics().total_transitions, seen.size());
}

// ---------------------------------------------------------------- registry

TEST(CircuitBreakerRegistry, HoldsOneBreakerPerNameAndSnapshotsStates) {
  SimulatedClock clock;
  CircuitBreakerRegistry registry(clock);
  auto& llm = registry.get_or_create("llm_primary", CircuitBreakerConfig::seed_llm_api());
  auto& tools = registry.get_or_create("tools", CircuitBreakerConfig::seed_tool_calls());
  EXPECT_EQ(&registry.get_or_create("llm_primary", CircuitBreakerConfig{}), &llm);
  EXPECT_EQ(llm.config().failure_count_threshold, 5);  // kept its first config
  EXPECT_EQ(registry.find("tools"), &tools);
  EXPECT_EQ(registry.find("queue"), nullptr);
  for (int i = 0; i < 5; ++i) llm.on_error(llm.try_acquire(), kFast);
  const auto states = registry.states();
  ASSERT_EQ(states.size(), 2u);
  EXPECT_EQ(states.at("llm_primary"), CircuitState::kOpen);
  EXPECT_EQ(states.at("tools"), CircuitState::kClosed);
  EXPECT_EQ(registry.metrics().at("llm_primary").total_failed, 5u);
}

TEST(CircuitBreakerRegistry, ListenerReceivesTransitionsOfEveryBreaker) {
  SimulatedClock clock;
  CircuitBreakerRegistry registry(clock);
  auto& before = registry.get_or_create("store", count_window(1, 1, 50));
  std::vector<std::string> seen;
  registry.add_listener([&](const CircuitTransition& t) {
    seen.push_back(t.breaker + ":" + std::string(to_string(t.to)));
    registry.states();  // calling back into the registry is allowed
  });
  auto& after = registry.get_or_create("queue", count_window(1, 1, 50));
  before.on_error(before.try_acquire(), kFast);
  after.on_error(after.try_acquire(), kFast);
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0], "store:OPEN");
  EXPECT_EQ(seen[1], "queue:OPEN");
}

}  // namespace
}  // namespace lab::resilience
