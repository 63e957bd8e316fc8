#include "runtime/scheduler/scheduler.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "runtime/events/memory_event_bus.hpp"
#include "runtime/locks/memory_lock_service.hpp"
#include "runtime/queue/memory_queue.hpp"
#include "runtime/stores/memory_store.hpp"

namespace lab::runtime {
namespace {

using S = AgentState;

class SchedulerTest : public ::testing::Test {
 protected:
  SchedulerTest() { make({}); }

  void make(SchedulerConfig config) {
    config.worker_id = "w1";
    sched_ = std::make_unique<Scheduler>(config, clock_, store_, store_, locks_);
  }

  void create(const std::string& id, const std::string& user = "u1") {
    ASSERT_TRUE(store_.create_agent(NewAgent{id, user, "n", "tpl"}).ok());
  }

  // What a worker does for a turn that produced one user and one assistant message.
  TurnEnd commit(const Turn& turn) {
    TurnWrite w{turn.agent_id, turn.task_id, turn.fence,
                {Message{0, Role::kUser, "q:" + turn.task_id}, Message{0, Role::kAssistant, "a:" + turn.task_id}},
                {}, {}};
    auto r = store_.commit_turn(w);
    EXPECT_TRUE(r.ok());
    TurnEnd end;
    if (!r.ok() || !r->applied) return end;
    for (std::size_t i = 0; i < w.messages.size(); ++i) {
      w.messages[i].seq = r->first_seq + i;
      end.committed.push_back(w.messages[i]);
    }
    return end;
  }

  // submit + begin + commit + end for a task that runs at once; returns whether it resumed.
  bool run(const std::string& agent, const std::string& task) {
    auto adm = sched_->submit(agent, task);
    EXPECT_TRUE(adm.ok() && adm->run_now) << agent << "/" << task;
    auto turn = sched_->begin_turn(agent, task);
    EXPECT_TRUE(turn.ok()) << agent << "/" << task << ": " << turn.error().message();
    if (!turn.ok()) return false;
    const bool resumed = turn->resumed;
    auto end = commit(*turn);
    EXPECT_FALSE(sched_->end_turn(std::move(*turn), std::move(end)).has_value());
    return resumed;
  }

  S state(const std::string& agent) { return store_.get_agent(agent)->state; }

