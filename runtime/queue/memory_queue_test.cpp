#include "runtime/queue/memory_queue.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <string>
#include <thread>
#include <vector>

namespace lab::runtime {
namespace {

constexpr Nanos kLeaseTime = Seconds(30);
constexpr Nanos kNoWait = Nanos::zero();

Task make_task(std::string id, Priority p = Priority::kNormal, std::string agent = "agent-1") {
  return Task{std::move(id), std::move(agent), p, "{}"};
}

std::string lease_id(TaskQueue& q, std::string_view consumer = "w1") {
  auto l = q.lease(consumer, kLeaseTime, kNoWait);
  return l.ok() ? l->task.task_id : std::string("<") + std::string(to_string(static_cast<Errc>(l.error().value()))) + ">";
}

TEST(MemoryTaskQueue, HigherPriorityIsLeasedFirstAndFifoWithinPriority) {
  SimulatedClock clock;
  MemoryTaskQueue q({}, clock);
  ASSERT_TRUE(q.enqueue(make_task("n1", Priority::kNormal)).accepted());
  ASSERT_TRUE(q.enqueue(make_task("m1", Priority::kMedium)).accepted());
  ASSERT_TRUE(q.enqueue(make_task("h1", Priority::kHigh)).accepted());
  ASSERT_TRUE(q.enqueue(make_task("n2", Priority::kNormal)).accepted());
  ASSERT_TRUE(q.enqueue(make_task("h2", Priority::kHigh)).accepted());
  const auto s = q.stats();
  EXPECT_EQ(s.depth[0], 2u);
  EXPECT_EQ(s.depth[1], 1u);
  EXPECT_EQ(s.depth[2], 2u);
  std::vector<std::string> order;
  for (int i = 0; i < 5; ++i) order.push_back(lease_id(q));
  EXPECT_EQ(order, (std::vector<std::string>{"h1", "h2", "m1", "n1", "n2"}));
  EXPECT_EQ(lease_id(q), "<no_task>");
}

TEST(MemoryTaskQueue, RejectsOverBoundWithDepthAndAcceptsAgainAfterALease) {
  SimulatedClock clock;
  MemoryTaskQueue q({.max_depth = 3}, clock);
  for (int i = 0; i < 3; ++i) {
    const auto r = q.enqueue(make_task("t" + std::to_string(i)));
    ASSERT_TRUE(r.accepted());
    EXPECT_EQ(r.depth, static_cast<std::size_t>(i + 1));
  }
  const auto full = q.enqueue(make_task("t3", Priority::kHigh));
  EXPECT_FALSE(full.accepted());
  EXPECT_EQ(full.error, Errc::kQueueFull);
  EXPECT_EQ(full.depth, 3u);
  EXPECT_EQ(q.stats().rejected_full, 1u);
  // In-flight tasks do not count against the bound: one lease makes room.
  ASSERT_EQ(lease_id(q), "t0");
  EXPECT_TRUE(q.enqueue(make_task("t3")).accepted());
  EXPECT_EQ(q.stats().total_depth(), 3u);
  EXPECT_EQ(q.stats().in_flight, 1u);
}

TEST(MemoryTaskQueue, ExpiredLeaseIsRedeliveredToAnotherConsumer) {
  SimulatedClock clock;
  MemoryTaskQueue q({}, clock);
  ASSERT_TRUE(q.enqueue(make_task("t1")).accepted());
  auto first = q.lease("w1", kLeaseTime, kNoWait);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->delivery_count, 1u);
  EXPECT_EQ(first->expires_at, clock.now() + kLeaseTime);
  clock.advance(kLeaseTime - Nanos(1));
  EXPECT_EQ(q.lease("w2", kLeaseTime, kNoWait).error(), Errc::kNoTask);
  clock.advance(Nanos(1));  // w1 vanished: its lease runs out
  auto second = q.lease("w2", kLeaseTime, kNoWait);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->task.task_id, "t1");
  EXPECT_EQ(second->delivery_count, 2u);
  EXPECT_NE(second->receipt, first->receipt);
  // The vanished worker comes back: its ack must not take the task from w2.
  EXPECT_EQ(q.ack(first->receipt).error(), Errc::kLeaseLost);
  EXPECT_EQ(q.extend(first->receipt, kLeaseTime).error(), Errc::kLeaseLost);
  EXPECT_TRUE(q.ack(second->receipt).ok());
  const auto s = q.stats();
  EXPECT_EQ(s.redelivered, 1u);
  EXPECT_EQ(s.leased, 2u);
  EXPECT_EQ(s.acked, 1u);
  EXPECT_EQ(s.in_flight, 0u);
}

