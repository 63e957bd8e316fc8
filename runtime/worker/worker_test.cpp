// Workers over the in-memory backends and an in-process mock LLM: the task protocol (one
// terminal event, effects stored once), redelivery after a crash, per-agent ordering.
// Leases, locks and breakers run on a SimulatedClock, so "the lease expired" is one advance().

#include "runtime/worker/worker.hpp"

#include <gtest/gtest.h>

#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

#include "common/text/json_util.hpp"
#include "mocks/llm/mock_llm.hpp"
#include "runtime/events/memory_event_bus.hpp"
#include "runtime/locks/memory_lock_service.hpp"
#include "runtime/queue/memory_queue.hpp"
#include "runtime/service/testing/sync_client.hpp"
#include "runtime/stores/memory_store.hpp"

namespace lab::runtime {
namespace {

using mocks::llm::Distribution;
using mocks::llm::FaultRule;
using mocks::llm::MockLlm;
using mocks::llm::Profile;
using testing::wait_until;

Profile fast_profile() {
  Profile p;
  p.latency.ttft_ms = Distribution::constant(0);
  p.latency.prefill_ms_per_token = 0;
  p.latency.itl_ms = Distribution::constant(0);
  p.output.tokens = Distribution::constant(6);
  p.tool_call_probability = 1.0;
  return p;
}

class WorkerTest : public ::testing::Test {
 protected:
  WorkerTest() : mock_(fast_profile(), mock_clock_, 3) { mock_.start(); }
  ~WorkerTest() override {
    for (auto& w : workers_) w->stop(Nanos::zero());
  }

  Worker& add_worker(std::string id) {
    WorkerConfig c;
    c.worker_id = std::move(id);
    c.llm.providers = {{mock_.url(), "mock"}};
    c.llm.retry.max_retries = 0;
    c.tool.latency = Nanos::zero();
    workers_.push_back(std::make_unique<Worker>(
        c, WorkerDeps{clock_, queue_, bus_, store_, store_, locks_, breakers_, [] { return DegradationView{}; },
                      metrics_}));
    return *workers_.back();
  }

  std::string create_agent(std::string user = "u1") {
    const std::string id = "agent-" + std::to_string(++agents_);
    EXPECT_TRUE(store_.create_agent(NewAgent{id, std::move(user), "a", "default"}).ok());
    return id;
  }

  Task task(const std::string& task_id, const std::string& agent_id, std::string_view message = "hello") {
    boost::json::object payload;
    payload["user"] = "u1";
    payload["message"] = message;
    EXPECT_TRUE(bus_.open(task_id).ok());
    return Task{task_id, agent_id, Priority::kNormal, boost::json::serialize(payload)};
  }

  void enqueue(const Task& t) { ASSERT_TRUE(queue_.enqueue(t).accepted()); }

