// RedisLockService and RedisRateLimiter against the real Redis of scripts/services: the in-memory
// lock service's contract cases (TTLs on Redis's clock: short TTLs and bounded waits on the
// condition), plus two processes (service instances) contending for the same agents.

#include "runtime/locks/redis/redis_lock_service.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "runtime/locks/redis/redis_rate_limiter.hpp"
#include "runtime/redis/testing/redis_testing.hpp"

namespace lab::runtime {
namespace {

using redis::RedisPool;

constexpr Nanos kTtl = Seconds(30);
constexpr Nanos kShortTtl = Millis(150);

class RedisLockTest : public ::testing::Test {
 protected:
  void TearDown() override {
    if (pool_) redis::testing::delete_keys(*pool_, prefix_);
  }
  void SetUp() override {
    std::string message;
    auto options = redis::testing::options_from_env(message);
    if (!options.ok()) GTEST_FAIL() << message;
    options_ = *options;
    pool_ = std::make_unique<RedisPool>(options_, redis::RedisPoolOptions{}, SteadyClock::instance());
    prefix_ = redis::testing::unique_prefix(::testing::UnitTest::GetInstance()->current_test_info()->name());
  }
  // Takes the lock as soon as its previous TTL ran out on the server (bounded wait).
  Result<LockGrant> acquire_when_free(LockService& locks, std::string_view agent, std::string_view owner) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    for (;;) {
      auto g = locks.try_acquire(agent, owner, kTtl);
      if (g.ok() || g.error() != Errc::kLockHeld || std::chrono::steady_clock::now() >= deadline) return g;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  redis::RedisOptions options_;
  std::unique_ptr<RedisPool> pool_;
  std::string prefix_;
  SimulatedClock clock_;  // stamps expires_at only
};

TEST_F(RedisLockTest, GrantsIncreasingTokensByOnePerAcquire) {
  RedisLockService locks({prefix_}, *pool_, clock_);
  auto a = locks.try_acquire("agent-1", "w1", kTtl);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->fence, 1u);
  EXPECT_EQ(a->expires_at, clock_.now() + kTtl);
  ASSERT_TRUE(locks.release("agent-1", "w1", a->fence).ok());
  auto b = locks.try_acquire("agent-1", "w2", kTtl);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->fence, 2u);
  auto other = locks.try_acquire("agent-2", "w1", kTtl);
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(other->fence, 1u);
  auto pttl = pool_->command(redis::Args{"PTTL", locks.lock_key("agent-1")});
  EXPECT_GT(pttl->integer, 29'000);  // SET ... PX ttl
}

TEST_F(RedisLockTest, HeldLockRefusesEveryoneIncludingItsOwner) {
  RedisLockService locks({prefix_}, *pool_, clock_);
  ASSERT_TRUE(locks.try_acquire("a", "w1", kTtl).ok());
  EXPECT_EQ(locks.try_acquire("a", "w2", kTtl).error(), Errc::kLockHeld);
  EXPECT_EQ(locks.try_acquire("a", "w1", kTtl).error(), Errc::kLockHeld);
}

TEST_F(RedisLockTest, ExpiredLockIsTakenOverAndOldHolderIsFencedOut) {
  RedisLockService locks({prefix_}, *pool_, clock_);
  const auto first = locks.try_acquire("a", "w1", kShortTtl);
  ASSERT_TRUE(first.ok());
  const auto second = acquire_when_free(locks, "a", "w2");
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->fence, first->fence + 1);
  EXPECT_EQ(locks.renew("a", "w1", first->fence, kTtl).error(), Errc::kLockLost);
  EXPECT_EQ(locks.release("a", "w1", first->fence).error(), Errc::kLockLost);
  EXPECT_TRUE(locks.renew("a", "w2", second->fence, kTtl).ok());
}

TEST_F(RedisLockTest, RenewExtendsAndKeepsToken) {
  RedisLockService locks({prefix_}, *pool_, clock_);
  const auto g = locks.try_acquire("a", "w1", Millis(300));
  ASSERT_TRUE(g.ok());
  const auto r = locks.renew("a", "w1", g->fence, kTtl);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->fence, g->fence);
  EXPECT_EQ(r->expires_at, clock_.now() + kTtl);
  auto pttl = pool_->command(redis::Args{"PTTL", locks.lock_key("a")});
  EXPECT_GT(pttl->integer, 29'000);
  EXPECT_EQ(locks.try_acquire("a", "w2", kTtl).error(), Errc::kLockHeld);
  EXPECT_EQ(locks.renew("a", "w1", g->fence + 1, kTtl).error(), Errc::kLockLost);
  EXPECT_EQ(locks.renew("a", "w2", g->fence, kTtl).error(), Errc::kLockLost);
}

TEST_F(RedisLockTest, RenewAfterExpiryWorksWhileNobodyTookIt) {
  RedisLockService locks({prefix_}, *pool_, clock_);
  const auto g = locks.try_acquire("a", "w1", kShortTtl);
  ASSERT_TRUE(g.ok());
  // Wait (bounded) for the key to expire on the server.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (pool_->command(redis::Args{"EXISTS", locks.lock_key("a")})->integer == 1) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_TRUE(locks.renew("a", "w1", g->fence, kTtl).ok());
  EXPECT_EQ(locks.try_acquire("a", "w2", kTtl).error(), Errc::kLockHeld);
}

TEST_F(RedisLockTest, ReleaseIsIdempotent) {
  RedisLockService locks({prefix_}, *pool_, clock_);
  const auto g = locks.try_acquire("a", "w1", kTtl);
  ASSERT_TRUE(g.ok());
  EXPECT_TRUE(locks.release("a", "w1", g->fence).ok());
  EXPECT_TRUE(locks.release("a", "w1", g->fence).ok());
  EXPECT_TRUE(locks.release("never-locked", "w1", 1).ok());
  EXPECT_EQ(locks.renew("a", "w1", g->fence, kTtl).error(), Errc::kLockLost);
  EXPECT_TRUE(locks.try_acquire("a", "w2", kTtl).ok());
}

TEST_F(RedisLockTest, RejectsBadArguments) {
  RedisLockService locks({prefix_}, *pool_, clock_);
  EXPECT_EQ(locks.try_acquire("", "w1", kTtl).error(), Errc::kInvalidArgument);
  EXPECT_EQ(locks.try_acquire("a", "", kTtl).error(), Errc::kInvalidArgument);
  EXPECT_EQ(locks.try_acquire("a", "w1", Nanos::zero()).error(), Errc::kInvalidArgument);
  EXPECT_EQ(locks.renew("a", "w1", 1, Nanos::zero()).error(), Errc::kInvalidArgument);
}

TEST_F(RedisLockTest, OwnersMayContainTheSeparator) {
  RedisLockService locks({prefix_}, *pool_, clock_);
  const auto g = locks.try_acquire("a", "host:1:worker", kTtl);
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(locks.renew("a", "host:1:worker", g->fence, kTtl)->fence, g->fence);
  EXPECT_EQ(locks.release("a", "host:1", g->fence).error(), Errc::kLockLost);
  EXPECT_TRUE(locks.release("a", "host:1:worker", g->fence).ok());
}

TEST_F(RedisLockTest, ConcurrentAcquirersInTwoProcessesGetDistinctTokensAndOneHolderAtATime) {
  RedisPool other_pool(options_, {}, SteadyClock::instance());
  RedisLockService a({prefix_}, *pool_, clock_);
  RedisLockService b({prefix_}, other_pool, clock_);
  constexpr int kThreads = 4;
  constexpr int kRounds = 300;
  std::atomic<int> holders{0};
  std::atomic<int> overlaps{0};
  std::atomic<std::uint64_t> grants{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      LockService& locks = t % 2 == 0 ? static_cast<LockService&>(a) : b;
      const std::string owner = "w" + std::to_string(t);
      for (int i = 0; i < kRounds; ++i) {
        auto g = locks.try_acquire("shared", owner, kTtl);
        if (!g.ok()) {
          ASSERT_EQ(g.error(), Errc::kLockHeld);
          continue;
        }
        if (holders.fetch_add(1) != 0) overlaps.fetch_add(1);
        grants.fetch_add(1);
        holders.fetch_sub(1);
        ASSERT_TRUE(locks.release("shared", owner, g->fence).ok());
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(overlaps.load(), 0);
  const auto last = a.try_acquire("shared", "final", kTtl);
  ASSERT_TRUE(last.ok());
  EXPECT_EQ(last->fence, grants.load() + 1);
}

TEST(RedisLockChaos, ReportsUnavailableWhileRedisIsDownAndKeepsTokensAcrossARestart) {
  redis::testing::PrivateRedis server;
  std::string message;
  ASSERT_TRUE(server.start(message).ok()) << message;
  redis::RedisOptions o = server.options();
  o.backoff_initial = Millis(1);
  o.backoff_max = Millis(1);
  RedisPool pool(o, {}, SteadyClock::instance());
  SimulatedClock clock;
  RedisLockService locks({}, pool, clock);
  const auto g = locks.try_acquire("a", "w1", kTtl);
  ASSERT_TRUE(g.ok());
  ASSERT_TRUE(locks.release("a", "w1", g->fence).ok());
  server.stop();
  EXPECT_EQ(locks.try_acquire("a", "w1", kTtl).error(), Errc::kUnavailable);
  ASSERT_TRUE(server.restart(message).ok()) << message;
  // Tokens never go back: the append-only file kept the counter.
  const auto after = locks.try_acquire("a", "w2", kTtl);
  ASSERT_TRUE(after.ok()) << after.error().message();
  EXPECT_EQ(after->fence, g->fence + 1);
}

// ---- rate limiter -------------------------------------------------------------------------

TEST_F(RedisLockTest, RateLimiterCountsAcrossProcessesAndRefusesOverTheLimit) {
  RedisPool other_pool(options_, {}, SteadyClock::instance());
  RedisRateLimiter gw1({prefix_, 3, Millis(30'000)}, *pool_);
  RedisRateLimiter gw2({prefix_, 3, Millis(30'000)}, other_pool);
  EXPECT_TRUE(gw1.hit("u1")->allowed);
  EXPECT_TRUE(gw2.hit("u1")->allowed);
  const auto third = gw1.hit("u1");
  ASSERT_TRUE(third.ok());
  EXPECT_TRUE(third->allowed);
  EXPECT_EQ(third->count, 3u);
  const auto refused = gw2.hit("u1");
  ASSERT_TRUE(refused.ok());
  EXPECT_FALSE(refused->allowed);
  EXPECT_EQ(refused->count, 3u);  // a refused request is not counted
  EXPECT_GT(refused->retry_after, Millis(29'000));
  EXPECT_LE(refused->retry_after, Millis(30'000));
  EXPECT_TRUE(gw1.hit("u2")->allowed);  // per subject
  EXPECT_FALSE(gw1.hit("u2", 3)->allowed);  // cost counts
  EXPECT_EQ(gw1.hit("", 1).error(), Errc::kInvalidArgument);
}

TEST_F(RedisLockTest, RateLimiterWindowEndsWithItsTtl) {
  RedisRateLimiter limiter({prefix_, 1, Millis(200)}, *pool_);
  const auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(limiter.hit("u")->allowed);
  auto refused = limiter.hit("u");
  ASSERT_FALSE(refused->allowed);
  EXPECT_LE(refused->retry_after, Millis(200));
  // Allowed again once the window's key expired (bounded wait on the condition).
  for (;;) {
    auto r = limiter.hit("u");
    ASSERT_TRUE(r.ok());
    if (r->allowed) break;
    ASSERT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(180));
}

}  // namespace
}  // namespace lab::runtime
