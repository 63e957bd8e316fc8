// RedisEventBus against the real Redis of scripts/services: the in-memory bus's contract cases
// (live events arrive on the bus's reader thread, so tests wait on the delivered events, bounded),
// plus replay across bus instances (two gateway processes) and a dropped reader connection.

#include "runtime/events/redis/redis_event_bus.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "runtime/redis/testing/redis_testing.hpp"

namespace lab::runtime {
namespace {

using redis::Args;
using redis::RedisPool;
using Ids = std::vector<std::uint64_t>;

std::vector<std::uint64_t> ids_of(const std::vector<Event>& events) {
  std::vector<std::uint64_t> ids;
  for (const auto& e : events) ids.push_back(e.id);
  return ids;
}

// Collects events from a callback (any thread); tests wait for a count.
class Collector {
 public:
  EventCallback callback() {
    return [this](const Event& e) {
      std::lock_guard lk(mu_);
      events_.push_back(e);
      cv_.notify_all();
    };
  }
  bool wait_for(std::size_t n, std::chrono::seconds bound = std::chrono::seconds(10)) {
    std::unique_lock lk(mu_);
    return cv_.wait_for(lk, bound, [&] { return events_.size() >= n; });
  }
  std::vector<Event> events() const {
    std::lock_guard lk(mu_);
    return events_;
  }
  Ids ids() const { return ids_of(events()); }
  std::size_t size() const {
    std::lock_guard lk(mu_);
    return events_.size();
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Event> events_;
};

class RedisEventBusTest : public ::testing::Test {
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
  RedisEventBusConfig config(RedisEventBusConfig c = {}) {
    c.key_prefix = prefix_;
    return c;
  }
  // Waits (bounded) until the task's stream is gone from the server.
  bool wait_gone(RedisEventBus& bus, std::string_view task,
                 std::chrono::steady_clock::duration bound = std::chrono::seconds(10)) {
    const auto deadline = std::chrono::steady_clock::now() + bound;
    while (std::chrono::steady_clock::now() < deadline) {
      if (bus.read(task, 0, 1).error() == Errc::kNotFound) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return false;
  }
  redis::RedisOptions options_;
  std::unique_ptr<RedisPool> pool_;
  std::string prefix_;
};

TEST_F(RedisEventBusTest, AppendAssignsSequentialIdsPerTask) {
  RedisEventBus bus(config(), *pool_);
  EXPECT_EQ(*bus.append("t1", EventKind::kTextChunk, "a"), 1u);
  EXPECT_EQ(*bus.append("t1", EventKind::kTextChunk, "b"), 2u);
  EXPECT_EQ(*bus.append("t2", EventKind::kTextChunk, "x"), 1u);
  EXPECT_EQ(*bus.append("t1", EventKind::kDone, "{}"), 3u);
  // The ids are the stream's own: "0-1", "0-2", ...
  auto r = pool_->command(Args{"XRANGE", bus.stream_key("t1"), "-", "+"});
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->size(), 3u);
  EXPECT_EQ(r->elements[2].elements[0].str, "0-3");
}

TEST_F(RedisEventBusTest, ReadReplaysAfterLastEventId) {
  RedisEventBus bus(config(), *pool_);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(bus.append("t", EventKind::kTextChunk, std::to_string(i)).ok());
  auto all = bus.read("t", 0, 100);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(ids_of(all->events), (Ids{1, 2, 3, 4, 5}));
  EXPECT_EQ(all->events[2].data, "2");
  EXPECT_EQ(all->events[2].kind, EventKind::kTextChunk);
  EXPECT_FALSE(all->finished);
  EXPECT_FALSE(all->truncated);
  auto rest = bus.read("t", 3, 100);  // Last-Event-ID: 3
  ASSERT_TRUE(rest.ok());
  EXPECT_EQ(ids_of(rest->events), (Ids{4, 5}));
  auto page = bus.read("t", 0, 2);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(ids_of(page->events), (Ids{1, 2}));
  EXPECT_EQ(bus.read("unknown", 0, 10).error(), Errc::kNotFound);
}

TEST_F(RedisEventBusTest, ReplayWorksFromAnotherBusInstance) {
  // The worker's process appends; another gateway process serves the SSE reconnect.
  RedisEventBus worker_bus(config(), *pool_);
  RedisPool gateway_pool(options_, {}, SteadyClock::instance());
  RedisEventBus gateway_bus(config(), gateway_pool);
  ASSERT_TRUE(worker_bus.append("t", EventKind::kTextChunk, "hello").ok());
  ASSERT_TRUE(worker_bus.append("t", EventKind::kToolStart, "{\"tool\":\"x\"}").ok());
  Collector got;
  auto sub = gateway_bus.subscribe("t", 1, got.callback());
  ASSERT_TRUE(sub.ok());
  ASSERT_TRUE(worker_bus.append("t", EventKind::kDone, "{}").ok());
  ASSERT_TRUE(got.wait_for(2));
  EXPECT_EQ(got.ids(), (Ids{2, 3}));
  EXPECT_EQ(got.events()[0].kind, EventKind::kToolStart);
  EXPECT_EQ(got.events()[0].data, "{\"tool\":\"x\"}");
}

TEST_F(RedisEventBusTest, SubscribeReplaysBacklogThenFollowsLiveEventsInOrder) {
  RedisEventBus bus(config(), *pool_);
  ASSERT_TRUE(bus.append("t", EventKind::kTextChunk, "1").ok());
  ASSERT_TRUE(bus.append("t", EventKind::kTextChunk, "2").ok());
  Collector got;
  auto sub = bus.subscribe("t", 1, got.callback());
  ASSERT_TRUE(sub.ok());
  EXPECT_FALSE(sub->ended());
  EXPECT_EQ(got.ids(), (Ids{2}));  // the backlog arrives inside subscribe()
  ASSERT_TRUE(bus.append("t", EventKind::kToolStart, "{}").ok());
  ASSERT_TRUE(bus.append("t", EventKind::kToolComplete, "{}").ok());
  ASSERT_TRUE(bus.append("t", EventKind::kDone, "{}").ok());
  ASSERT_TRUE(got.wait_for(4));
  EXPECT_EQ(got.ids(), (Ids{2, 3, 4, 5}));
  EXPECT_EQ(got.events().back().kind, EventKind::kDone);
  EXPECT_EQ(bus.stats().subscriptions, 0u);  // the terminal event ended the subscription
}

TEST_F(RedisEventBusTest, TerminalEventEndsTheStreamExactlyOnce) {
  RedisEventBus bus(config(), *pool_);
  ASSERT_TRUE(bus.append("t", EventKind::kTextChunk, "hi").ok());
  ASSERT_TRUE(bus.append("t", EventKind::kError, "{\"error\":\"llm\"}").ok());
  EXPECT_EQ(bus.append("t", EventKind::kDone, "{}").error(), Errc::kStreamFinished);
  EXPECT_EQ(bus.append("t", EventKind::kTextChunk, "late").error(), Errc::kStreamFinished);
  auto slice = bus.read("t", 0, 10);
  ASSERT_TRUE(slice.ok());
  EXPECT_TRUE(slice->finished);
  ASSERT_EQ(slice->events.size(), 2u);
  EXPECT_EQ(slice->events.back().kind, EventKind::kError);
}

TEST_F(RedisEventBusTest, ConcurrentTerminalEventsFromTwoWorkersAreAcceptedOnce) {
  // A redelivered task's second worker races the first to finish the stream.
  RedisEventBus bus(config(), *pool_);
  ASSERT_TRUE(bus.open("t").ok());
  std::atomic<int> accepted{0};
  std::atomic<int> refused{0};
  std::vector<std::thread> workers;
  for (int w = 0; w < 4; ++w) {
    workers.emplace_back([&] {
      auto r = bus.append("t", EventKind::kDone, "{}");
      if (r.ok()) ++accepted;
      else if (r.error() == Errc::kStreamFinished) ++refused;
    });
  }
  for (auto& w : workers) w.join();
  EXPECT_EQ(accepted.load(), 1);
  EXPECT_EQ(refused.load(), 3);
}

TEST_F(RedisEventBusTest, SubscribeToFinishedStreamReplaysAndEnds) {
  RedisEventBus bus(config(), *pool_);
  ASSERT_TRUE(bus.append("t", EventKind::kTextChunk, "a").ok());
  ASSERT_TRUE(bus.append("t", EventKind::kDone, "{}").ok());
  Collector got;
  auto sub = bus.subscribe("t", 0, got.callback());
  ASSERT_TRUE(sub.ok());
  EXPECT_TRUE(sub->ended());
  EXPECT_EQ(got.ids(), (Ids{1, 2}));
  Collector again;
  auto resumed = bus.subscribe("t", 2, again.callback());
  ASSERT_TRUE(resumed.ok());
  EXPECT_TRUE(resumed->ended());
  EXPECT_EQ(again.size(), 0u);
}

TEST_F(RedisEventBusTest, OpenMakesATaskKnownBeforeItsFirstEvent) {
  RedisEventBus bus(config(), *pool_);
  Collector got;
  EXPECT_EQ(bus.subscribe("t", 0, got.callback()).error(), Errc::kNotFound);
  ASSERT_TRUE(bus.open("t").ok());
  ASSERT_TRUE(bus.open("t").ok());  // idempotent
  auto empty = bus.read("t", 0, 10);
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->events.empty());
  auto sub = bus.subscribe("t", 0, got.callback());
  ASSERT_TRUE(sub.ok());
  EXPECT_EQ(got.size(), 0u);
  EXPECT_EQ(*bus.append("t", EventKind::kTextChunk, "first"), 1u);
  ASSERT_TRUE(got.wait_for(1));
  EXPECT_EQ(got.ids(), (Ids{1}));
  EXPECT_EQ(bus.open("").error(), Errc::kInvalidArgument);
}

TEST_F(RedisEventBusTest, TrimsOldEventsAndReportsTruncation) {
  RedisEventBus bus(config({.max_events_per_stream = 3}), *pool_);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(bus.append("t", EventKind::kTextChunk, "x").ok());
  auto from_start = bus.read("t", 0, 10);
  ASSERT_TRUE(from_start.ok());
  EXPECT_EQ(ids_of(from_start->events), (Ids{3, 4, 5}));
  EXPECT_TRUE(from_start->truncated);
  auto from_two = bus.read("t", 2, 10);
  ASSERT_TRUE(from_two.ok());
  EXPECT_FALSE(from_two->truncated);
  Collector got;
  auto sub = bus.subscribe("t", 1, got.callback());
  ASSERT_TRUE(sub.ok());
  EXPECT_TRUE(sub->truncated());
  EXPECT_EQ(got.ids(), (Ids{3, 4, 5}));
  ASSERT_TRUE(bus.append("t", EventKind::kDone, "{}").ok());
  auto tail = bus.read("t", 0, 10);
  ASSERT_TRUE(tail.ok());
  EXPECT_EQ(ids_of(tail->events), (Ids{4, 5, 6}));
}

TEST_F(RedisEventBusTest, FinishedStreamExpiresAfterRetention) {
  RedisEventBus bus(config({.retention = Millis(300), .idle_timeout = Seconds(600)}), *pool_);
  ASSERT_TRUE(bus.append("t", EventKind::kTextChunk, "x").ok());
  auto ttl_open = pool_->command(Args{"PTTL", bus.stream_key("t")});
  EXPECT_GT(ttl_open->integer, 300);  // an open stream lives for idle_timeout
  ASSERT_TRUE(bus.append("t", EventKind::kDone, "{}").ok());
  auto ttl = pool_->command(Args{"PTTL", bus.stream_key("t")});
  ASSERT_TRUE(ttl.ok());
  EXPECT_GT(ttl->integer, 0);
  EXPECT_LE(ttl->integer, 300);
  EXPECT_TRUE(bus.read("t", 0, 10).ok());
  EXPECT_TRUE(wait_gone(bus, "t"));
  // A task id used again starts a new stream.
  EXPECT_EQ(*bus.append("t", EventKind::kTextChunk, "again"), 1u);
}

TEST_F(RedisEventBusTest, IdleOpenStreamExpiresUnlessSomeoneIsWatching) {
  RedisEventBus bus(config({.idle_timeout = Millis(400), .poll_interval = Millis(50)}), *pool_);
  ASSERT_TRUE(bus.open("lost").ok());
  ASSERT_TRUE(bus.open("watched").ok());
  Collector got;
  auto sub = bus.subscribe("watched", 0, got.callback());
  ASSERT_TRUE(sub.ok());
  EXPECT_TRUE(wait_gone(bus, "lost"));
  // Twice its idle timeout later the watched one is still there: the reader renews its TTL.
  EXPECT_FALSE(wait_gone(bus, "watched", std::chrono::milliseconds(800)));
  sub->cancel();
  EXPECT_TRUE(wait_gone(bus, "watched"));
}

TEST_F(RedisEventBusTest, CancelStopsDeliveries) {
  RedisEventBus bus(config(), *pool_);
  ASSERT_TRUE(bus.open("t").ok());
  Collector cancelled;
  Collector witness;  // delivered in the same pass, after: when it has an event, so would the other
  auto sub = bus.subscribe("t", 0, cancelled.callback());
  ASSERT_TRUE(sub.ok());
  auto w = bus.subscribe("t", 0, witness.callback());
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE(bus.append("t", EventKind::kTextChunk, "a").ok());
  ASSERT_TRUE(cancelled.wait_for(1));
  sub->cancel();
  sub->cancel();  // idempotent
  ASSERT_TRUE(bus.append("t", EventKind::kTextChunk, "b").ok());
  ASSERT_TRUE(witness.wait_for(2));
  EXPECT_EQ(cancelled.size(), 1u);
  EXPECT_EQ(bus.stats().subscriptions, 1u);
}

TEST_F(RedisEventBusTest, CallbackMayCancelItsOwnSubscription) {
  RedisEventBus bus(config(), *pool_);
  ASSERT_TRUE(bus.open("t").ok());
  auto holder = std::make_shared<Subscription>();
  std::atomic<int> count{0};
  Collector other;
  auto sub = bus.subscribe("t", 0, [&](const Event&) {
    ++count;
    holder->cancel();  // must not deadlock on the bus's lock
  });
  ASSERT_TRUE(sub.ok());
  *holder = std::move(*sub);
  auto second = bus.subscribe("t", 0, other.callback());
  ASSERT_TRUE(second.ok());
  ASSERT_TRUE(bus.append("t", EventKind::kTextChunk, "a").ok());
  ASSERT_TRUE(bus.append("t", EventKind::kTextChunk, "b").ok());
  ASSERT_TRUE(other.wait_for(2));
  EXPECT_EQ(count.load(), 1);
}

TEST_F(RedisEventBusTest, RefusesOversizedContentButNotTheTerminalEvent) {
  RedisEventBus bus(config({.max_event_bytes = 8}), *pool_);
  EXPECT_EQ(bus.append("t", EventKind::kTextChunk, std::string(9, 'x')).error(), Errc::kLimitExceeded);
  EXPECT_TRUE(bus.append("t", EventKind::kTextChunk, std::string(8, 'x')).ok());
  EXPECT_TRUE(bus.append("t", EventKind::kError, std::string(100, 'e')).ok());
}

TEST_F(RedisEventBusTest, ConcurrentStreamsArriveCompleteAndInOrder) {
  RedisEventBus bus(config(), *pool_);
  constexpr int kTasks = 4;
  static constexpr std::uint64_t kEvents = 500;
  std::vector<Collector> got(kTasks);
  std::vector<Subscription> subs;
  for (int t = 0; t < kTasks; ++t) {
    const std::string id = "task-" + std::to_string(t);
    ASSERT_TRUE(bus.open(id).ok());
    auto sub = bus.subscribe(id, 0, got[static_cast<std::size_t>(t)].callback());
    ASSERT_TRUE(sub.ok());
    subs.push_back(std::move(*sub));
  }
  std::vector<std::thread> writers;
  for (int t = 0; t < kTasks; ++t) {
    writers.emplace_back([&bus, t] {
      const std::string id = "task-" + std::to_string(t);
      for (std::uint64_t i = 1; i < kEvents; ++i) ASSERT_EQ(*bus.append(id, EventKind::kTextChunk, "tok"), i);
      ASSERT_EQ(*bus.append(id, EventKind::kDone, "{}"), kEvents);
    });
  }
  for (auto& w : writers) w.join();
  for (int t = 0; t < kTasks; ++t) {
    auto& c = got[static_cast<std::size_t>(t)];
    ASSERT_TRUE(c.wait_for(kEvents)) << t;
    const auto ids = c.ids();
    ASSERT_EQ(ids.size(), kEvents);
    for (std::uint64_t i = 0; i < kEvents; ++i) ASSERT_EQ(ids[i], i + 1);
  }
}

// ---- a dropped reader connection, on a private server ------------------------------------

TEST(RedisEventBusChaos, SubscriberSeesNoGapOrDuplicateAcrossClientKill) {
  redis::testing::PrivateRedis server;
  std::string message;
  ASSERT_TRUE(server.start(message).ok()) << message;
  redis::RedisOptions o = server.options();
  o.backoff_initial = Millis(10);
  RedisPool pool(o, {}, SteadyClock::instance());
  RedisEventBus bus({.poll_interval = Millis(50)}, pool);
  Collector got;
  ASSERT_TRUE(bus.open("t").ok());
  auto sub = bus.subscribe("t", 0, got.callback());
  ASSERT_TRUE(sub.ok());
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 10; ++i) ASSERT_TRUE(bus.append("t", EventKind::kTextChunk, "x").ok());
    ASSERT_TRUE(got.wait_for(static_cast<std::size_t>(10 * (round + 1))));
    ASSERT_EQ(server.cli("CLIENT KILL TYPE normal"), 0);  // the reader's XREAD among them
  }
  ASSERT_TRUE(bus.append("t", EventKind::kDone, "{}").ok());
  ASSERT_TRUE(got.wait_for(31));
  const auto ids = got.ids();
  ASSERT_EQ(ids.size(), 31u);
  for (std::uint64_t i = 0; i < 31; ++i) EXPECT_EQ(ids[i], i + 1);
}

}  // namespace
}  // namespace lab::runtime