TEST(MemoryTaskQueue, RedeliveredTaskGoesAheadOfNewerTasks) {
  SimulatedClock clock;
  MemoryTaskQueue q({}, clock);
  ASSERT_TRUE(q.enqueue(make_task("old")).accepted());
  ASSERT_EQ(lease_id(q), "old");
  ASSERT_TRUE(q.enqueue(make_task("new")).accepted());
  clock.advance(kLeaseTime);
  EXPECT_EQ(lease_id(q), "old");
  EXPECT_EQ(lease_id(q), "new");
}

TEST(MemoryTaskQueue, DeadLettersAfterMaxDeliveries) {
  SimulatedClock clock;
  MemoryTaskQueue q({.max_deliveries = 3}, clock);
  ASSERT_TRUE(q.enqueue(make_task("poison")).accepted());
  for (std::uint32_t d = 1; d <= 3; ++d) {
    auto l = q.lease("w", kLeaseTime, kNoWait);
    ASSERT_TRUE(l.ok()) << d;
    EXPECT_EQ(l->delivery_count, d);
    clock.advance(kLeaseTime);
  }
  EXPECT_EQ(q.lease("w", kLeaseTime, kNoWait).error(), Errc::kNoTask);
  const auto dead = q.dead_letters(10);
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(dead[0].task.task_id, "poison");
  EXPECT_EQ(dead[0].delivery_count, 3u);
  EXPECT_EQ(dead[0].reason, "lease expired");
  const auto s = q.stats();
  EXPECT_EQ(s.dead_lettered, 1u);
  EXPECT_EQ(s.dead_letters, 1u);
  EXPECT_EQ(s.redelivered, 2u);
  EXPECT_EQ(s.total_depth(), 0u);
  EXPECT_EQ(s.in_flight, 0u);
}

TEST(MemoryTaskQueue, NackRequeuesAtTheFrontAndDeadLettersAtTheLimit) {
  SimulatedClock clock;
  MemoryTaskQueue q({.max_deliveries = 2}, clock);
  ASSERT_TRUE(q.enqueue(make_task("a")).accepted());
  ASSERT_TRUE(q.enqueue(make_task("b")).accepted());
  auto a1 = q.lease("w", kLeaseTime, kNoWait);
  ASSERT_TRUE(a1.ok());
  ASSERT_TRUE(q.nack(a1->receipt, Nanos::zero()).ok());
  auto a2 = q.lease("w", kLeaseTime, kNoWait);
  ASSERT_TRUE(a2.ok());
  EXPECT_EQ(a2->task.task_id, "a");
  EXPECT_EQ(a2->delivery_count, 2u);
  ASSERT_TRUE(q.nack(a2->receipt, Nanos::zero()).ok());  // second delivery: the limit
  EXPECT_EQ(lease_id(q), "b");
  ASSERT_EQ(q.dead_letters(10).size(), 1u);
  EXPECT_EQ(q.dead_letters(10)[0].reason, "nacked");
  EXPECT_EQ(q.stats().nacked, 2u);
}

TEST(MemoryTaskQueue, NackWithDelayHidesTheTaskUntilTheDelayPasses) {
  SimulatedClock clock;
  MemoryTaskQueue q({}, clock);
  ASSERT_TRUE(q.enqueue(make_task("t")).accepted());
  auto l = q.lease("w", kLeaseTime, kNoWait);
  ASSERT_TRUE(l.ok());
  ASSERT_TRUE(q.nack(l->receipt, Seconds(5)).ok());
  EXPECT_EQ(q.stats().total_depth(), 1u);  // waiting, just not visible
  EXPECT_EQ(q.lease("w", kLeaseTime, kNoWait).error(), Errc::kNoTask);
  clock.advance(Seconds(5));
  auto again = q.lease("w", kLeaseTime, kNoWait);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->delivery_count, 2u);
  EXPECT_EQ(q.stats().redelivered, 0u);  // a nack is not a vanished worker
}

TEST(MemoryTaskQueue, AckIsIdempotent) {
  SimulatedClock clock;
  MemoryTaskQueue q({}, clock);
  ASSERT_TRUE(q.enqueue(make_task("t")).accepted());
  auto l = q.lease("w", kLeaseTime, kNoWait);
  ASSERT_TRUE(l.ok());
  EXPECT_TRUE(q.ack(l->receipt).ok());
  EXPECT_TRUE(q.ack(l->receipt).ok());
  EXPECT_EQ(q.stats().acked, 1u);
  EXPECT_EQ(q.nack(l->receipt, Nanos::zero()).error(), Errc::kNotFound);
  EXPECT_EQ(q.extend(l->receipt, kLeaseTime).error(), Errc::kNotFound);
  clock.advance(kLeaseTime * 2);
  EXPECT_EQ(q.lease("w", kLeaseTime, kNoWait).error(), Errc::kNoTask);  // never redelivered
}

