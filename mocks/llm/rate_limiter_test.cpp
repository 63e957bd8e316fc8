#include "mocks/llm/rate_limiter.hpp"

#include <gtest/gtest.h>

namespace lab::mocks::llm {
namespace {

std::string header(const HeaderList& headers, std::string_view name) {
  for (const auto& [n, v] : headers) {
    if (n == name) return v;
  }
  return "<absent>";
}

TEST(RateLimiter, UnlimitedKeysAreNotTracked) {
  SimulatedClock clock;
  RateLimiter limiter(clock, {}, {});
  for (int i = 0; i < 1000; ++i) {
    const RateLimitStatus s = limiter.admit("k", 1'000'000);
    ASSERT_TRUE(s.allowed);
    ASSERT_FALSE(s.limited);
  }
}

TEST(RateLimiter, RequestsPerMinuteRefillContinuously) {
  SimulatedClock clock;
  RateLimiter limiter(clock, {}, {{"sk-a", {3, 0}}});
  for (int i = 0; i < 3; ++i) {
    const RateLimitStatus s = limiter.admit("sk-a", 10);
    EXPECT_TRUE(s.allowed);
    EXPECT_EQ(s.remaining_requests, 2 - i);
  }
  RateLimitStatus refused = limiter.admit("sk-a", 10);
  EXPECT_FALSE(refused.allowed);
  EXPECT_EQ(refused.reason, "requests");
  EXPECT_EQ(refused.retry_after, Seconds(20));  // 3 per minute: one every 20 s
  EXPECT_EQ(refused.reset_requests, Seconds(60));
  clock.advance(Seconds(19));
  EXPECT_FALSE(limiter.admit("sk-a", 10).allowed);
  clock.advance(Seconds(1));
  EXPECT_TRUE(limiter.admit("sk-a", 10).allowed);
  // Other keys are independent (and unlimited here: no default).
  EXPECT_TRUE(limiter.admit("sk-b", 10).allowed);
}

TEST(RateLimiter, TokensPerMinuteAndTooLarge) {
  SimulatedClock clock;
  RateLimiter limiter(clock, {0, 1000}, {});
  EXPECT_TRUE(limiter.admit("", 600).allowed);
  RateLimitStatus s = limiter.admit("", 600);
  EXPECT_FALSE(s.allowed);
  EXPECT_EQ(s.reason, "tokens");
  EXPECT_EQ(s.remaining_tokens, 400);
  EXPECT_EQ(s.retry_after, Seconds(12));  // 200 tokens at 1000/min
  s = limiter.admit("", 5000);
  EXPECT_FALSE(s.allowed);
  EXPECT_TRUE(s.too_large);
}

TEST(RateLimiter, HeadersAsOpenAiSendsThem) {
  SimulatedClock clock;
  RateLimiter limiter(clock, {60, 150000}, {});
  HeaderList ok;
  add_openai_rate_headers(limiter.admit("k", 16), ok);
  EXPECT_EQ(header(ok, "x-ratelimit-limit-requests"), "60");
  EXPECT_EQ(header(ok, "x-ratelimit-remaining-requests"), "59");
  EXPECT_EQ(header(ok, "x-ratelimit-reset-requests"), "1s");
  EXPECT_EQ(header(ok, "x-ratelimit-limit-tokens"), "150000");
  EXPECT_EQ(header(ok, "x-ratelimit-remaining-tokens"), "149984");
  EXPECT_EQ(header(ok, "x-ratelimit-reset-tokens"), "6ms");
  EXPECT_EQ(header(ok, "retry-after"), "<absent>");
  for (int i = 0; i < 59; ++i) limiter.admit("k", 1);
  HeaderList refused;
  add_openai_rate_headers(limiter.admit("k", 1), refused);
  EXPECT_EQ(header(refused, "retry-after"), "1");
  EXPECT_EQ(header(refused, "retry-after-ms"), "1000");
}

TEST(RateLimiter, HeadersAsAnthropicSendsThem) {
  SimulatedClock clock;
  RateLimiter limiter(clock, {1, 0}, {});
  limiter.admit("k", 1);
  HeaderList h;
  add_anthropic_rate_headers(limiter.admit("k", 1), h,
                             std::chrono::system_clock::time_point(std::chrono::seconds(1700000000)));
  EXPECT_EQ(header(h, "anthropic-ratelimit-requests-limit"), "1");
  EXPECT_EQ(header(h, "anthropic-ratelimit-requests-remaining"), "0");
  EXPECT_EQ(header(h, "anthropic-ratelimit-requests-reset"), "2023-11-14T22:14:20Z");  // +60 s
  EXPECT_EQ(header(h, "retry-after"), "60");
}

TEST(GoDuration, FormatsLikeOpenAi) {
  EXPECT_EQ(go_duration(Millis(20)), "20ms");
  EXPECT_EQ(go_duration(Seconds(1)), "1s");
  EXPECT_EQ(go_duration(Millis(1500)), "1.5s");
  EXPECT_EQ(go_duration(Seconds(360)), "6m0s");
  EXPECT_EQ(go_duration(Seconds(3725)), "1h2m5s");
}

}  // namespace
}  // namespace lab::mocks::llm