  bool finished(const std::string& task_id) {
    auto s = bus_.read(task_id, 0, 100'000);
    return s.ok() && s->finished;
  }

  std::vector<Event> events(const std::string& task_id) {
    auto s = bus_.read(task_id, 0, 100'000);
    return s.ok() ? s->events : std::vector<Event>{};
  }

  static int terminals(const std::vector<Event>& events) {
    int n = 0;
    for (const auto& e : events) n += is_terminal(e.kind) ? 1 : 0;
    return n;
  }

  SimulatedClock mock_clock_;
  MockLlm mock_;
  SimulatedClock clock_;
  MemoryStore store_;
  MemoryTaskQueue queue_{MemoryQueueConfig{}, clock_};
  MemoryEventBus bus_{MemoryEventBusConfig{}, clock_};
  MemoryLockService locks_{clock_};
  resilience::CircuitBreakerRegistry breakers_{clock_};
  RuntimeMetrics metrics_;
  std::vector<std::unique_ptr<Worker>> workers_;
  int agents_ = 0;
};

TEST_F(WorkerTest, RunsATurnWithAToolCallToDoneAndStoresIt) {
  Worker& w = add_worker("worker-1");
  w.start();
  const std::string agent = create_agent();
  enqueue(task("t1", agent));
  ASSERT_TRUE(wait_until([&] { return finished("t1"); }));
  const auto ev = events("t1");
  ASSERT_GE(ev.size(), 4u);
  EXPECT_EQ(ev[0].kind, EventKind::kToolStart);
  EXPECT_EQ(ev[1].kind, EventKind::kToolComplete);
  EXPECT_EQ(ev[2].kind, EventKind::kTextChunk);
  EXPECT_EQ(ev.back().kind, EventKind::kDone);
  EXPECT_EQ(terminals(ev), 1);
  for (const auto& e : ev) {
    auto data = json::parse(e.data);
    ASSERT_TRUE(data) << e.data;
    EXPECT_EQ(data->at("kind").as_string(), to_string(e.kind));
    EXPECT_EQ(data->at("taskId").as_string(), "t1");
  }
  const auto done = json::parse(ev.back().data);
  EXPECT_EQ(done->at("toolCalls").as_int64(), 1);
  EXPECT_EQ(done->at("llmCalls").as_int64(), 2);
  EXPECT_EQ(done->at("provider").as_string(), "llm_primary");

  ASSERT_TRUE(wait_until([&] { return queue_.stats().acked == 1; }));
  EXPECT_EQ(store_.get_agent(agent)->state, AgentState::kActive);
  auto history = store_.load_history(agent, 10);
  ASSERT_EQ(history->messages.size(), 2u);
  EXPECT_EQ(history->messages[0].role, Role::kUser);
  EXPECT_EQ(history->messages[0].content, "hello");
  EXPECT_EQ(history->messages[1].role, Role::kAssistant);
  EXPECT_FALSE(history->messages[1].content.empty());
  EXPECT_EQ(store_.recent_tool_calls(agent, 10)->size(), 1u);
  EXPECT_EQ(store_.turn_totals(agent)->turns, 1u);
  EXPECT_EQ(metrics_.ledger().completed, 1u);
}

TEST_F(WorkerTest, TheSameTaskIdTwiceIsStoredOnceWithOneTerminalEvent) {
  const std::string agent = create_agent();
  const Task t = task("dup", agent);
  enqueue(t);
  enqueue(t);
  Worker& w = add_worker("worker-1");
  w.start();
  ASSERT_TRUE(wait_until([&] { return queue_.stats().acked == 2; }));
  EXPECT_EQ(store_.turn_totals(agent)->turns, 1u);
  EXPECT_EQ(store_.load_history(agent, 10)->total, 2u);
  EXPECT_EQ(terminals(events("dup")), 1);
  const auto ledger = metrics_.ledger();
  EXPECT_EQ(ledger.completed, 1u);
  EXPECT_EQ(ledger.commits_applied, 1u);
  EXPECT_EQ(ledger.duplicate_terminals, 1u);
}

TEST_F(WorkerTest, ACrashedWorkersTaskIsRedeliveredAndCompletedOnce) {
  FaultRule hang;
  hang.hang_rate = 1.0;
  const auto fault = mock_.add_fault(hang);
  Worker& a = add_worker("worker-1");
  a.start();
  const std::string agent = create_agent();
  enqueue(task("t-crash", agent));
  // A's turn began (the agent is PROCESSING under A's lock) and waits on the hung LLM.
  ASSERT_TRUE(wait_until([&] { return store_.get_agent(agent)->state == AgentState::kProcessing; }));
  a.stop(Nanos::zero());  // a crash: nothing acked, the agent lock still held
  mock_.remove_fault(fault);

  // The lease (30 s) and the agent lock (60 s) run out; another worker takes over.
  clock_.advance(Seconds(61));
  Worker& b = add_worker("worker-2");
  b.start();
  ASSERT_TRUE(wait_until([&] { return finished("t-crash"); }));
  ASSERT_TRUE(wait_until([&] { return queue_.stats().acked == 1; }));
  EXPECT_EQ(queue_.stats().redelivered, 1u);
  EXPECT_EQ(terminals(events("t-crash")), 1);
  EXPECT_EQ(events("t-crash").back().kind, EventKind::kDone);
  EXPECT_EQ(store_.turn_totals(agent)->turns, 1u);
  const auto rec = store_.get_agent(agent);
  EXPECT_EQ(rec->state, AgentState::kActive);
  EXPECT_EQ(rec->worker_id, "worker-2");
}

TEST_F(WorkerTest, TasksOfOneAgentRunOneAtATimeInArrivalOrder) {
  const std::string agent = create_agent();
  for (int i = 1; i <= 4; ++i) enqueue(task("t" + std::to_string(i), agent, "m" + std::to_string(i)));
  Worker& w = add_worker("worker-1");
  w.start();
  ASSERT_TRUE(wait_until([&] { return queue_.stats().acked == 4; }));
  auto history = store_.load_history(agent, 100);
  ASSERT_EQ(history->messages.size(), 8u);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(history->messages[static_cast<std::size_t>(2 * i)].content, "m" + std::to_string(i + 1));
  }
  EXPECT_EQ(metrics_.ledger().completed, 4u);
}

TEST_F(WorkerTest, AnAgentBusyElsewhereIsRetriedOnceItsLockIsFree) {
  const std::string agent = create_agent();
  auto held = locks_.try_acquire(agent, "another-worker", Seconds(60));
  ASSERT_TRUE(held.ok());
  Worker& w = add_worker("worker-1");
  w.start();
  enqueue(task("t-busy", agent));
  ASSERT_TRUE(wait_until([&] { return queue_.stats().nacked == 1; }));
  EXPECT_FALSE(finished("t-busy"));
  ASSERT_TRUE(locks_.release(agent, "another-worker", held->fence).ok());
  clock_.advance(Millis(20));  // the nack delay (lock_retry_delay × 1st delivery)
  ASSERT_TRUE(wait_until([&] { return finished("t-busy"); }));
  EXPECT_EQ(events("t-busy").back().kind, EventKind::kDone);
  EXPECT_EQ(queue_.stats().leased, 2u);
  EXPECT_EQ(store_.turn_totals(agent)->turns, 1u);
}

TEST_F(WorkerTest, AnLlmFailureEndsTheTaskWithOneErrorEventAndNoEffects) {
  FaultRule down;
  down.error_rate = 1.0;
  down.status = 503;
  mock_.add_fault(down);
  Worker& w = add_worker("worker-1");
  w.start();
  const std::string agent = create_agent();
  enqueue(task("t-err", agent));
  ASSERT_TRUE(wait_until([&] { return finished("t-err"); }));
  const auto ev = events("t-err");
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].kind, EventKind::kError);
  EXPECT_EQ(json::parse(ev[0].data)->at("code").as_string(), "llm_failed");
  ASSERT_TRUE(wait_until([&] { return queue_.stats().acked == 1; }));
  EXPECT_EQ(store_.load_history(agent, 10)->total, 0u);
  EXPECT_EQ(store_.get_agent(agent)->state, AgentState::kActive);
  EXPECT_EQ(metrics_.ledger().failed, 1u);
}

TEST_F(WorkerTest, APausedMembershipEndsQueuedTasksWithAnError) {
  const std::string agent = create_agent("u-paused");
  enqueue(task("t-paused", agent));
  ASSERT_TRUE(store_.set_membership_paused("u-paused", true).ok());
  Worker& w = add_worker("worker-1");
  w.start();
  ASSERT_TRUE(wait_until([&] { return finished("t-paused"); }));
  const auto ev = events("t-paused");
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(json::parse(ev[0].data)->at("code").as_string(), "membership_paused");
  ASSERT_TRUE(wait_until([&] { return queue_.stats().acked == 1; }));
}

TEST_F(WorkerTest, AMalformedPayloadIsDeadLetteredWithAnError) {
  const std::string agent = create_agent();
  ASSERT_TRUE(bus_.open("t-bad").ok());
  enqueue(Task{"t-bad", agent, Priority::kNormal, "not json"});
  Worker& w = add_worker("worker-1");
  w.start();
  ASSERT_TRUE(wait_until([&] { return finished("t-bad"); }));
  EXPECT_EQ(json::parse(events("t-bad")[0].data)->at("code").as_string(), "bad_task");
  EXPECT_EQ(queue_.stats().dead_lettered, 1u);
}

TEST_F(WorkerTest, StopDrainsWhatIsQueuedWhenTheQueueIsClosed) {
  const std::string agent = create_agent();
  const std::string other = create_agent();
  for (int i = 0; i < 6; ++i) enqueue(task("q" + std::to_string(i), i % 2 ? agent : other));
  Worker& w = add_worker("worker-1");
  w.start();
  queue_.close();
  w.stop(Seconds(10));
  for (int i = 0; i < 6; ++i) EXPECT_TRUE(finished("q" + std::to_string(i))) << i;
  EXPECT_EQ(queue_.stats().acked, 6u);
}

}  // namespace
}  // namespace lab::runtime
