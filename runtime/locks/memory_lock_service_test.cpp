#include "runtime/locks/memory_lock_service.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

namespace lab::runtime {
namespace {

constexpr Nanos kTtl = Seconds(30);

TEST(MemoryLockService, GrantsIncreasingTokensByOnePerAcquire) {
  SimulatedClock clock;
  MemoryLockService locks(clock);
  auto a = locks.try_acquire("agent-1", "w1", kTtl);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->fence, 1u);
  EXPECT_EQ(a->expires_at, clock.now() + kTtl);
  ASSERT_TRUE(locks.release("agent-1", "w1", a->fence).ok());
  auto b = locks.try_acquire("agent-1", "w2", kTtl);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->fence, 2u);
  // Tokens are per agent.
  auto other = locks.try_acquire("agent-2", "w1", kTtl);
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(other->fence, 1u);
}

TEST(MemoryLockService, HeldLockRefusesEveryoneIncludingItsOwner) {
  SimulatedClock clock;
  MemoryLockService locks(clock);
  ASSERT_TRUE(locks.try_acquire("a", "w1", kTtl).ok());
  EXPECT_EQ(locks.try_acquire("a", "w2", kTtl).error(), Errc::kLockHeld);
  EXPECT_EQ(locks.try_acquire("a", "w1", kTtl).error(), Errc::kLockHeld);
  clock.advance(kTtl - Nanos(1));
  EXPECT_EQ(locks.try_acquire("a", "w2", kTtl).error(), Errc::kLockHeld);
}

TEST(MemoryLockService, ExpiredLockIsTakenOverAndOldHolderIsFencedOut) {
  SimulatedClock clock;
  MemoryLockService locks(clock);
  const auto first = locks.try_acquire("a", "w1", kTtl);
  ASSERT_TRUE(first.ok());
  clock.advance(kTtl);
  const auto second = locks.try_acquire("a", "w2", kTtl);
  ASSERT_TRUE(second.ok());
  EXPECT_GT(second->fence, first->fence);
  EXPECT_EQ(locks.renew("a", "w1", first->fence, kTtl).error(), Errc::kLockLost);
  EXPECT_EQ(locks.release("a", "w1", first->fence).error(), Errc::kLockLost);
  EXPECT_TRUE(locks.renew("a", "w2", second->fence, kTtl).ok());
}

TEST(MemoryLockService, RenewExtendsAndKeepsToken) {
  SimulatedClock clock;
  MemoryLockService locks(clock);
  const auto g = locks.try_acquire("a", "w1", kTtl);
  ASSERT_TRUE(g.ok());
  clock.advance(Seconds(20));
  const auto r = locks.renew("a", "w1", g->fence, kTtl);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->fence, g->fence);
  EXPECT_EQ(r->expires_at, clock.now() + kTtl);
  clock.advance(Seconds(20));  // 40 s after acquire, 20 s after renew: still held
  EXPECT_EQ(locks.try_acquire("a", "w2", kTtl).error(), Errc::kLockHeld);
  EXPECT_EQ(locks.renew("a", "w1", g->fence + 1, kTtl).error(), Errc::kLockLost);
}

TEST(MemoryLockService, RenewAfterExpiryWorksWhileNobodyTookIt) {
  SimulatedClock clock;
  MemoryLockService locks(clock);
  const auto g = locks.try_acquire("a", "w1", kTtl);
  ASSERT_TRUE(g.ok());
  clock.advance(kTtl * 2);
  EXPECT_TRUE(locks.renew("a", "w1", g->fence, kTtl).ok());
  EXPECT_EQ(locks.try_acquire("a", "w2", kTtl).error(), Errc::kLockHeld);
}

TEST(MemoryLockService, ReleaseIsIdempotent) {
  SimulatedClock clock;
  MemoryLockService locks(clock);
  const auto g = locks.try_acquire("a", "w1", kTtl);
  ASSERT_TRUE(g.ok());
  EXPECT_TRUE(locks.release("a", "w1", g->fence).ok());
  EXPECT_TRUE(locks.release("a", "w1", g->fence).ok());
  EXPECT_TRUE(locks.release("never-locked", "w1", 1).ok());
  EXPECT_EQ(locks.renew("a", "w1", g->fence, kTtl).error(), Errc::kLockLost);
}

TEST(MemoryLockService, RejectsBadArguments) {
  SimulatedClock clock;
  MemoryLockService locks(clock);
  EXPECT_EQ(locks.try_acquire("", "w1", kTtl).error(), Errc::kInvalidArgument);
  EXPECT_EQ(locks.try_acquire("a", "", kTtl).error(), Errc::kInvalidArgument);
  EXPECT_EQ(locks.try_acquire("a", "w1", Nanos::zero()).error(), Errc::kInvalidArgument);
}

TEST(MemoryLockService, ConcurrentAcquirersGetDistinctTokensAndOneHolderAtATime) {
  SimulatedClock clock;
  MemoryLockService locks(clock);
  constexpr int kThreads = 4;
  constexpr int kRounds = 2000;
  std::atomic<int> holders{0};
  std::atomic<int> overlaps{0};
  std::atomic<std::uint64_t> grants{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const std::string owner = "w" + std::to_string(t);
      for (int i = 0; i < kRounds; ++i) {
        auto g = locks.try_acquire("shared", owner, kTtl);
        if (!g.ok()) continue;
        if (holders.fetch_add(1) != 0) overlaps.fetch_add(1);
        grants.fetch_add(1);
        holders.fetch_sub(1);
        ASSERT_TRUE(locks.release("shared", owner, g->fence).ok());
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(overlaps.load(), 0);
  // The last token equals the number of grants: +1 per acquire, never reused.
  const auto last = locks.try_acquire("shared", "final", kTtl);
  ASSERT_TRUE(last.ok());
  EXPECT_EQ(last->fence, grants.load() + 1);
}

}  // namespace
}  // namespace lab::runtime
