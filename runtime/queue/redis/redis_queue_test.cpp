// RedisTaskQueue against the real Redis of scripts/services: the in-memory queue's contract cases
// (where time is involved, on Redis's clock: short leases, and waits on the server-side condition
// "the lease is due", never a blind sleep), plus what only a shared server shows — a consumer
// process that dies, several queue instances on one stream, dropped connections and a restart.

#include "runtime/queue/redis/redis_queue.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "runtime/redis/testing/redis_testing.hpp"

namespace lab::runtime {
namespace {

using redis::Args;
using redis::RedisOptions;
using redis::RedisPool;

constexpr Nanos kLeaseTime = Seconds(30);
constexpr Nanos kShortLease = Millis(150);
constexpr Nanos kNoWait = Nanos::zero();

Task make_task(std::string id, Priority p = Priority::kNormal, std::string agent = "agent-1") {
  std::string payload = "{\"m\":\"" + id + "\"}";
  return Task{std::move(id), std::move(agent), p, std::move(payload)};
}

std::string lease_id(TaskQueue& q, std::string_view consumer = "w1", Nanos lease = kLeaseTime) {
  auto l = q.lease(consumer, lease, kNoWait);
  return l.ok() ? l->task.task_id : "<" + std::string(to_string(static_cast<Errc>(l.error().value()))) + ">";
}

class RedisQueueTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string message;
    auto options = redis::testing::options_from_env(message);
    if (!options.ok()) GTEST_FAIL() << message;
    options_ = *options;
    pool_ = std::make_unique<RedisPool>(options_, redis::RedisPoolOptions{}, SteadyClock::instance());
    name_ = redis::testing::unique_prefix(::testing::UnitTest::GetInstance()->current_test_info()->name());
  }
  void TearDown() override {
    if (!pool_) return;
    Args del{"DEL"};
    const std::string tag = "{" + name_ + "}";
    for (const char* k : {":q:0", ":q:1", ":q:2", ":nack:0", ":nack:1", ":nack:2", ":dead", ":stats"}) {
      del.add(tag + k);
    }
    (void)pool_->command(del);
  }
  RedisQueueConfig config(RedisQueueConfig c = {}) {
    c.name = name_;
    return c;
  }
  // Waits (bounded) until `count` entries of priority p are due on the server: their lease ended.
  void wait_due(RedisTaskQueue& q, std::size_t count, Priority p = Priority::kNormal,
                Nanos horizon = RedisQueueConfig{}.lease_horizon) {
    const auto horizon_ms = std::chrono::duration_cast<Millis>(horizon).count();
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
      auto r = pool_->command(Args{"XPENDING", q.stream_key(p), "workers", "IDLE"}
                                  .add(static_cast<long long>(horizon_ms))
                                  .add("-")
                                  .add("+")
                                  .add(100LL));
      ASSERT_TRUE(r.ok());
      if (r->size() >= count) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    FAIL() << "leases did not come due within 10 s";
  }

  RedisOptions options_;
  std::unique_ptr<RedisPool> pool_;
  std::string name_;
  SimulatedClock clock_;  // stamps expires_at only: expiry itself is on Redis's clock
};

