#include "mocks/llm/batch_slots.hpp"

#include <gtest/gtest.h>

namespace lab::mocks::llm {
namespace {

std::shared_ptr<BatchSlots::Waiter> waiter(int* woken) {
  auto w = std::make_shared<BatchSlots::Waiter>();
  w->wake = [woken] { ++*woken; };
  return w;
}

TEST(BatchSlots, RunsUpToCapacityQueuesThenRejects) {
  BatchSlots slots(2, 1);
  int woken = 0;
  EXPECT_EQ(slots.acquire(waiter(&woken)), BatchSlots::Admit::kRunning);
  EXPECT_EQ(slots.acquire(waiter(&woken)), BatchSlots::Admit::kRunning);
  auto queued = waiter(&woken);
  EXPECT_EQ(slots.acquire(queued), BatchSlots::Admit::kQueued);
  EXPECT_EQ(slots.acquire(waiter(&woken)), BatchSlots::Admit::kRejected);
  EXPECT_EQ(slots.running(), 2);
  EXPECT_EQ(slots.waiting(), 1);
}

TEST(BatchSlots, ReleaseHandsTheSlotToTheOldestWaiter) {
  BatchSlots slots(1, 5);
  int woken_a = 0;
  int woken_b = 0;
  ASSERT_EQ(slots.acquire(waiter(&woken_a)), BatchSlots::Admit::kRunning);
  auto a = waiter(&woken_a);
  auto b = waiter(&woken_b);
  ASSERT_EQ(slots.acquire(a), BatchSlots::Admit::kQueued);
  ASSERT_EQ(slots.acquire(b), BatchSlots::Admit::kQueued);
  slots.release();
  EXPECT_TRUE(a->granted);
  EXPECT_FALSE(b->granted);
  EXPECT_EQ(woken_a, 1);
  EXPECT_EQ(woken_b, 0);
  EXPECT_EQ(slots.running(), 1);  // passed on, not freed
  EXPECT_EQ(slots.waiting(), 1);
  slots.release();
  EXPECT_TRUE(b->granted);
  slots.release();
  EXPECT_EQ(slots.running(), 0);
}

TEST(BatchSlots, CancelWithdrawsAQueuedWaiterUnlessGranted) {
  BatchSlots slots(1, 5);
  int woken = 0;
  ASSERT_EQ(slots.acquire(waiter(&woken)), BatchSlots::Admit::kRunning);
  auto a = waiter(&woken);
  auto b = waiter(&woken);
  slots.acquire(a);
  slots.acquire(b);
  EXPECT_TRUE(slots.cancel(a));
  EXPECT_EQ(slots.waiting(), 1);
  slots.release();
  EXPECT_TRUE(b->granted);
  EXPECT_FALSE(slots.cancel(b));  // already holds the slot: the caller must release it
}

TEST(BatchSlots, CloseRefusesEverything) {
  BatchSlots slots(4, 4);
  slots.close();
  int woken = 0;
  EXPECT_EQ(slots.acquire(waiter(&woken)), BatchSlots::Admit::kRejected);
}

}  // namespace
}  // namespace lab::mocks::llm