TEST(MemoryTaskQueue, MalformedReceiptsAreRejected) {
  SimulatedClock clock;
  MemoryTaskQueue q({}, clock);
  for (const char* r : {"", "1", "1.", ".1", "a.b", "0.1", "1.0", "1.1x", "-1.1"}) {
    EXPECT_EQ(q.ack(r).error(), Errc::kInvalidArgument) << r;
  }
}

TEST(MemoryTaskQueue, AckAfterExpiryButBeforeRedeliveryIsAccepted) {
  SimulatedClock clock;
  MemoryTaskQueue q({}, clock);
  ASSERT_TRUE(q.enqueue(make_task("t")).accepted());
  ASSERT_TRUE(q.enqueue(make_task("u")).accepted());
  auto l = q.lease("w1", kLeaseTime, kNoWait);
  ASSERT_TRUE(l.ok());
  clock.advance(kLeaseTime);
  // w2's lease reclaims t into the queue (and takes t again, ahead of u)... unless w1 acks first.
  EXPECT_TRUE(q.ack(l->receipt).ok());
  EXPECT_EQ(lease_id(q, "w2"), "u");
  EXPECT_EQ(lease_id(q, "w2"), "<no_task>");
}

TEST(MemoryTaskQueue, AckOfReclaimedButNotReleasedTaskRemovesIt) {
  SimulatedClock clock;
  MemoryTaskQueue q({}, clock);
  ASSERT_TRUE(q.enqueue(make_task("slow", Priority::kNormal)).accepted());
  auto slow = q.lease("w1", kLeaseTime, kNoWait);
  ASSERT_TRUE(slow.ok());
  ASSERT_TRUE(q.enqueue(make_task("urgent", Priority::kHigh)).accepted());
  clock.advance(kLeaseTime);
  EXPECT_EQ(lease_id(q, "w2"), "urgent");  // this lease reclaimed "slow" into the ready queue
  EXPECT_EQ(q.stats().total_depth(), 1u);
  EXPECT_TRUE(q.ack(slow->receipt).ok());  // w1 finished late but before anyone re-leased it
  EXPECT_EQ(q.stats().total_depth(), 0u);
  EXPECT_EQ(lease_id(q, "w2"), "<no_task>");
}

TEST(MemoryTaskQueue, ExtendKeepsTheLease) {
  SimulatedClock clock;
  MemoryTaskQueue q({}, clock);
  ASSERT_TRUE(q.enqueue(make_task("long-turn")).accepted());
  auto l = q.lease("w1", kLeaseTime, kNoWait);
  ASSERT_TRUE(l.ok());
  clock.advance(Seconds(20));
  const auto expiry = q.extend(l->receipt, kLeaseTime);
  ASSERT_TRUE(expiry.ok());
  EXPECT_EQ(*expiry, clock.now() + kLeaseTime);
  clock.advance(Seconds(20));  // past the first expiry
  EXPECT_EQ(q.lease("w2", kLeaseTime, kNoWait).error(), Errc::kNoTask);
  EXPECT_TRUE(q.ack(l->receipt).ok());
}

TEST(MemoryTaskQueue, CloseRefusesEnqueueAndDrainsWithoutWaiting) {
  SimulatedClock clock;
  MemoryTaskQueue q({}, clock);
  ASSERT_TRUE(q.enqueue(make_task("left")).accepted());
  q.close();
  EXPECT_EQ(q.enqueue(make_task("late")).error, Errc::kClosed);
  EXPECT_EQ(lease_id(q), "left");
  // A long wait returns at once: closed and drained.
  EXPECT_EQ(q.lease("w", kLeaseTime, Seconds(3600)).error(), Errc::kClosed);
}

TEST(MemoryTaskQueue, BlockedLeaseWakesOnEnqueue) {
  SimulatedClock clock;
  MemoryTaskQueue q({}, clock);
  std::atomic<bool> got{false};
  std::thread consumer([&] {
    auto l = q.lease("w", kLeaseTime, Seconds(60));
    got = l.ok() && l->task.task_id == "wake";
  });
  ASSERT_TRUE(q.enqueue(make_task("wake")).accepted());
  consumer.join();
  EXPECT_TRUE(got.load());
}