TEST_F(RedisQueueTest, HigherPriorityIsLeasedFirstAndFifoWithinPriority) {
  RedisTaskQueue q(config(), *pool_, clock_);
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

TEST_F(RedisQueueTest, LeaseCarriesTheTaskAndAReceipt) {
  RedisTaskQueue q(config(), *pool_, clock_);
  ASSERT_TRUE(q.enqueue(Task{"t1", "agent-9", Priority::kMedium, std::string("{\"x\":\"\0y\"}", 11)}).accepted());
  auto l = q.lease("w1", kLeaseTime, kNoWait);
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(l->task.task_id, "t1");
  EXPECT_EQ(l->task.agent_id, "agent-9");
  EXPECT_EQ(l->task.priority, Priority::kMedium);
  EXPECT_EQ(l->task.payload, std::string("{\"x\":\"\0y\"}", 11));  // binary-safe
  EXPECT_EQ(l->delivery_count, 1u);
  EXPECT_EQ(l->expires_at, clock_.now() + kLeaseTime);
  EXPECT_EQ(l->receipt.substr(0, 2), "1/");
}

TEST_F(RedisQueueTest, RejectsOverBoundWithDepthAndAcceptsAgainAfterALease) {
  RedisTaskQueue q(config({.max_depth = 3}), *pool_, clock_);
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
  ASSERT_EQ(lease_id(q), "t0");  // in-flight tasks do not count against the bound
  EXPECT_TRUE(q.enqueue(make_task("t3")).accepted());
  EXPECT_EQ(q.stats().total_depth(), 3u);
  EXPECT_EQ(q.stats().in_flight, 1u);
}

TEST_F(RedisQueueTest, ExpiredLeaseIsRedeliveredToAnotherConsumer) {
  RedisTaskQueue q(config(), *pool_, clock_);
  ASSERT_TRUE(q.enqueue(make_task("t1")).accepted());
  auto first = q.lease("w1", kShortLease, kNoWait);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->delivery_count, 1u);
  EXPECT_EQ(q.lease("w2", kLeaseTime, kNoWait).error(), Errc::kNoTask);
  // w1 vanished: w2's blocking lease gets the task back when the lease runs out on the server.
  const auto start = std::chrono::steady_clock::now();
  auto second = q.lease("w2", kLeaseTime, Seconds(10));
  ASSERT_TRUE(second.ok()) << second.error().message();
  EXPECT_GE(std::chrono::steady_clock::now() - start, kShortLease - Millis(20));
  EXPECT_EQ(second->task.task_id, "t1");
  EXPECT_EQ(second->delivery_count, 2u);
  EXPECT_NE(second->receipt, first->receipt);
  EXPECT_EQ(q.ack(first->receipt).error(), Errc::kLeaseLost);
  EXPECT_EQ(q.extend(first->receipt, kLeaseTime).error(), Errc::kLeaseLost);
  EXPECT_TRUE(q.ack(second->receipt).ok());
  const auto s = q.stats();
  EXPECT_EQ(s.redelivered, 1u);
  EXPECT_EQ(s.leased, 2u);
  EXPECT_EQ(s.acked, 1u);
  EXPECT_EQ(s.in_flight, 0u);
  EXPECT_EQ(s.total_depth(), 0u);
}

TEST_F(RedisQueueTest, RedeliversAfterConsumerCrash) {
  // Two "processes": the first leases three tasks and dies without a word (its queue object and
  // connections are gone); the second's XAUTOCLAIM takes them over once the leases run out.
  auto crashing_pool = std::make_unique<RedisPool>(options_, redis::RedisPoolOptions{}, SteadyClock::instance());
  auto crashing = std::make_unique<RedisTaskQueue>(config(), *crashing_pool, clock_);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(crashing->enqueue(make_task("c" + std::to_string(i))).accepted());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(crashing->lease("doomed-worker", kShortLease, kNoWait).ok());
  crashing.reset();
  crashing_pool.reset();
  RedisTaskQueue survivor(config(), *pool_, clock_);
  std::vector<std::string> got;
  for (int i = 0; i < 3; ++i) {
    auto l = survivor.lease("survivor", kLeaseTime, Seconds(10));
    ASSERT_TRUE(l.ok()) << l.error().message();
    EXPECT_EQ(l->delivery_count, 2u);
    got.push_back(l->task.task_id);
    ASSERT_TRUE(survivor.ack(l->receipt).ok());
  }
  EXPECT_EQ(got, (std::vector<std::string>{"c0", "c1", "c2"}));  // oldest first
  EXPECT_EQ(survivor.stats().redelivered, 3u);
  // The dead consumer owns nothing any more.
  auto pending = pool_->command(Args{"XPENDING", survivor.stream_key(Priority::kNormal), "workers"});
  ASSERT_TRUE(pending.ok());
  EXPECT_EQ(pending->elements.at(0).integer, 0);
}

TEST_F(RedisQueueTest, RedeliveredTaskGoesAheadOfNewerTasks) {
  RedisTaskQueue q(config(), *pool_, clock_);
  ASSERT_TRUE(q.enqueue(make_task("old")).accepted());
  ASSERT_EQ(lease_id(q, "w1", kShortLease), "old");
  ASSERT_TRUE(q.enqueue(make_task("new")).accepted());
  wait_due(q, 1);
  EXPECT_EQ(lease_id(q), "old");
  EXPECT_EQ(lease_id(q), "new");
}

