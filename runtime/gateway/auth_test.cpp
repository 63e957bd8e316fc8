#include "runtime/gateway/auth.hpp"

#include <gtest/gtest.h>

#include "common/jwt/jwt.hpp"
#include "runtime/gateway/rate_limiter.hpp"

namespace lab::runtime {
namespace {

std::string bearer(std::string_view sub, std::string_view secret, std::optional<std::int64_t> exp) {
  jwt::Claims c;
  c.sub = std::string(sub);
  c.exp = exp;
  return "Bearer " + jwt::sign_hs256(c, secret);
}

TEST(Authenticator, AcceptsAValidBearerTokenAndNamesItsSubject) {
  Authenticator auth("s3cret");
  std::string why;
  EXPECT_EQ(auth.user_of(bearer("alice", "s3cret", 2000), 1000, &why).value_or(""), "alice");
  EXPECT_EQ(auth.user_of(bearer("bob", "s3cret", std::nullopt), 1000, &why).value_or(""), "bob");
}

TEST(Authenticator, RefusesMissingForeignAndExpiredTokensEvenOnceCached) {
  Authenticator auth("s3cret");
  std::string why;
  EXPECT_FALSE(auth.user_of("", 1000, &why));
  EXPECT_EQ(why, "missing bearer token");
  EXPECT_FALSE(auth.user_of("Token abc", 1000, &why));
  EXPECT_FALSE(auth.user_of(bearer("alice", "other", 2000), 1000, &why));
  EXPECT_NE(why.find("bad_signature"), std::string::npos) << why;
  const std::string token = bearer("alice", "s3cret", 2000);
  ASSERT_TRUE(auth.user_of(token, 1999, &why));  // verified and cached
  EXPECT_FALSE(auth.user_of(token, 2000, &why));  // exp still applies to the cached token
  // Another authenticator (another secret) does not see this one's cache.
  Authenticator other("different");
  EXPECT_FALSE(other.user_of(bearer("alice", "s3cret", 3000), 1000, &why));
  ASSERT_TRUE(auth.user_of(bearer("carol", "s3cret", 3000), 1000, &why));
  EXPECT_FALSE(other.user_of(bearer("carol", "s3cret", 3000), 1000, &why));
}

TEST(Authenticator, TaskIdsNameTheirOwner) {
  Authenticator auth("s3cret");
  const std::string id = auth.make_task_id("alice");
  EXPECT_EQ(id.size(), 49u);
  EXPECT_TRUE(auth.task_owned_by(id, "alice"));
  EXPECT_FALSE(auth.task_owned_by(id, "bob"));
  EXPECT_FALSE(Authenticator("other").task_owned_by(id, "alice"));
  EXPECT_FALSE(auth.task_owned_by(id.substr(1), "alice"));
  EXPECT_FALSE(auth.task_owned_by("x" + id.substr(1), "alice"));
  std::string tampered = id;
  tampered[5] = tampered[5] == 'a' ? 'b' : 'a';
  EXPECT_FALSE(auth.task_owned_by(tampered, "alice"));
  EXPECT_NE(auth.make_task_id("alice"), id);
}

TEST(UserRateLimiter, AllowsTheBurstThenRefillsAtTheRatePerUser) {
  SimulatedClock clock;
  UserRateLimiter limiter(2.0, 3.0, clock);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(limiter.admit("u").allowed);
  const RateDecision refused = limiter.admit("u");
  EXPECT_FALSE(refused.allowed);
  EXPECT_EQ(refused.retry_after, Millis(500));
  EXPECT_TRUE(limiter.admit("v").allowed);
  clock.advance(Millis(499));
  EXPECT_FALSE(limiter.admit("u").allowed);
  clock.advance(Millis(1));
  EXPECT_TRUE(limiter.admit("u").allowed);
  EXPECT_EQ(limiter.tracked(), 2u);
  clock.advance(Seconds(10));
  EXPECT_EQ(limiter.prune(), 2u);
  EXPECT_EQ(limiter.tracked(), 0u);
}

TEST(UserRateLimiter, ZeroRateMeansUnlimited) {
  SimulatedClock clock;
  UserRateLimiter limiter(0, 1, clock);
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(limiter.admit("u").allowed);
  EXPECT_EQ(limiter.tracked(), 0u);
}

}  // namespace
}  // namespace lab::runtime