TEST(MemoryTaskQueue, BlockedLeaseWakesOnClose) {
  SimulatedClock clock;
  MemoryTaskQueue q({}, clock);
  std::error_code seen;
  std::thread consumer([&] { seen = q.lease("w", kLeaseTime, Seconds(60)).error(); });
  q.close();
  consumer.join();
  EXPECT_EQ(seen, Errc::kClosed);
}

TEST(MemoryTaskQueue, RejectsInvalidTasksAndArguments) {
  SimulatedClock clock;
  MemoryTaskQueue q({}, clock);
  EXPECT_EQ(q.enqueue(make_task("")).error, Errc::kInvalidArgument);
  EXPECT_EQ(q.enqueue(Task{"t", "", Priority::kHigh, ""}).error, Errc::kInvalidArgument);
  EXPECT_EQ(q.enqueue(Task{"t", "a", static_cast<Priority>(7), ""}).error, Errc::kInvalidArgument);
  EXPECT_EQ(q.lease("", kLeaseTime, kNoWait).error(), Errc::kInvalidArgument);
  EXPECT_EQ(q.lease("w", Nanos::zero(), kNoWait).error(), Errc::kInvalidArgument);
}

TEST(MemoryTaskQueue, DeadLetterListIsBounded) {
  SimulatedClock clock;
  MemoryTaskQueue q({.max_deliveries = 1, .max_dead_letters = 2}, clock);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(q.enqueue(make_task("d" + std::to_string(i))).accepted());
    auto l = q.lease("w", kLeaseTime, kNoWait);
    ASSERT_TRUE(l.ok());
    ASSERT_TRUE(q.dead_letter(l->receipt, "poison").ok());
  }
  const auto dead = q.dead_letters(10);
  ASSERT_EQ(dead.size(), 2u);
  EXPECT_EQ(dead[0].task.task_id, "d1");
  EXPECT_EQ(dead[1].task.task_id, "d2");
  EXPECT_EQ(dead[1].reason, "poison");
  EXPECT_EQ(q.stats().dead_lettered, 3u);
  EXPECT_EQ(q.dead_letters(1).size(), 1u);
}

TEST(MemoryTaskQueue, ConcurrentProducersAndConsumersDeliverEveryTaskExactlyOnce) {
  SimulatedClock clock;  // never advanced: no lease expires, so no redelivery is legitimate
  MemoryTaskQueue q({.max_depth = 100'000}, clock);
  constexpr int kProducers = 2;
  constexpr int kPerProducer = 5000;
  constexpr int kConsumers = 2;
  std::vector<std::vector<int>> seen(kConsumers);
  std::atomic<int> done_producers{0};
  std::vector<std::thread> threads;
  for (int p = 0; p < kProducers; ++p) {
    threads.emplace_back([&, p] {
      for (int i = 0; i < kPerProducer; ++i) {
        const int id = p * kPerProducer + i;
        const auto prio = static_cast<Priority>(id % 3);
        ASSERT_TRUE(q.enqueue(Task{std::to_string(id), "a", prio, ""}).accepted());
      }
      if (done_producers.fetch_add(1) + 1 == kProducers) q.close();
    });
  }
  for (int c = 0; c < kConsumers; ++c) {
    threads.emplace_back([&, c] {
      for (;;) {
        auto l = q.lease("w" + std::to_string(c), kLeaseTime, Seconds(10));
        if (!l.ok()) {
          ASSERT_EQ(l.error(), Errc::kClosed);
          return;
        }
        seen[c].push_back(std::stoi(l->task.task_id));
        ASSERT_TRUE(q.ack(l->receipt).ok());
      }
    });
  }
  for (auto& t : threads) t.join();
  std::vector<int> all;
  for (const auto& v : seen) all.insert(all.end(), v.begin(), v.end());
  std::sort(all.begin(), all.end());
  ASSERT_EQ(all.size(), static_cast<std::size_t>(kProducers * kPerProducer));
  for (int i = 0; i < kProducers * kPerProducer; ++i) ASSERT_EQ(all[static_cast<std::size_t>(i)], i);
  const auto s = q.stats();
  EXPECT_EQ(s.acked, static_cast<std::uint64_t>(kProducers * kPerProducer));
  EXPECT_EQ(s.in_flight, 0u);
  EXPECT_EQ(s.total_depth(), 0u);
}

}  // namespace
}  // namespace lab::runtime
