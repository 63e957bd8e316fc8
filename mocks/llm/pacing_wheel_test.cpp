// The pacing wheel on a real io_context: order, batching by quantum, re-arming for an earlier
// slot, cancellation (also from inside a batch) and teardown with a wait still pending. Times
// are a few milliseconds ahead; each run is bounded by run_for, never by a sleep.

#include "mocks/llm/pacing_wheel.hpp"

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <vector>

#include <gtest/gtest.h>

namespace lab::mocks::llm {
namespace {

using namespace std::chrono_literals;
using Steady = std::chrono::steady_clock;

/// Bound on every io_context run in these tests.
constexpr auto kRunBound = 5s;

/// Records when it ran; optionally does something more from on_due.
class Probe final : public PacingWheel::Entry {
 public:
  void on_due(TimePoint now) noexcept override {
    ran_at.push_back(Steady::now());
    batch_now.push_back(now);
    if (then) then(*this);
  }
  std::vector<TimePoint> ran_at;
  std::vector<TimePoint> batch_now;
  std::function<void(Probe&)> then;
};

TEST(PacingWheel, RunsEntriesInDeadlineOrderOnceTheirTimeHasPassed) {
  boost::asio::io_context ctx{1};
  PacingWheel wheel(ctx.get_executor(), Nanos(0));
  Probe a, b, c;
  std::vector<Probe*> order;
  int left = 3;
  for (Probe* p : {&a, &b, &c}) {
    p->then = [&, p](Probe&) {
      order.push_back(p);
      if (--left == 0) ctx.stop();
    };
  }
  const TimePoint start = Steady::now();
  wheel.schedule(a, start + 30ms);
  wheel.schedule(b, start + 10ms);
  wheel.schedule(c, start + 20ms);
  EXPECT_EQ(wheel.size(), 3u);
  ctx.run_for(kRunBound);
  ASSERT_EQ(order, (std::vector<Probe*>{&b, &c, &a}));
  EXPECT_GE(b.ran_at.at(0), start + 10ms);
  EXPECT_GE(c.ran_at.at(0), start + 20ms);
  EXPECT_GE(a.ran_at.at(0), start + 30ms);
  EXPECT_EQ(wheel.size(), 0u);
  EXPECT_EQ(wheel.runs(), 3u);
}

TEST(PacingWheel, EntriesDueInOneQuantumRunAsOneBatch) {
  boost::asio::io_context ctx{1};
  const Nanos quantum = 20ms;
  PacingWheel wheel(ctx.get_executor(), quantum);
  // Deadlines spread over one quantum (past its start, up to its end) share one slot.
  const auto ns = Steady::now().time_since_epoch().count();
  const TimePoint slot_start(Nanos((ns / quantum.count() + 2) * quantum.count()));
  std::vector<std::unique_ptr<Probe>> probes;
  int left = 10;
  for (int i = 0; i < 10; ++i) {
    probes.push_back(std::make_unique<Probe>());
    probes.back()->then = [&](Probe&) {
      if (--left == 0) ctx.stop();
    };
    wheel.schedule(*probes.back(), slot_start + Micros(1 + i * 1900));
  }
  ctx.run_for(kRunBound);
  ASSERT_EQ(left, 0);
  EXPECT_EQ(wheel.batches(), 1u);
  EXPECT_EQ(wheel.runs(), 10u);
  for (const auto& p : probes) {
    EXPECT_EQ(p->batch_now.at(0), probes.front()->batch_now.at(0));
    EXPECT_GE(p->ran_at.at(0), slot_start + quantum);  // rounded up: never early
  }
}

TEST(PacingWheel, AnEarlierEntryRearmsTheWait) {
  boost::asio::io_context ctx{1};
  PacingWheel wheel(ctx.get_executor(), Micros(250));
  Probe late, early;
  early.then = [&](Probe&) { ctx.stop(); };
  const TimePoint start = Steady::now();
  wheel.schedule(late, start + 60s);
  wheel.schedule(early, start + 5ms);
  ctx.run_for(kRunBound);
  ASSERT_EQ(early.ran_at.size(), 1u);
  EXPECT_LT(early.ran_at[0], start + 3s);  // not held back by the wait armed for `late`
  EXPECT_TRUE(late.ran_at.empty());
  EXPECT_TRUE(late.scheduled());
}

TEST(PacingWheel, AnEntryThatSchedulesItselfAgainRunsAgain) {
  boost::asio::io_context ctx{1};
  PacingWheel wheel(ctx.get_executor(), Micros(250));
  Probe stream;
  stream.then = [&](Probe& self) {
    if (self.ran_at.size() == 5) {
      ctx.stop();
      return;
    }
    wheel.schedule(self, self.ran_at.back() + 2ms);
  };
  wheel.schedule(stream, Steady::now() + 1ms);
  ctx.run_for(kRunBound);
  ASSERT_EQ(stream.ran_at.size(), 5u);
  for (std::size_t i = 1; i < stream.ran_at.size(); ++i) {
    EXPECT_GE(stream.ran_at[i] - stream.ran_at[i - 1], 2ms);
  }
}

TEST(PacingWheel, CancelledAndDestroyedEntriesDoNotRun) {
  boost::asio::io_context ctx{1};
  PacingWheel wheel(ctx.get_executor(), Nanos(0));
  Probe cancelled, last;
  auto destroyed = std::make_unique<Probe>();
  last.then = [&](Probe&) { ctx.stop(); };
  const TimePoint start = Steady::now();
  wheel.schedule(cancelled, start + 2ms);
  wheel.schedule(*destroyed, start + 3ms);
  wheel.schedule(last, start + 6ms);
  wheel.cancel(cancelled);
  destroyed.reset();
  EXPECT_EQ(wheel.size(), 1u);
  EXPECT_FALSE(cancelled.scheduled());
  ctx.run_for(kRunBound);
  EXPECT_TRUE(cancelled.ran_at.empty());
  EXPECT_EQ(last.ran_at.size(), 1u);
  EXPECT_EQ(wheel.runs(), 1u);
}

TEST(PacingWheel, AnEntryCancelledByAnotherInTheSameBatchDoesNotRun) {
  boost::asio::io_context ctx{1};
  PacingWheel wheel(ctx.get_executor(), 20ms);
  Probe first, second;
  bool second_cancelled = false;
  // Whichever runs first cancels the other: exactly one of them runs.
  first.then = [&](Probe&) {
    second_cancelled = second.scheduled();
    wheel.cancel(second);
    ctx.stop();
  };
  second.then = [&](Probe&) {
    second_cancelled = first.scheduled();
    wheel.cancel(first);
    ctx.stop();
  };
  const TimePoint at = Steady::now() + 5ms;
  wheel.schedule(first, at);
  wheel.schedule(second, at);
  ctx.run_for(kRunBound);
  EXPECT_TRUE(second_cancelled);
  EXPECT_EQ(first.ran_at.size() + second.ran_at.size(), 1u);
  EXPECT_EQ(wheel.size(), 0u);
}

TEST(PacingWheel, TheIoContextCanGoFirstWithAWaitPending) {
  std::unique_ptr<PacingWheel> wheel;  // outlives the io_context, as the mock's wheels do
  Probe entry;
  {
    boost::asio::io_context ctx{1};
    wheel = std::make_unique<PacingWheel>(ctx.get_executor(), Micros(250));
    wheel->schedule(entry, Steady::now() + 60s);
    ctx.run_for(1ms);
  }  // the wait's handler (and the wheel's timer with it) is destroyed here
  EXPECT_TRUE(entry.scheduled());
  wheel->cancel(entry);
  EXPECT_EQ(wheel->size(), 0u);
  wheel.reset();
  EXPECT_TRUE(entry.ran_at.empty());
}

}  // namespace
}  // namespace lab::mocks::llm