TEST_F(RedisQueueTest, DeadLettersAfterMaxDeliveries) {
  RedisTaskQueue q(config({.max_deliveries = 3}), *pool_, clock_);
  ASSERT_TRUE(q.enqueue(make_task("poison")).accepted());
  for (std::uint32_t d = 1; d <= 3; ++d) {
    auto l = q.lease("w", kShortLease, kNoWait);
    ASSERT_TRUE(l.ok()) << d;
    EXPECT_EQ(l->delivery_count, d);
    wait_due(q, 1);
  }
  EXPECT_EQ(q.lease("w", kLeaseTime, kNoWait).error(), Errc::kNoTask);
  const auto dead = q.dead_letters(10);
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(dead[0].task.task_id, "poison");
  EXPECT_EQ(dead[0].task.agent_id, "agent-1");
  EXPECT_EQ(dead[0].task.payload, "{\"m\":\"poison\"}");
  EXPECT_EQ(dead[0].delivery_count, 3u);
  EXPECT_EQ(dead[0].reason, "lease expired");
  const auto s = q.stats();
  EXPECT_EQ(s.dead_lettered, 1u);
  EXPECT_EQ(s.dead_letters, 1u);
  EXPECT_EQ(s.redelivered, 2u);
  EXPECT_EQ(s.total_depth(), 0u);
  EXPECT_EQ(s.in_flight, 0u);
  auto len = pool_->command(Args{"XLEN", q.stream_key(Priority::kNormal)});
  EXPECT_EQ(len->integer, 0);  // gone from its stream
}

TEST_F(RedisQueueTest, NackRequeuesAtTheFrontAndDeadLettersAtTheLimit) {
  RedisTaskQueue q(config({.max_deliveries = 2}), *pool_, clock_);
  ASSERT_TRUE(q.enqueue(make_task("a")).accepted());
  ASSERT_TRUE(q.enqueue(make_task("b")).accepted());
  auto a1 = q.lease("w", kLeaseTime, kNoWait);
  ASSERT_TRUE(a1.ok());
  ASSERT_TRUE(q.nack(a1->receipt, Nanos::zero()).ok());
  EXPECT_EQ(q.stats().total_depth(), 2u);
  EXPECT_EQ(q.stats().in_flight, 0u);
  EXPECT_EQ(q.extend(a1->receipt, kLeaseTime).error(), Errc::kLeaseLost);  // back in the queue
  EXPECT_TRUE(q.nack(a1->receipt, Nanos::zero()).ok());                      // already back: no-op
  auto a2 = q.lease("w", kLeaseTime, kNoWait);
  ASSERT_TRUE(a2.ok());
  EXPECT_EQ(a2->task.task_id, "a");
  EXPECT_EQ(a2->delivery_count, 2u);
  ASSERT_TRUE(q.nack(a2->receipt, Nanos::zero()).ok());  // second delivery: the limit
  EXPECT_EQ(lease_id(q), "b");
  ASSERT_EQ(q.dead_letters(10).size(), 1u);
  EXPECT_EQ(q.dead_letters(10)[0].reason, "nacked");
  EXPECT_EQ(q.stats().nacked, 2u);
  EXPECT_EQ(q.stats().redelivered, 0u);
}

TEST_F(RedisQueueTest, NackWithDelayHidesTheTaskUntilTheDelayPasses) {
  RedisTaskQueue q(config(), *pool_, clock_);
  ASSERT_TRUE(q.enqueue(make_task("t")).accepted());
  auto l = q.lease("w", kLeaseTime, kNoWait);
  ASSERT_TRUE(l.ok());
  constexpr Nanos kDelay = Millis(300);
  const auto nacked_at = std::chrono::steady_clock::now();
  ASSERT_TRUE(q.nack(l->receipt, kDelay).ok());
  EXPECT_EQ(q.stats().total_depth(), 1u);  // waiting, just not visible
  EXPECT_EQ(q.lease("w", kLeaseTime, kNoWait).error(), Errc::kNoTask);
  auto again = q.lease("w", kLeaseTime, Seconds(10));
  ASSERT_TRUE(again.ok());
  EXPECT_GE(std::chrono::steady_clock::now() - nacked_at, kDelay - Millis(20));
  EXPECT_EQ(again->delivery_count, 2u);
  EXPECT_EQ(q.stats().redelivered, 0u);  // a nack is not a vanished worker
}