  SimulatedClock clock_;
  MemoryStore store_;
  MemoryLockService locks_{clock_};
  std::unique_ptr<Scheduler> sched_;
};

using Ids = std::vector<std::string>;

// ---- the lifecycle on a simulated clock ---------------------------------------------------

TEST_F(SchedulerTest, FirstTurnResumesFromTheStoreAndLeavesTheAgentActive) {
  create("a");
  EXPECT_EQ(state("a"), S::kReady);
  auto adm = sched_->submit("a", "t1");
  ASSERT_TRUE(adm.ok());
  EXPECT_TRUE(adm->run_now);
  EXPECT_EQ(adm->position, 0u);
  auto turn = sched_->begin_turn("a", "t1");
  ASSERT_TRUE(turn.ok());
  EXPECT_TRUE(turn->resumed);
  EXPECT_EQ(turn->fence, 1u);
  EXPECT_EQ(turn->context->user_id, "u1");
  EXPECT_EQ(turn->context->template_id, "tpl");
  EXPECT_EQ(state("a"), S::kProcessing);  // READY → PROCESSING
  EXPECT_EQ(store_.get_agent("a")->worker_id, "w1");
  EXPECT_EQ(locks_.try_acquire("a", "other", Seconds(1)).error(), Errc::kLockHeld);
  auto end = commit(*turn);
  EXPECT_FALSE(sched_->end_turn(std::move(*turn), std::move(end)).has_value());
  EXPECT_EQ(state("a"), S::kActive);  // PROCESSING → ACTIVE
  EXPECT_TRUE(locks_.try_acquire("a", "other", Seconds(1)).ok());  // released
  const auto c = sched_->counts();
  EXPECT_EQ(c.resident, 1u);
  EXPECT_EQ(c.busy, 0u);
  EXPECT_EQ(c.turns, 1u);
  EXPECT_EQ(c.resumes, 1u);
}

TEST_F(SchedulerTest, QueuedAgentGoesToProcessing) {
  create("a");
  ASSERT_TRUE(store_.transition("a", {.to = S::kQueued}).ok());  // the gateway's mark
  ASSERT_TRUE(sched_->submit("a", "t1")->run_now);
  ASSERT_TRUE(sched_->begin_turn("a", "t1").ok());
  EXPECT_EQ(state("a"), S::kProcessing);  // QUEUED → PROCESSING
  EXPECT_EQ(store_.transition("a", {.to = S::kQueued}).error(), Errc::kInvalidTransition);
}

TEST_F(SchedulerTest, IdleAgentHibernatesAfterTheIdleTimeoutAndResumesOnDemand) {
  make({.idle_timeout = Seconds(300)});
  create("a");
  run("a", "t1");
  clock_.advance(Seconds(299));
  EXPECT_EQ(sched_->tick(), 0u);
  EXPECT_EQ(state("a"), S::kActive);
  clock_.advance(Seconds(1));
  EXPECT_EQ(sched_->tick(), 1u);
  EXPECT_EQ(state("a"), S::kHibernated);  // ACTIVE → HIBERNATED
  EXPECT_EQ(store_.get_agent("a")->worker_id, "");
  EXPECT_FALSE(sched_->is_resident("a"));
  EXPECT_EQ(sched_->counts().resident, 0u);
  // A new task resumes it from the store, history included.
  ASSERT_TRUE(sched_->submit("a", "t2")->run_now);
  auto turn = sched_->begin_turn("a", "t2");
  ASSERT_TRUE(turn.ok());
  EXPECT_TRUE(turn->resumed);
  EXPECT_EQ(state("a"), S::kProcessing);  // HIBERNATED → PROCESSING
  ASSERT_EQ(turn->context->history.size(), 2u);
  EXPECT_EQ(turn->context->history[0].content, "q:t1");
  EXPECT_EQ(turn->context->history_total, 2u);
}

TEST_F(SchedulerTest, IdleTimeoutCountsFromTheLastTurnsEnd) {
  make({.idle_timeout = Seconds(100)});
  create("a");
  run("a", "t1");
  clock_.advance(Seconds(90));
  run("a", "t2");
  clock_.advance(Seconds(90));
  EXPECT_EQ(sched_->tick(), 0u);
  clock_.advance(Seconds(10));
  EXPECT_EQ(sched_->tick(), 1u);
}

TEST_F(SchedulerTest, BusyAgentIsNotHibernatedByIdleTimeout) {
  make({.idle_timeout = Seconds(10)});
  create("a");
  ASSERT_TRUE(sched_->submit("a", "t1")->run_now);
  auto turn = sched_->begin_turn("a", "t1");
  ASSERT_TRUE(turn.ok());
  clock_.advance(Seconds(3600));
  EXPECT_EQ(sched_->tick(), 0u);
  EXPECT_EQ(state("a"), S::kProcessing);
  sched_->end_turn(std::move(*turn), commit(*turn));
  EXPECT_EQ(sched_->tick(), 0u);  // idle from now on
  clock_.advance(Seconds(10));
  EXPECT_EQ(sched_->tick(), 1u);
}

// ---- per-agent ordering -------------------------------------------------------------------

TEST_F(SchedulerTest, SecondTaskForABusyAgentWaitsAndRunsInArrivalOrder) {
  create("a");
  ASSERT_TRUE(sched_->submit("a", "t1")->run_now);
  auto t1 = sched_->begin_turn("a", "t1");
  ASSERT_TRUE(t1.ok());
  auto adm2 = sched_->submit("a", "t2");
  ASSERT_TRUE(adm2.ok());
  EXPECT_FALSE(adm2->run_now);
  EXPECT_EQ(adm2->position, 1u);
  auto adm3 = sched_->submit("a", "t3");
  EXPECT_EQ(adm3->position, 2u);
  EXPECT_EQ(sched_->begin_turn("a", "t2").error(), Errc::kBusy);
  EXPECT_EQ(sched_->counts().parked_tasks, 2u);
  auto next = sched_->end_turn(std::move(*t1), commit(*t1));
  ASSERT_EQ(next, "t2");
  EXPECT_EQ(sched_->begin_turn("a", "t3").error(), Errc::kInvalidArgument);  // not the head
  auto t2 = sched_->begin_turn("a", "t2");
  ASSERT_TRUE(t2.ok());
  EXPECT_FALSE(t2->resumed);  // same worker, next token: the cache is current
  EXPECT_EQ(t2->fence, 2u);
  ASSERT_EQ(t2->context->history.size(), 2u);
  next = sched_->end_turn(std::move(*t2), commit(*t2));
  ASSERT_EQ(next, "t3");
  auto t3 = sched_->begin_turn("a", "t3");
  ASSERT_TRUE(t3.ok());
  EXPECT_FALSE(sched_->end_turn(std::move(*t3), commit(*t3)).has_value());
  auto h = store_.load_history("a", 10);
  ASSERT_EQ(h->messages.size(), 6u);
  EXPECT_EQ(h->messages[0].content, "q:t1");
  EXPECT_EQ(h->messages[2].content, "q:t2");
  EXPECT_EQ(h->messages[4].content, "q:t3");
  EXPECT_EQ(sched_->counts().resumes, 1u);
}

TEST_F(SchedulerTest, OtherAgentsAreNotHeldUpByABusyOne) {
  create("a");
  create("b");
  ASSERT_TRUE(sched_->submit("a", "t1")->run_now);
  ASSERT_TRUE(sched_->begin_turn("a", "t1").ok());
  auto b = sched_->submit("b", "t2");
  ASSERT_TRUE(b.ok());
  EXPECT_TRUE(b->run_now);
  EXPECT_TRUE(sched_->begin_turn("b", "t2").ok());
  EXPECT_EQ(sched_->counts().busy, 2u);
}

TEST_F(SchedulerTest, PendingTasksPerAgentAreBounded) {
  make({.max_pending_per_agent = 2});
  create("a");
  ASSERT_TRUE(sched_->submit("a", "t1").ok());
  ASSERT_TRUE(sched_->submit("a", "t2").ok());
  EXPECT_EQ(sched_->submit("a", "t3").error(), Errc::kLimitExceeded);
  EXPECT_EQ(sched_->submit("", "t3").error(), Errc::kInvalidArgument);
}

TEST_F(SchedulerTest, AbandonedHeadHandsOverToTheNextTask) {
  create("a");
  ASSERT_TRUE(sched_->submit("a", "t1")->run_now);
  ASSERT_TRUE(sched_->submit("a", "t2").ok());
  ASSERT_TRUE(sched_->submit("a", "t3").ok());
  EXPECT_FALSE(sched_->abandon("a", "t3").has_value());  // not the head: nothing to start
  EXPECT_EQ(sched_->abandon("a", "t1"), "t2");
  EXPECT_TRUE(sched_->begin_turn("a", "t2").ok());
  EXPECT_FALSE(sched_->abandon("a", "t2").has_value());  // running: only end_turn ends it
  EXPECT_FALSE(sched_->abandon("zz", "t").has_value());
}

TEST_F(SchedulerTest, UnknownAgentFailsToBeginAndLeavesNothingBehind) {
  ASSERT_TRUE(sched_->submit("ghost", "t1")->run_now);
  EXPECT_EQ(sched_->begin_turn("ghost", "t1").error(), Errc::kNotFound);
  EXPECT_FALSE(sched_->abandon("ghost", "t1").has_value());
  EXPECT_EQ(sched_->counts().resident, 0u);
  EXPECT_EQ(sched_->counts().parked_tasks, 0u);
  EXPECT_TRUE(locks_.try_acquire("ghost", "x", Seconds(1)).ok());  // the lock was released
}

// ---- LRU and eviction ---------------------------------------------------------------------

TEST_F(SchedulerTest, EvictsTheLeastRecentlyUsedIdleAgentOverCapacity) {
  make({.max_active_agents = 2});
  for (const char* id : {"a", "b", "c", "d"}) create(id);
  run("a", "t1");
  clock_.advance(Seconds(1));
  run("b", "t2");
  clock_.advance(Seconds(1));
  run("a", "t3");  // a is now the most recently used
  EXPECT_EQ(sched_->idle_lru(), (Ids{"b", "a"}));
  clock_.advance(Seconds(1));
  run("c", "t4");  // over capacity: b goes
  EXPECT_EQ(state("b"), S::kHibernated);
  EXPECT_EQ(state("a"), S::kActive);
  EXPECT_EQ(sched_->idle_lru(), (Ids{"a", "c"}));
  run("d", "t5");  // then a
  EXPECT_EQ(state("a"), S::kHibernated);
  EXPECT_EQ(sched_->idle_lru(), (Ids{"c", "d"}));
  const auto counts = sched_->counts();
  EXPECT_EQ(counts.resident, 2u);
  EXPECT_EQ(counts.evictions, 2u);
  EXPECT_EQ((*store_.count_by_state())[S::kHibernated], 2u);
  EXPECT_TRUE(run("b", "t6"));  // resumes from the store (and evicts c)
  EXPECT_EQ(state("c"), S::kHibernated);
}

TEST_F(SchedulerTest, BusyAndWaitingAgentsAreNeverEvicted) {
  make({.max_active_agents = 1});
  create("a");
  create("b");
  ASSERT_TRUE(sched_->submit("a", "t1")->run_now);
  auto ta = sched_->begin_turn("a", "t1");
  ASSERT_TRUE(ta.ok());
  ASSERT_TRUE(sched_->submit("b", "t2")->run_now);
  auto tb = sched_->begin_turn("b", "t2");
  ASSERT_TRUE(tb.ok());
  EXPECT_EQ(state("a"), S::kProcessing);
  auto c = sched_->counts();
  EXPECT_EQ(c.resident, 2u);
  EXPECT_EQ(c.over_capacity, 1u);
  EXPECT_EQ(c.evictions, 0u);
  sched_->end_turn(std::move(*ta), commit(*ta));
  sched_->end_turn(std::move(*tb), commit(*tb));
  // Both idle now and one over: the next resume trims back to the bound.
  create("z");
  run("z", "t3");
  EXPECT_EQ(sched_->counts().resident, 1u);
  EXPECT_EQ(sched_->idle_lru(), (Ids{"z"}));
}

// ---- hibernate command --------------------------------------------------------------------

TEST_F(SchedulerTest, HibernateCommandIsImmediateWhenIdleAndDeferredWhenBusy) {
  create("a");
  create("b");
  run("a", "t1");
  EXPECT_EQ(sched_->hibernate("a"), HibernateOutcome::kHibernated);
  EXPECT_EQ(state("a"), S::kHibernated);
  EXPECT_EQ(sched_->hibernate("a"), HibernateOutcome::kNotResident);
  ASSERT_TRUE(sched_->submit("b", "t2")->run_now);
  auto turn = sched_->begin_turn("b", "t2");
  ASSERT_TRUE(turn.ok());
  EXPECT_EQ(sched_->hibernate("b"), HibernateOutcome::kDeferred);
  EXPECT_EQ(state("b"), S::kProcessing);
  sched_->end_turn(std::move(*turn), commit(*turn));
  EXPECT_EQ(state("b"), S::kHibernated);
  EXPECT_FALSE(sched_->is_resident("b"));
}

// ---- cache coherence with the lock's fencing token ----------------------------------------

TEST_F(SchedulerTest, ContextIsReloadedWhenAnotherWorkerRanTheAgentInBetween) {
  create("a");
  run("a", "t1");
  // Another worker process takes the lock, runs a turn, releases.
  auto other = locks_.try_acquire("a", "w2", Seconds(60));
  ASSERT_TRUE(other.ok());
  ASSERT_TRUE(store_.transition("a", {.to = S::kProcessing, .fence = other->fence, .owner = "w2"}).ok());
  ASSERT_TRUE(store_.commit_turn({"a", "x1", other->fence, {Message{0, Role::kUser, "from w2"}}, {}, {}}).ok());
  ASSERT_TRUE(store_.transition("a", {.to = S::kActive, .fence = other->fence, .owner = "w2"}).ok());
  ASSERT_TRUE(locks_.release("a", "w2", other->fence).ok());
  ASSERT_TRUE(sched_->submit("a", "t2")->run_now);
  auto turn = sched_->begin_turn("a", "t2");
  ASSERT_TRUE(turn.ok());
  EXPECT_TRUE(turn->resumed);
  ASSERT_EQ(turn->context->history.size(), 3u);
  EXPECT_EQ(turn->context->history.back().content, "from w2");
}

TEST_F(SchedulerTest, LockHeldByAnotherWorkerRefusesTheTurn) {
  create("a");
  ASSERT_TRUE(locks_.try_acquire("a", "w2", Seconds(60)).ok());
  ASSERT_TRUE(sched_->submit("a", "t1")->run_now);
  EXPECT_EQ(sched_->begin_turn("a", "t1").error(), Errc::kLockHeld);
  EXPECT_EQ(sched_->counts().lock_conflicts, 1u);
  clock_.advance(Seconds(60));  // w2 vanished; its lock runs out; the head may retry
  auto turn = sched_->begin_turn("a", "t1");
  ASSERT_TRUE(turn.ok());
  EXPECT_EQ(turn->fence, 2u);
}

TEST_F(SchedulerTest, StaleWorkerIsFencedOutAndDropsItsContext) {
  make({.lock_ttl = Seconds(30)});
  create("a");
  ASSERT_TRUE(sched_->submit("a", "t1")->run_now);
  auto turn = sched_->begin_turn("a", "t1");
  ASSERT_TRUE(turn.ok());
  EXPECT_EQ(sched_->renew(*turn)->fence, turn->fence);
  clock_.advance(Seconds(31));  // the turn stalled past its TTL; w2 takes over
  auto other = locks_.try_acquire("a", "w2", Seconds(60));
  ASSERT_TRUE(other.ok());
  ASSERT_TRUE(store_.transition("a", {.to = S::kProcessing, .fence = other->fence, .owner = "w2"}).ok());
  EXPECT_EQ(sched_->renew(*turn).error(), Errc::kLockLost);
  TurnWrite late{"a", "t1", turn->fence, {Message{0, Role::kUser, "late"}}, {}, {}};
  EXPECT_EQ(store_.commit_turn(late).error(), Errc::kStaleFence);
  EXPECT_FALSE(sched_->end_turn(std::move(*turn), TurnEnd{{}, false}).has_value());
  EXPECT_FALSE(sched_->is_resident("a"));
  EXPECT_EQ(state("a"), S::kProcessing);  // still w2's
  EXPECT_EQ(store_.get_agent("a")->worker_id, "w2");
  EXPECT_EQ(locks_.try_acquire("a", "w3", Seconds(1)).error(), Errc::kLockHeld);  // w2's lock kept
}

TEST_F(SchedulerTest, MismatchedCommitSequenceDropsTheCache) {
  create("a");
  ASSERT_TRUE(sched_->submit("a", "t1")->run_now);
  auto turn = sched_->begin_turn("a", "t1");
  ASSERT_TRUE(turn.ok());
  TurnEnd wrong;
  wrong.committed.push_back(Message{7, Role::kUser, "seq 7 after a history of 0"});
  sched_->end_turn(std::move(*turn), std::move(wrong));
  EXPECT_FALSE(sched_->is_resident("a"));
  EXPECT_EQ(state("a"), S::kActive);
}

// ---- membership ---------------------------------------------------------------------------

TEST_F(SchedulerTest, MembershipPauseFreesIdleAgentsAndRejectsNewWork) {
  create("a");
  create("b");
  create("other", "u2");
  run("a", "t1");
  run("other", "t2");
  auto rejected = sched_->pause_user("u1");
  ASSERT_TRUE(rejected.ok());
  EXPECT_TRUE(rejected->empty());
  EXPECT_EQ(state("a"), S::kMembershipPaused);  // ACTIVE → MEMBERSHIP_PAUSED
  EXPECT_EQ(state("b"), S::kMembershipPaused);  // READY → MEMBERSHIP_PAUSED
  EXPECT_FALSE(sched_->is_resident("a"));
  EXPECT_TRUE(sched_->is_resident("other"));
  // b was never resident here: the store refuses its turn.
  ASSERT_TRUE(sched_->submit("b", "t3")->run_now);
  EXPECT_EQ(sched_->begin_turn("b", "t3").error(), Errc::kMembershipPaused);
  EXPECT_FALSE(sched_->abandon("b", "t3").has_value());
  EXPECT_EQ(sched_->counts().paused_rejections, 1u);
  EXPECT_EQ(sched_->counts().resident, 1u);

  auto renewed = sched_->renew_user("u1");
  ASSERT_TRUE(renewed.ok());
  EXPECT_EQ(*renewed, 2u);
  EXPECT_EQ(state("a"), S::kHibernated);  // MEMBERSHIP_PAUSED → HIBERNATED
  EXPECT_TRUE(run("a", "t4"));            // and work is accepted again, resumed from the store
  EXPECT_EQ(store_.load_history("a", 10)->total, 4u);
}

TEST_F(SchedulerTest, PauseDuringATurnLetsItFinishThenFreesTheAgentAndRejectsWaitingTasks) {
  create("a");
  run("a", "t0");  // resident, so the scheduler knows a's user
  ASSERT_TRUE(sched_->submit("a", "t1")->run_now);
  auto turn = sched_->begin_turn("a", "t1");
  ASSERT_TRUE(turn.ok());
  ASSERT_TRUE(sched_->submit("a", "t2").ok());
  ASSERT_TRUE(sched_->submit("a", "t3").ok());
  auto rejected = sched_->pause_user("u1");
  ASSERT_TRUE(rejected.ok());
  EXPECT_EQ(*rejected, (Ids{"t2", "t3"}));
  EXPECT_EQ(state("a"), S::kMembershipPaused);  // PROCESSING → MEMBERSHIP_PAUSED
  EXPECT_EQ(sched_->submit("a", "t4").error(), Errc::kMembershipPaused);
  auto end = commit(*turn);  // the running turn's effects still land
  EXPECT_FALSE(sched_->end_turn(std::move(*turn), std::move(end)).has_value());
  EXPECT_EQ(state("a"), S::kMembershipPaused);  // not ACTIVE
  EXPECT_FALSE(sched_->is_resident("a"));
  EXPECT_TRUE(*store_.turn_committed("a", "t1"));
  EXPECT_EQ(sched_->counts().parked_tasks, 0u);
}

// ---- crash recovery -----------------------------------------------------------------------

TEST_F(SchedulerTest, RecoverHibernatesWhatAPreviousIncarnationLeftBehind) {
  create("a");
  create("b");
  create("c");
  // The previous w1 died mid-turn on a and with b loaded; c belongs to w2.
  ASSERT_TRUE(store_.transition("a", {.to = S::kProcessing, .fence = 1, .owner = "w1"}).ok());
  ASSERT_TRUE(store_.transition("b", {.to = S::kActive, .fence = 1, .owner = "w1"}).ok());
  ASSERT_TRUE(store_.transition("c", {.to = S::kProcessing, .fence = 1, .owner = "w2"}).ok());
  auto recovered = sched_->recover();
  ASSERT_TRUE(recovered.ok());
  EXPECT_EQ(*recovered, (Ids{"a", "b"}));
  EXPECT_EQ(state("a"), S::kHibernated);  // PROCESSING → HIBERNATED
  EXPECT_EQ(state("b"), S::kHibernated);
  EXPECT_EQ(state("c"), S::kProcessing);
  EXPECT_TRUE(sched_->recover()->empty());
}

// ---- the worker loop, end to end -----------------------------------------------------------

// Three workers lease tasks for eight agents from one queue and run them through the scheduler,
// the way the runtime's workers do. Every task must be stored exactly once, end with exactly
// one terminal event, never overlap another turn of its agent, and run in arrival order.
TEST(SchedulerWorkers, RunEachAgentsTurnsOneAtATimeInArrivalOrder) {
  SteadyClock clock;  // nothing expires within the test: every redelivery would be a bug
  MemoryStore store;
  MemoryLockService locks(clock);
  MemoryTaskQueue queue({.max_depth = 10'000}, clock);
  MemoryEventBus bus({}, clock);
  Scheduler sched({.worker_id = "w", .max_active_agents = 4}, clock, store, store, locks);
  constexpr int kAgents = 8;
  constexpr int kTasksPerAgent = 60;
  for (int a = 0; a < kAgents; ++a) {
    ASSERT_TRUE(store.create_agent({"a" + std::to_string(a), "u", "n", "t"}).ok());
  }
  for (int i = 0; i < kTasksPerAgent; ++i) {
    for (int a = 0; a < kAgents; ++a) {
      const std::string task = "a" + std::to_string(a) + "-t" + std::to_string(i);
      ASSERT_TRUE(queue.enqueue({task, "a" + std::to_string(a), static_cast<Priority>(i % 3), ""}).accepted());
      ASSERT_TRUE(bus.open(task).ok());
    }
  }
  queue.close();

  std::mutex admit_mu;  // submit + bookkeeping of arrival order and parked receipts, together
  std::map<std::string, std::vector<std::string>> arrival;
  std::map<std::string, std::string> parked;  // task id → receipt
  std::map<std::string, std::atomic<int>> in_turn;
  for (int a = 0; a < kAgents; ++a) in_turn["a" + std::to_string(a)] = 0;
  std::atomic<int> overlaps{0};

  const auto worker = [&](const std::string& name) {
    for (;;) {
      auto lease = queue.lease(name, Seconds(30), Seconds(5));
      if (!lease.ok()) {
        ASSERT_EQ(lease.error(), Errc::kClosed);
        return;
      }
      const std::string agent = lease->task.agent_id;
      std::string task = lease->task.task_id;
      std::string receipt = lease->receipt;
      {
        std::lock_guard lk(admit_mu);
        auto adm = sched.submit(agent, task);
        ASSERT_TRUE(adm.ok());
        arrival[agent].push_back(task);
        if (!adm->run_now) {
          parked[task] = receipt;
          continue;
        }
      }
      for (;;) {
        auto turn = sched.begin_turn(agent, task);
        ASSERT_TRUE(turn.ok()) << turn.error().message();
        if (in_turn[agent].fetch_add(1) != 0) overlaps.fetch_add(1);
        ASSERT_TRUE(bus.append(task, EventKind::kTextChunk, "hi").ok());
        TurnWrite w{agent, task, turn->fence, {Message{0, Role::kUser, task}}, {}, {}};
        auto committed = store.commit_turn(w);
        ASSERT_TRUE(committed.ok());
        ASSERT_TRUE(committed->applied);
        w.messages[0].seq = committed->first_seq;
        in_turn[agent].fetch_sub(1);
        ASSERT_TRUE(bus.append(task, EventKind::kDone, "{}").ok());
        auto next = sched.end_turn(std::move(*turn), TurnEnd{std::move(w.messages), true});
        ASSERT_TRUE(queue.ack(receipt).ok());
        if (!next) break;
        task = *next;
        std::lock_guard lk(admit_mu);
        receipt = parked.at(task);
        parked.erase(task);
      }
    }
  };
  std::vector<std::thread> workers;
  for (int w = 0; w < 3; ++w) workers.emplace_back(worker, "w" + std::to_string(w));
  for (auto& t : workers) t.join();

  EXPECT_EQ(overlaps.load(), 0);
  EXPECT_TRUE(parked.empty());
  const auto qs = queue.stats();
  EXPECT_EQ(qs.acked, static_cast<std::uint64_t>(kAgents * kTasksPerAgent));
  EXPECT_EQ(qs.redelivered, 0u);
  for (int a = 0; a < kAgents; ++a) {
    const std::string agent = "a" + std::to_string(a);
    auto h = store.load_history(agent, 1000);
    ASSERT_TRUE(h.ok());
    ASSERT_EQ(h->messages.size(), static_cast<std::size_t>(kTasksPerAgent));
    for (int i = 0; i < kTasksPerAgent; ++i) {
      EXPECT_EQ(h->messages[static_cast<std::size_t>(i)].content, arrival[agent][static_cast<std::size_t>(i)]);
    }
    for (const auto& task : arrival[agent]) {
      auto events = bus.read(task, 0, 10);
      ASSERT_TRUE(events.ok());
      ASSERT_EQ(events->events.size(), 2u);
      EXPECT_EQ(events->events.back().kind, EventKind::kDone);
    }
  }
  const auto c = sched.counts();
  EXPECT_LE(c.resident, 4u);
  EXPECT_EQ(c.busy, 0u);
  EXPECT_EQ(c.turns, static_cast<std::uint64_t>(kAgents * kTasksPerAgent));
}

}  // namespace
}  // namespace lab::runtime
