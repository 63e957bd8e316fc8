#include "mocks/llm/latency.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include <gtest/gtest.h>

namespace lab::mocks::llm {
namespace {

double median_of(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

TEST(Distribution, ConstantAlwaysGivesTheValueAndDrawsNothing) {
  Rng rng(7);
  Rng untouched(7);
  const Distribution d = Distribution::constant(12.5);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(d.sample(rng), 12.5);
  EXPECT_EQ(rng.next(), untouched.next());
}

TEST(Distribution, NormalMatchesMeanAndStddev) {
  Rng rng(42);
  const Distribution d = Distribution::normal(20.0, 2.0);
  std::vector<double> v;
  double sum = 0.0;
  double sq = 0.0;
  for (int i = 0; i < 100'000; ++i) {
    const double x = d.sample(rng);
    v.push_back(x);
    sum += x;
    sq += x * x;
  }
  const double mean = sum / v.size();
  const double stddev = std::sqrt(sq / v.size() - mean * mean);
  EXPECT_NEAR(mean, 20.0, 0.05);
  EXPECT_NEAR(stddev, 2.0, 0.05);
  EXPECT_NEAR(median_of(v), 20.0, 0.05);
}

TEST(Distribution, LogNormalMatchesMeanAndHasItsMedian) {
  Rng rng(42);
  const Distribution d = Distribution::log_normal(150.0, 75.0);
  std::vector<double> v;
  double sum = 0.0;
  for (int i = 0; i < 200'000; ++i) {
    v.push_back(d.sample(rng));
    sum += v.back();
  }
  EXPECT_NEAR(sum / v.size(), 150.0, 1.5);
  EXPECT_NEAR(median_of(v), d.median(), 1.5);
  EXPECT_LT(d.median(), 150.0);  // right-skewed
  EXPECT_GT(*std::min_element(v.begin(), v.end()), 0.0);
}

TEST(Distribution, DrawsAreClampedToMinAndMax) {
  Rng rng(1);
  Distribution d = Distribution::normal(10.0, 50.0);
  d.min = 5.0;
  d.max = 15.0;
  for (int i = 0; i < 10'000; ++i) {
    const double x = d.sample(rng);
    ASSERT_GE(x, 5.0);
    ASSERT_LE(x, 15.0);
  }
}

TEST(Distribution, SameSeedSameDraws) {
  Rng a(99);
  Rng b(99);
  Rng c(100);
  const Distribution d = Distribution::log_normal(12.0, 3.0);
  bool differs = false;
  for (int i = 0; i < 100; ++i) {
    const double x = d.sample(a);
    EXPECT_EQ(x, d.sample(b));
    differs = differs || x != d.sample(c);
  }
  EXPECT_TRUE(differs);
}

TEST(LoadFactor, LinearFromOneSequenceToAFullBatch) {
  LoadProfile load;
  load.max_num_seqs = 101;
  load.time_factor_under_load = 3.0;
  EXPECT_DOUBLE_EQ(load_factor(load, 0), 1.0);
  EXPECT_DOUBLE_EQ(load_factor(load, 1), 1.0);
  EXPECT_DOUBLE_EQ(load_factor(load, 51), 2.0);
  EXPECT_DOUBLE_EQ(load_factor(load, 101), 3.0);
  EXPECT_DOUBLE_EQ(load_factor(load, 500), 3.0);  // never beyond the full-batch factor
  load.max_num_seqs = 1;
  EXPECT_DOUBLE_EQ(load_factor(load, 1), 1.0);
}

TEST(LatencyPlan, TtftIsBasePlusPrefillTimesLoadAndMultiplier) {
  LatencyPlan plan{Distribution::constant(30.0), 0.25, Distribution::constant(10.0), 2.0};
  LoadProfile load;
  load.max_num_seqs = 3;
  load.time_factor_under_load = 2.0;
  Rng rng(1);
  // (30 + 0.25 × 200) × 1 × 2 = 160 ms at one running sequence.
  EXPECT_EQ(plan.ttft(rng, 200, load, 1), Millis(160));
  // With 2 of 3 slots in use the factor is 1.5: 240 ms.
  EXPECT_EQ(plan.ttft(rng, 200, load, 2), Millis(240));
  EXPECT_EQ(plan.itl(rng, load, 3), Millis(40));  // 10 × 2 (full) × 2 (multiplier)
}

TEST(TokenPacer, DeadlinesAreAbsoluteSoLatenessDoesNotAccumulate) {
  SimulatedClock clock;
  const TimePoint start = clock.now();
  TokenPacer pacer(start + Millis(100));
  // A stream whose every wake-up is 3 ms late: the deadlines stay on the 20 ms grid.
  for (int k = 0; k < 50; ++k) {
    clock.set(pacer.deadline() + Millis(3));
    EXPECT_EQ(pacer.deadline(), start + Millis(100) + Millis(20) * k);
    EXPECT_EQ(pacer.lateness(clock.now()), Millis(3));
    pacer.advance(Millis(20));
  }
  // Early is not late.
  EXPECT_EQ(pacer.lateness(pacer.deadline() - Millis(1)), Nanos(0));
}

TEST(TokenPacer, CatchesUpAfterAStall) {
  SimulatedClock clock;
  TokenPacer pacer(clock.now() + Millis(10));
  clock.advance(Millis(100));  // a 90 ms stall before token 0
  int due = 0;
  while (pacer.deadline() <= clock.now()) {  // tokens already due go out at once
    ++due;
    pacer.advance(Millis(20));
  }
  EXPECT_EQ(due, 5);  // deadlines 10, 30, 50, 70, 90 ms
  EXPECT_EQ(pacer.deadline() - (clock.now() - Millis(100)), Millis(110));
}

TEST(OutputLength, FollowsTheProfileAndIsCutAtMaxTokens) {
  OutputProfile profile;
  profile.tokens = Distribution::constant(100.0);
  Rng rng(3);
  OutputLength out = output_length(profile, rng, std::nullopt, false, std::nullopt);
  EXPECT_EQ(out.tokens, 100);
  EXPECT_EQ(out.finish, FinishReason::kStop);
  out = output_length(profile, rng, 40, false, std::nullopt);
  EXPECT_EQ(out.tokens, 40);
  EXPECT_EQ(out.finish, FinishReason::kLength);
  out = output_length(profile, rng, 400, false, std::nullopt);
  EXPECT_EQ(out.tokens, 100);
  EXPECT_EQ(out.finish, FinishReason::kStop);
}

TEST(OutputLength, IgnoreEosAndUseMaxTokensGiveExactlyMaxTokens) {
  OutputProfile profile;
  profile.tokens = Distribution::constant(10.0);
  Rng rng(3);
  EXPECT_EQ(output_length(profile, rng, 300, true, std::nullopt).tokens, 300);
  profile.use_max_tokens = true;
  EXPECT_EQ(output_length(profile, rng, 250, false, std::nullopt).tokens, 250);
  EXPECT_EQ(output_length(profile, rng, std::nullopt, false, std::nullopt).tokens, 10);
}

TEST(OutputLength, PinnedCountWinsButStillRespectsMaxTokens) {
  OutputProfile profile;
  Rng rng(3);
  OutputLength out = output_length(profile, rng, std::nullopt, false, 7);
  EXPECT_EQ(out.tokens, 7);
  EXPECT_EQ(out.finish, FinishReason::kStop);
  out = output_length(profile, rng, 5, false, 7);
  EXPECT_EQ(out.tokens, 5);
  EXPECT_EQ(out.finish, FinishReason::kLength);
}

TEST(DistKind, NamesRoundTrip) {
  for (DistKind k : {DistKind::kConstant, DistKind::kNormal, DistKind::kLogNormal}) {
    EXPECT_EQ(dist_kind_from(to_string(k)), k);
  }
  EXPECT_FALSE(dist_kind_from("gamma"));
}

}  // namespace
}  // namespace lab::mocks::llm