TEST_F(RedisQueueTest, AckIsIdempotent) {
  RedisTaskQueue q(config(), *pool_, clock_);
  ASSERT_TRUE(q.enqueue(make_task("t")).accepted());
  auto l = q.lease("w", kShortLease, kNoWait);
  ASSERT_TRUE(l.ok());
  EXPECT_TRUE(q.ack(l->receipt).ok());
  EXPECT_TRUE(q.ack(l->receipt).ok());
  EXPECT_EQ(q.stats().acked, 1u);
  EXPECT_EQ(q.nack(l->receipt, Nanos::zero()).error(), Errc::kNotFound);
  EXPECT_EQ(q.extend(l->receipt, kLeaseTime).error(), Errc::kNotFound);
  EXPECT_EQ(q.dead_letter(l->receipt, "x").error(), Errc::kNotFound);
  // Well past the old lease's end, nothing comes back.
  EXPECT_EQ(q.lease("w", kLeaseTime, kShortLease * 3).error(), Errc::kNoTask);
}

TEST_F(RedisQueueTest, MalformedReceiptsAreRejected) {
  RedisTaskQueue q(config(), *pool_, clock_);
  for (const char* r : {"", "1", "1.1", "3/1-0/1", "0/1-0/0", "0/1-0/x", "0//1", "0/1/1", "0/a-b/1",
                        "0/1-0-0/1", "0/1-0/1x", "00/1-0/1"}) {
    EXPECT_EQ(q.ack(r).error(), Errc::kInvalidArgument) << r;
  }
}

TEST_F(RedisQueueTest, AckAfterExpiryButBeforeRedeliveryIsAccepted) {
  RedisTaskQueue q(config(), *pool_, clock_);
  ASSERT_TRUE(q.enqueue(make_task("t")).accepted());
  ASSERT_TRUE(q.enqueue(make_task("u")).accepted());
  auto l = q.lease("w1", kShortLease, kNoWait);
  ASSERT_TRUE(l.ok());
  wait_due(q, 1);
  EXPECT_TRUE(q.ack(l->receipt).ok());  // late, but nobody took it yet
  EXPECT_EQ(lease_id(q, "w2"), "u");
  EXPECT_EQ(lease_id(q, "w2"), "<no_task>");
}

TEST_F(RedisQueueTest, ExtendKeepsTheLease) {
  RedisTaskQueue q(config(), *pool_, clock_);
  ASSERT_TRUE(q.enqueue(make_task("long-turn")).accepted());
  auto l = q.lease("w1", Millis(300), kNoWait);
  ASSERT_TRUE(l.ok());
  const auto expiry = q.extend(l->receipt, Seconds(30));
  ASSERT_TRUE(expiry.ok());
  EXPECT_EQ(*expiry, clock_.now() + Seconds(30));
  // Past the first expiry, nobody gets it.
  EXPECT_EQ(q.lease("w2", kLeaseTime, Millis(600)).error(), Errc::kNoTask);
  EXPECT_TRUE(q.ack(l->receipt).ok());
}

TEST_F(RedisQueueTest, CloseRefusesEnqueueAndDrainsWithoutWaiting) {
  RedisTaskQueue q(config(), *pool_, clock_);
  ASSERT_TRUE(q.enqueue(make_task("left")).accepted());
  q.close();
  EXPECT_EQ(q.enqueue(make_task("late")).error, Errc::kClosed);
  EXPECT_EQ(lease_id(q), "left");
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(q.lease("w", kLeaseTime, Seconds(3600)).error(), Errc::kClosed);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1));
}

TEST_F(RedisQueueTest, BlockedLeaseWakesOnEnqueueFromAnotherProcess) {
  RedisTaskQueue consumer_side(config(), *pool_, clock_);
  RedisPool producer_pool(options_, {}, SteadyClock::instance());
  RedisTaskQueue producer_side(config(), producer_pool, clock_);
  ASSERT_EQ(consumer_side.lease("w", kLeaseTime, kNoWait).error(), Errc::kNoTask);  // groups exist
  std::optional<std::string> got;
  std::thread consumer([&] {
    auto l = consumer_side.lease("w", kLeaseTime, Seconds(60));
    if (l.ok()) got = l->task.task_id;
  });
  ASSERT_TRUE(producer_side.enqueue(make_task("wake")).accepted());
  consumer.join();
  EXPECT_EQ(got, "wake");
}

