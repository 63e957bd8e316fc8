#include "runtime/events/memory_event_bus.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace lab::runtime {
namespace {

std::vector<std::uint64_t> ids_of(const std::vector<Event>& events) {
  std::vector<std::uint64_t> ids;
  for (const auto& e : events) ids.push_back(e.id);
  return ids;
}

using Ids = std::vector<std::uint64_t>;

TEST(MemoryEventBus, AppendAssignsSequentialIdsPerTask) {
  SimulatedClock clock;
  MemoryEventBus bus({}, clock);
  EXPECT_EQ(*bus.append("t1", EventKind::kTextChunk, "a"), 1u);
  EXPECT_EQ(*bus.append("t1", EventKind::kTextChunk, "b"), 2u);
  EXPECT_EQ(*bus.append("t2", EventKind::kTextChunk, "x"), 1u);
  EXPECT_EQ(*bus.append("t1", EventKind::kDone, "{}"), 3u);
}

TEST(MemoryEventBus, ReadReplaysAfterLastEventId) {
  SimulatedClock clock;
  MemoryEventBus bus({}, clock);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(bus.append("t", EventKind::kTextChunk, std::to_string(i)).ok());
  auto all = bus.read("t", 0, 100);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(ids_of(all->events), (Ids{1, 2, 3, 4, 5}));
  EXPECT_EQ(all->events[2].data, "2");
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

TEST(MemoryEventBus, SubscribeReplaysBacklogThenFollowsLiveEventsInOrder) {
  SimulatedClock clock;
  MemoryEventBus bus({}, clock);
  ASSERT_TRUE(bus.append("t", EventKind::kTextChunk, "1").ok());
  ASSERT_TRUE(bus.append("t", EventKind::kTextChunk, "2").ok());
  std::vector<Event> got;
  auto sub = bus.subscribe("t", 1, [&](const Event& e) { got.push_back(e); });
  ASSERT_TRUE(sub.ok());
  EXPECT_FALSE(sub->ended());
  EXPECT_EQ(ids_of(got), (Ids{2}));  // the backlog arrives inside subscribe()
  ASSERT_TRUE(bus.append("t", EventKind::kToolStart, "{}").ok());
  ASSERT_TRUE(bus.append("t", EventKind::kToolComplete, "{}").ok());
  ASSERT_TRUE(bus.append("t", EventKind::kDone, "{}").ok());
  EXPECT_EQ(ids_of(got), (Ids{2, 3, 4, 5}));
  EXPECT_EQ(got.back().kind, EventKind::kDone);
  EXPECT_EQ(bus.stats().subscribers, 0u);  // the terminal event ended the subscription
}

TEST(MemoryEventBus, TerminalEventEndsTheStreamExactlyOnce) {
  SimulatedClock clock;
  MemoryEventBus bus({}, clock);
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

TEST(MemoryEventBus, SubscribeToFinishedStreamReplaysAndEnds) {
  SimulatedClock clock;
  MemoryEventBus bus({}, clock);
  ASSERT_TRUE(bus.append("t", EventKind::kTextChunk, "a").ok());
  ASSERT_TRUE(bus.append("t", EventKind::kDone, "{}").ok());
  std::vector<Event> got;
  auto sub = bus.subscribe("t", 0, [&](const Event& e) { got.push_back(e); });
  ASSERT_TRUE(sub.ok());
  EXPECT_TRUE(sub->ended());
  EXPECT_EQ(ids_of(got), (Ids{1, 2}));
  // Reconnecting with the terminal event's id gets nothing, and knows the stream is over.
  got.clear();
  auto again = bus.subscribe("t", 2, [&](const Event& e) { got.push_back(e); });
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->ended());
  EXPECT_TRUE(got.empty());
}

TEST(MemoryEventBus, OpenMakesATaskKnownBeforeItsFirstEvent) {
  SimulatedClock clock;
  MemoryEventBus bus({}, clock);
  std::vector<Event> got;
  EXPECT_EQ(bus.subscribe("t", 0, [&](const Event& e) { got.push_back(e); }).error(), Errc::kNotFound);
  ASSERT_TRUE(bus.open("t").ok());
  ASSERT_TRUE(bus.open("t").ok());  // idempotent
  auto sub = bus.subscribe("t", 0, [&](const Event& e) { got.push_back(e); });
  ASSERT_TRUE(sub.ok());
  EXPECT_TRUE(got.empty());
  ASSERT_TRUE(bus.append("t", EventKind::kTextChunk, "first").ok());
  EXPECT_EQ(ids_of(got), (Ids{1}));
  EXPECT_EQ(bus.open("").error(), Errc::kInvalidArgument);
}

TEST(MemoryEventBus, TrimsOldEventsAndReportsTruncation) {
  SimulatedClock clock;
  MemoryEventBus bus({.max_events_per_stream = 3}, clock);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(bus.append("t", EventKind::kTextChunk, "x").ok());
  auto from_start = bus.read("t", 0, 10);
  ASSERT_TRUE(from_start.ok());
  EXPECT_EQ(ids_of(from_start->events), (Ids{3, 4, 5}));
  EXPECT_TRUE(from_start->truncated);
  auto from_two = bus.read("t", 2, 10);
  ASSERT_TRUE(from_two.ok());
  EXPECT_FALSE(from_two->truncated);  // nothing after id 2 is missing
  std::vector<Event> got;
  auto sub = bus.subscribe("t", 1, [&](const Event& e) { got.push_back(e); });
  ASSERT_TRUE(sub.ok());
  EXPECT_TRUE(sub->truncated());
  EXPECT_EQ(ids_of(got), (Ids{3, 4, 5}));
  ASSERT_TRUE(bus.append("t", EventKind::kDone, "{}").ok());  // the terminal event is newest: kept
  auto tail = bus.read("t", 0, 10);
  ASSERT_TRUE(tail.ok());
  EXPECT_EQ(ids_of(tail->events), (Ids{4, 5, 6}));
  EXPECT_EQ(bus.stats().trimmed_events, 3u);
}

TEST(MemoryEventBus, FinishedStreamExpiresAfterRetention) {
  SimulatedClock clock;
  MemoryEventBus bus({.retention = Seconds(60)}, clock);
  ASSERT_TRUE(bus.append("t", EventKind::kDone, "{}").ok());
  clock.advance(Seconds(59));
  EXPECT_TRUE(bus.read("t", 0, 10).ok());
  clock.advance(Seconds(1));
  EXPECT_EQ(bus.read("t", 0, 10).error(), Errc::kNotFound);
  EXPECT_EQ(bus.stats().expired_streams, 1u);
  EXPECT_EQ(bus.stats().bytes, 0u);
}

TEST(MemoryEventBus, ReopenedTaskIsNotExpiredByItsPredecessorsRetention) {
  SimulatedClock clock;
  MemoryEventBus bus({.retention = Seconds(60)}, clock);
  ASSERT_TRUE(bus.append("t", EventKind::kDone, "{}").ok());
  clock.advance(Seconds(60));
  ASSERT_TRUE(bus.purge_expired() == 1);
  ASSERT_TRUE(bus.append("t", EventKind::kTextChunk, "again").ok());
  clock.advance(Seconds(30));
  ASSERT_TRUE(bus.append("t", EventKind::kDone, "{}").ok());
  clock.advance(Seconds(59));
  EXPECT_TRUE(bus.read("t", 0, 10).ok());
}

TEST(MemoryEventBus, IdleOpenStreamExpiresUnlessSomeoneIsWatching) {
  SimulatedClock clock;
  MemoryEventBus bus({.idle_timeout = Seconds(100)}, clock);
  ASSERT_TRUE(bus.open("lost").ok());
  ASSERT_TRUE(bus.open("watched").ok());
  auto sub = bus.subscribe("watched", 0, [](const Event&) {});
  ASSERT_TRUE(sub.ok());
  clock.advance(Seconds(99));
  EXPECT_EQ(bus.purge_expired(), 0u);
  clock.advance(Seconds(1));
  EXPECT_EQ(bus.purge_expired(), 1u);
  EXPECT_EQ(bus.read("lost", 0, 1).error(), Errc::kNotFound);
  EXPECT_TRUE(bus.read("watched", 0, 1).ok());
  sub->cancel();
  EXPECT_EQ(bus.purge_expired(), 1u);
}

TEST(MemoryEventBus, StreamBoundEvictsOldestFinishedStreamFirst) {
  SimulatedClock clock;
  MemoryEventBus bus({.max_streams = 2}, clock);
  ASSERT_TRUE(bus.append("done-1", EventKind::kDone, "{}").ok());
  ASSERT_TRUE(bus.open("open-1").ok());
  ASSERT_TRUE(bus.open("open-2").ok());  // evicts done-1
  EXPECT_EQ(bus.read("done-1", 0, 1).error(), Errc::kNotFound);
  EXPECT_EQ(bus.open("open-3").error(), Errc::kLimitExceeded);  // nothing finished to evict
  EXPECT_EQ(bus.append("open-3", EventKind::kTextChunk, "x").error(), Errc::kLimitExceeded);
  const auto s = bus.stats();
  EXPECT_EQ(s.evicted_streams, 1u);
  EXPECT_EQ(s.rejected, 2u);
  EXPECT_EQ(s.open_streams, 2u);
}

TEST(MemoryEventBus, ByteBoundRefusesContentButAlwaysAcceptsTheTerminalEvent) {
  SimulatedClock clock;
  const std::size_t per_event = 10 + MemoryEventBus::kEventOverheadBytes;
  MemoryEventBus bus({.max_total_bytes = 2 * per_event}, clock);
  const std::string ten(10, 'x');
  ASSERT_TRUE(bus.append("t", EventKind::kTextChunk, ten).ok());
  ASSERT_TRUE(bus.append("t", EventKind::kTextChunk, ten).ok());
  EXPECT_EQ(bus.append("t", EventKind::kTextChunk, ten).error(), Errc::kLimitExceeded);
  EXPECT_TRUE(bus.append("t", EventKind::kError, ten).ok());
  // Now finished, t is the first to go when another stream needs room.
  ASSERT_TRUE(bus.append("u", EventKind::kTextChunk, ten).ok());
  EXPECT_EQ(bus.read("t", 0, 1).error(), Errc::kNotFound);
  EXPECT_EQ(bus.stats().bytes, per_event);
}

TEST(MemoryEventBus, CancelStopsDeliveries) {
  SimulatedClock clock;
  MemoryEventBus bus({}, clock);
  ASSERT_TRUE(bus.open("t").ok());
  int count = 0;
  auto sub = bus.subscribe("t", 0, [&](const Event&) { ++count; });
  ASSERT_TRUE(sub.ok());
  ASSERT_TRUE(bus.append("t", EventKind::kTextChunk, "a").ok());
  sub->cancel();
  sub->cancel();  // idempotent
  ASSERT_TRUE(bus.append("t", EventKind::kTextChunk, "b").ok());
  EXPECT_EQ(count, 1);
  {
    auto scoped = bus.subscribe("t", 2, [&](const Event&) { ++count; });
    ASSERT_TRUE(scoped.ok());
  }  // destroyed: cancelled
  ASSERT_TRUE(bus.append("t", EventKind::kTextChunk, "c").ok());
  EXPECT_EQ(count, 1);
  EXPECT_EQ(bus.stats().subscribers, 0u);
}

TEST(MemoryEventBus, CallbackMayCancelItsOwnSubscription) {
  SimulatedClock clock;
  MemoryEventBus bus({}, clock);
  ASSERT_TRUE(bus.open("t").ok());
  auto holder = std::make_shared<Subscription>();
  int count = 0;
  int other = 0;
  auto sub = bus.subscribe("t", 0, [&](const Event&) {
    ++count;
    holder->cancel();  // must not deadlock on the bus's lock
  });
  ASSERT_TRUE(sub.ok());
  *holder = std::move(*sub);
  auto second = bus.subscribe("t", 0, [&](const Event&) { ++other; });
  ASSERT_TRUE(second.ok());
  ASSERT_TRUE(bus.append("t", EventKind::kTextChunk, "a").ok());
  ASSERT_TRUE(bus.append("t", EventKind::kTextChunk, "b").ok());
  EXPECT_EQ(count, 1);
  EXPECT_EQ(other, 2);  // the other subscriber is unaffected
}

constexpr std::uint64_t kEvents = 2000;

TEST(MemoryEventBus, ConcurrentStreamsArriveCompleteAndInOrder) {
  SteadyClock clock;
  MemoryEventBus bus({}, clock);
  constexpr int kTasks = 4;
  std::vector<std::vector<std::uint64_t>> got(kTasks);
  std::vector<Subscription> subs;
  for (int t = 0; t < kTasks; ++t) {
    const std::string id = "task-" + std::to_string(t);
    ASSERT_TRUE(bus.open(id).ok());
    auto sub = bus.subscribe(id, 0, [&got, t](const Event& e) { got[static_cast<std::size_t>(t)].push_back(e.id); });
    ASSERT_TRUE(sub.ok());
    subs.push_back(std::move(*sub));
  }
  std::vector<std::thread> writers;
  for (int t = 0; t < kTasks; ++t) {
    writers.emplace_back([&bus, t] {
      const std::string id = "task-" + std::to_string(t);
      for (std::uint64_t i = 1; i < kEvents; ++i) {
        ASSERT_EQ(*bus.append(id, EventKind::kTextChunk, "tok"), i);
      }
      ASSERT_EQ(*bus.append(id, EventKind::kDone, "{}"), kEvents);
    });
  }
  for (auto& w : writers) w.join();
  for (int t = 0; t < kTasks; ++t) {
    const auto& ids = got[static_cast<std::size_t>(t)];
    ASSERT_EQ(ids.size(), kEvents);
    for (std::uint64_t i = 0; i < kEvents; ++i) ASSERT_EQ(ids[i], i + 1);
  }
}

}  // namespace
}  // namespace lab::runtime