TEST_F(RedisQueueTest, BlockedLeaseWakesOnClose) {
  RedisTaskQueue q(config({.poll_interval = Millis(5000)}), *pool_, clock_);
  std::error_code seen;
  std::atomic<bool> started{false};
  std::thread consumer([&] {
    started = true;
    seen = q.lease("w", kLeaseTime, Seconds(60)).error();
  });
  while (!started.load()) std::this_thread::yield();
  q.close();
  const auto start = std::chrono::steady_clock::now();
  consumer.join();
  EXPECT_EQ(seen, Errc::kClosed);
  // CLIENT UNBLOCK woke it, well before its 5 s slice (or it saw the flag before blocking).
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(4));
}

TEST_F(RedisQueueTest, RejectsInvalidTasksAndArguments) {
  RedisTaskQueue q(config({.lease_horizon = Seconds(60)}), *pool_, clock_);
  EXPECT_EQ(q.enqueue(make_task("")).error, Errc::kInvalidArgument);
  EXPECT_EQ(q.enqueue(Task{"t", "", Priority::kHigh, ""}).error, Errc::kInvalidArgument);
  EXPECT_EQ(q.enqueue(Task{"t", "a", static_cast<Priority>(7), ""}).error, Errc::kInvalidArgument);
  EXPECT_EQ(q.lease("", kLeaseTime, kNoWait).error(), Errc::kInvalidArgument);
  EXPECT_EQ(q.lease("w", Nanos::zero(), kNoWait).error(), Errc::kInvalidArgument);
  EXPECT_EQ(q.lease("w", Seconds(61), kNoWait).error(), Errc::kInvalidArgument);  // over the horizon
}

TEST_F(RedisQueueTest, DeadLetterStreamIsBounded) {
  RedisTaskQueue q(config({.max_deliveries = 1, .max_dead_letters = 2}), *pool_, clock_);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(q.enqueue(make_task("d" + std::to_string(i), Priority::kHigh)).accepted());
    auto l = q.lease("w", kLeaseTime, kNoWait);
    ASSERT_TRUE(l.ok());
    ASSERT_TRUE(q.dead_letter(l->receipt, "poison").ok());
  }
  const auto dead = q.dead_letters(10);
  ASSERT_EQ(dead.size(), 2u);
  EXPECT_EQ(dead[0].task.task_id, "d1");
  EXPECT_EQ(dead[1].task.task_id, "d2");
  EXPECT_EQ(dead[1].reason, "poison");
  EXPECT_EQ(dead[1].task.priority, Priority::kHigh);
  EXPECT_EQ(q.stats().dead_lettered, 3u);
  EXPECT_EQ(q.dead_letters(1).size(), 1u);
}

TEST_F(RedisQueueTest, ConcurrentProducersAndConsumersOnTwoInstancesDeliverEveryTaskExactlyOnce) {
  RedisPool other_pool(options_, {}, SteadyClock::instance());
  RedisTaskQueue a(config({.max_depth = 100'000}), *pool_, clock_);
  RedisTaskQueue b(config({.max_depth = 100'000}), other_pool, clock_);
  constexpr int kProducers = 2;
  constexpr int kPerProducer = 1500;
  constexpr int kConsumers = 4;
  std::vector<std::vector<int>> seen(kConsumers);
  std::atomic<int> done_producers{0};
  std::vector<std::thread> threads;
  for (int p = 0; p < kProducers; ++p) {
    threads.emplace_back([&, p] {
      RedisTaskQueue& q = p == 0 ? a : b;
      for (int i = 0; i < kPerProducer; ++i) {
        const int id = p * kPerProducer + i;
        ASSERT_TRUE(q.enqueue(Task{std::to_string(id), "a", static_cast<Priority>(id % 3), ""}).accepted());
      }
      if (done_producers.fetch_add(1) + 1 == kProducers) {
        a.close();
        b.close();
      }
    });
  }
  for (int c = 0; c < kConsumers; ++c) {
    threads.emplace_back([&, c] {
      RedisTaskQueue& q = c % 2 == 0 ? a : b;
      for (;;) {
        auto l = q.lease("w" + std::to_string(c), kLeaseTime, Seconds(10));
        if (!l.ok()) {
          ASSERT_EQ(l.error(), Errc::kClosed);
          return;
        }
        seen[static_cast<std::size_t>(c)].push_back(std::stoi(l->task.task_id));
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
  const auto s = a.stats();  // shared counters: both instances' work
  EXPECT_EQ(s.enqueued, static_cast<std::uint64_t>(kProducers * kPerProducer));
  EXPECT_EQ(s.acked, static_cast<std::uint64_t>(kProducers * kPerProducer));
  EXPECT_EQ(s.in_flight, 0u);
  EXPECT_EQ(s.total_depth(), 0u);
}

// XINFO CONSUMERS of one stream: each consumer's name, pending count and idle time (ms, on the
// server's clock).
struct ConsumerRow {
  std::string name;
  long long pending = -1;
  long long idle_ms = -1;
};

std::vector<ConsumerRow> consumers_of(RedisPool& pool, const std::string& stream) {
  std::vector<ConsumerRow> rows;
  auto r = pool.command(Args{"XINFO", "CONSUMERS", stream, "workers"});
  EXPECT_TRUE(r.ok());
  if (!r.ok()) return rows;
  for (const auto& c : r->elements) {
    ConsumerRow row;
    for (std::size_t i = 0; i + 1 < c.size(); i += 2) {
      const std::string& field = c.elements[i].str;
      if (field == "name") row.name = c.elements[i + 1].str;
      else if (field == "pending") row.pending = c.elements[i + 1].integer;
      else if (field == "idle") row.idle_ms = c.elements[i + 1].integer;
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

const ConsumerRow* find_consumer(const std::vector<ConsumerRow>& rows, std::string_view name) {
  const auto it = std::find_if(rows.begin(), rows.end(), [&](const ConsumerRow& c) { return c.name == name; });
  return it == rows.end() ? nullptr : &*it;
}

long long elapsed_ms_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration_cast<Millis>(std::chrono::steady_clock::now() - start).count();
}

// The reaper drops a consumer that owns nothing once it was idle for the horizon, and never one
// that owns a pending entry however idle it is (XGROUP DELCONSUMER would delete the entry with it:
// the task would be lost). The holder stays silent after its lease: a heartbeat would refresh its
// idle time and the case would prove nothing. The active worker's tasks are high priority, so its
// leases are served from the high stream and never run XAUTOCLAIM on the normal one: the holder's
// expired lease stays its own whatever the scheduler does, while every lease still runs the
// reaper over the three streams. Only condition waits, no race with the clock.
TEST_F(RedisQueueTest, ConsumersThatOwnNothingAreReapedAfterTheHorizon) {
  constexpr long long kHorizonMs = 300;
  RedisTaskQueue q(config({.lease_horizon = Millis(kHorizonMs), .reap_consumers_every = 1}), *pool_, clock_);
  const std::string normal = q.stream_key(Priority::kNormal);
  ASSERT_TRUE(q.enqueue(make_task("a")).accepted());
  ASSERT_TRUE(q.enqueue(make_task("b")).accepted());
  const auto first_lease = std::chrono::steady_clock::now();
  auto gone = q.lease("worker-that-left", Millis(100), kNoWait);
  ASSERT_TRUE(gone.ok());
  ASSERT_TRUE(q.ack(gone->receipt).ok());
  auto holder = q.lease("worker-with-a-lease", Millis(kHorizonMs), kNoWait);  // reaps too
  ASSERT_TRUE(holder.ok());
  ASSERT_EQ(holder->task.task_id, "b");
  if (find_consumer(consumers_of(*pool_, normal), "worker-that-left") == nullptr) {
    EXPECT_GE(elapsed_ms_since(first_lease) + 2, kHorizonMs) << "worker-that-left was dropped before the horizon";
  }
  // Lease (each lease reaps) until a lease ran while the holder, idle and owning "b", had been
  // idle for the horizon: the one that left, idle for longer, goes in that lease at the latest.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  for (int i = 0;; ++i) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "the holder never reached the horizon's idle time";
    const auto start = std::chrono::steady_clock::now();
    const auto before = consumers_of(*pool_, normal);
    ASSERT_TRUE(q.enqueue(make_task("c" + std::to_string(i), Priority::kHigh)).accepted());
    auto l = q.lease("active-worker", Millis(kHorizonMs), kNoWait);
    ASSERT_TRUE(l.ok());
    ASSERT_EQ(l->task.task_id, "c" + std::to_string(i));
    ASSERT_TRUE(q.ack(l->receipt).ok());
    const auto after = consumers_of(*pool_, normal);
    // Whoever went in this lease was reaped at an idle time of at most its idle time before it
    // plus the time since (+1 ms for each side's truncation to whole milliseconds).
    const long long window_ms = elapsed_ms_since(start) + 2;
    for (const auto& c : before) {
      if (find_consumer(after, c.name) != nullptr) continue;
      EXPECT_EQ(c.pending, 0) << c.name << " was dropped while it owned an entry";
      EXPECT_GE(c.idle_ms + window_ms, kHorizonMs) << c.name << " was dropped before the horizon";
    }
    const ConsumerRow* held = find_consumer(after, "worker-with-a-lease");
    ASSERT_NE(held, nullptr) << "the reaper dropped a consumer that owns an entry (lap " << i << ")";
    ASSERT_EQ(held->pending, 1);
    const ConsumerRow* held_before = find_consumer(before, "worker-with-a-lease");
    ASSERT_NE(held_before, nullptr);
    if (held_before->idle_ms >= kHorizonMs) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  const auto names = consumers_of(*pool_, normal);
  EXPECT_EQ(find_consumer(names, "worker-that-left"), nullptr);
  EXPECT_NE(find_consumer(names, "worker-with-a-lease"), nullptr);
  // And "b" was not lost with anyone: its lease ran out, so the next lease of its stream gets it.
  auto again = q.lease("active-worker", Millis(kHorizonMs), kNoWait);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->task.task_id, "b");
  EXPECT_EQ(again->delivery_count, 2u);
  EXPECT_EQ(q.ack(holder->receipt).error(), Errc::kLeaseLost);
  EXPECT_TRUE(q.ack(again->receipt).ok());
}

// A holder that heartbeats keeps its lease past the horizon, several times over, while another
// consumer leases from the same stream (each of those leases runs XAUTOCLAIM over the holder's
// entry, and the reaper). Each heartbeat must reach the server: right after extend returns, the
// entry's idle time (XPENDING, Redis's clock) is at most the time the call took — a heartbeat
// that renewed nothing fails here, before the lease is even due.
TEST_F(RedisQueueTest, HeartbeatKeepsTheLeasePastTheHorizonWhileOthersLeaseTheSameStream) {
  constexpr long long kHorizonMs = 500;
  RedisTaskQueue q(config({.lease_horizon = Millis(kHorizonMs), .reap_consumers_every = 1}), *pool_, clock_);
  const std::string normal = q.stream_key(Priority::kNormal);
  ASSERT_TRUE(q.enqueue(make_task("held")).accepted());
  const auto leased_at = std::chrono::steady_clock::now();
  auto holder = q.lease("worker-with-a-lease", Millis(kHorizonMs), kNoWait);
  ASSERT_TRUE(holder.ok());
  const std::string id = holder->receipt.substr(2, holder->receipt.rfind('/') - 2);
  int laps = 0;
  while (elapsed_ms_since(leased_at) < 2 * kHorizonMs) {  // without heartbeats, lost twice over
    std::this_thread::sleep_for(std::chrono::milliseconds(10));  // the heartbeat period
    const auto start = std::chrono::steady_clock::now();
    ASSERT_TRUE(q.extend(holder->receipt, Millis(kHorizonMs)).ok());
    auto row = pool_->command(Args{"XPENDING", normal, "workers", id, id, "1"});
    const long long call_ms = elapsed_ms_since(start) + 2;  // +1 ms truncation on each side
    ASSERT_TRUE(row.ok());
    ASSERT_EQ(row->size(), 1u) << "the holder's entry left the pending list (lap " << laps << ")";
    const auto& entry = row->elements[0];
    ASSERT_EQ(entry.elements.at(1).str, "worker-with-a-lease");
    ASSERT_LE(entry.elements.at(2).integer, call_ms) << "the heartbeat did not renew the lease (lap " << laps << ")";
    ASSERT_EQ(entry.elements.at(3).integer, 1) << "the holder's entry was delivered again";
    ASSERT_TRUE(q.enqueue(make_task("c" + std::to_string(laps))).accepted());
    auto l = q.lease("active-worker", Millis(kHorizonMs), kNoWait);
    ASSERT_TRUE(l.ok());
    ASSERT_EQ(l->task.task_id, "c" + std::to_string(laps)) << "the holder's lease was taken over";
    ASSERT_TRUE(q.ack(l->receipt).ok());
    ++laps;
  }
  const auto names = consumers_of(*pool_, normal);
  EXPECT_NE(find_consumer(names, "worker-with-a-lease"), nullptr);
  EXPECT_TRUE(q.ack(holder->receipt).ok());
  EXPECT_EQ(q.stats().redelivered, 0u);
  EXPECT_EQ(q.stats().acked, static_cast<std::uint64_t>(laps + 1));
}

// ---- connection loss and restart, on a private server ------------------------------------

class RedisQueueChaosTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string message;
    if (!server_.start(message).ok()) GTEST_FAIL() << message;
    RedisOptions o = server_.options();
    o.backoff_initial = Millis(20);
    o.backoff_max = Millis(100);
    pool_ = std::make_unique<RedisPool>(o, redis::RedisPoolOptions{}, SteadyClock::instance());
  }
  redis::testing::PrivateRedis server_;
  std::unique_ptr<RedisPool> pool_;
  SimulatedClock clock_;
};

TEST_F(RedisQueueChaosTest, KeepsWorkingAfterClientKill) {
  RedisTaskQueue q({}, *pool_, clock_);
  ASSERT_TRUE(q.enqueue(make_task("before")).accepted());
  auto l = q.lease("w", kLeaseTime, kNoWait);
  ASSERT_TRUE(l.ok());
  ASSERT_EQ(server_.cli("CLIENT KILL TYPE normal"), 0);
  EXPECT_TRUE(q.ack(l->receipt).ok());  // the pooled connection reopened before sending
  ASSERT_TRUE(q.enqueue(make_task("after")).accepted());
  EXPECT_EQ(lease_id(q), "after");
  EXPECT_GE(pool_->stats().closed_by_server, 1u);
}

TEST_F(RedisQueueChaosTest, BlockedLeaseSurvivesClientKill) {
  RedisTaskQueue q({.poll_interval = Millis(2000)}, *pool_, clock_);
  ASSERT_EQ(q.lease("w", kLeaseTime, kNoWait).error(), Errc::kNoTask);
  std::optional<std::string> got;
  std::atomic<bool> started{false};
  std::thread consumer([&] {
    started = true;
    auto l = q.lease("w", kLeaseTime, Seconds(30));
    if (l.ok()) got = l->task.task_id;
  });
  while (!started.load()) std::this_thread::yield();
  // Kill whatever is connected (the blocked XREAD included), then enqueue: the waiter reconnects
  // and finds the task.
  ASSERT_EQ(server_.cli("CLIENT KILL TYPE normal"), 0);
  ASSERT_TRUE(q.enqueue(make_task("after-kill")).accepted());
  consumer.join();
  EXPECT_EQ(got, "after-kill");
}

TEST_F(RedisQueueChaosTest, NothingAcceptedIsLostAcrossARestart) {
  RedisTaskQueue q({.max_deliveries = 5}, *pool_, clock_);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(q.enqueue(make_task("r" + std::to_string(i))).accepted());
  auto in_flight = q.lease("w", kShortLease, kNoWait);  // leased, never acked: the worker dies
  ASSERT_TRUE(in_flight.ok());
  std::string message;
  server_.stop();
  EXPECT_EQ(q.enqueue(make_task("while-down")).error, Errc::kUnavailable);
  EXPECT_EQ(q.lease("w", kLeaseTime, Millis(100)).error(), Errc::kUnavailable);
  ASSERT_TRUE(server_.restart(message).ok()) << message;
  std::vector<std::string> got;
  for (int i = 0; i < 3; ++i) {
    auto l = q.lease("w2", kLeaseTime, Seconds(10));
    ASSERT_TRUE(l.ok()) << l.error().message();
    got.push_back(l->task.task_id);
    ASSERT_TRUE(q.ack(l->receipt).ok());
  }
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, (std::vector<std::string>{"r0", "r1", "r2"}));
  EXPECT_EQ(q.lease("w2", kLeaseTime, kNoWait).error(), Errc::kNoTask);
  EXPECT_EQ(q.stats().acked, 3u);
}

TEST_F(RedisQueueChaosTest, RecreatesItsGroupAfterTheServerLostItsData) {
  RedisTaskQueue q({}, *pool_, clock_);
  ASSERT_TRUE(q.enqueue(make_task("lost")).accepted());
  ASSERT_EQ(server_.cli("FLUSHALL"), 0);  // as a restart without persistence would
  ASSERT_TRUE(q.enqueue(make_task("fresh")).accepted());
  EXPECT_EQ(lease_id(q), "fresh");
}

}  // namespace
}  // namespace lab::runtime
