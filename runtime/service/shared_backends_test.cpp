// The runtime on shared backends, as it deploys: a gateway Runtime and worker Runtimes (each
// what one `agentlab serve --role ...` process holds) sharing the real Redis and PostgreSQL
// that scripts/services started (AGENTLAB_REDIS_URL, AGENTLAB_PG_URL). Each test has its own
// Redis namespace and PostgreSQL schema. Real time throughout: leases, locks and heartbeats
// run on the steady clock, with short durations.

#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "mocks/llm/mock_llm.hpp"
#include "runtime/postgres/testing/pg_testing.hpp"
#include "runtime/redis/testing/redis_testing.hpp"
#include "runtime/service/runtime.hpp"
#include "runtime/service/testing/sync_client.hpp"

namespace lab::runtime {
namespace {

using mocks::llm::Distribution;
using mocks::llm::MockLlm;
using mocks::llm::Profile;
using testing::StreamReply;
using testing::SyncClient;

Profile profile(double itl_ms, int tokens) {
  Profile p;
  p.latency.ttft_ms = Distribution::constant(0);
  p.latency.prefill_ms_per_token = 0;
  p.latency.itl_ms = Distribution::constant(itl_ms);
  p.output.tokens = Distribution::constant(tokens);
  p.tool_call_probability = 0;
  return p;
}

class SharedBackendsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string message;
    const auto redis = redis::testing::options_from_env(message);
    if (!redis.ok()) GTEST_FAIL() << message;
    redis_url_ = std::getenv("AGENTLAB_REDIS_URL");
    const std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    auto pg = pg::testing::options_from_env(pg::testing::unique_schema(name), message);
    if (!pg.ok()) GTEST_FAIL() << message;
    pg_options_ = *pg;
    schema_guard_ = std::make_unique<pg::testing::SchemaGuard>(pg_options_);
    namespace_ = redis::testing::unique_prefix(name);
    namespace_.pop_back();  // the trailing ':'
  }

  void TearDown() override {
    for (auto& r : runtimes_) {
      if (r) r->stop(Nanos::zero());
    }
    runtimes_.clear();
    if (!namespace_.empty() && !redis_url_.empty()) {
      auto options = redis::parse_redis_url(redis_url_);
      if (options.ok()) {
        redis::RedisPool pool(*options, {}, SteadyClock::instance());
        redis::testing::delete_keys(pool, namespace_);
      }
    }
  }

  RuntimeConfig config(ServiceRole role, std::string instance = {}) const {
    RuntimeConfig c;
    c.role = role;
    c.queue = redis_url_;
    c.store = pg_options_.url;
    c.pg_schema = pg_options_.schema;
    c.namespace_ = namespace_;
    c.instance = std::move(instance);
    c.workers = 1;
    c.lease_duration = Millis(1500);
    c.heartbeat_interval = Millis(300);
    c.tools = false;
    c.log = false;
    c.backend_connections = 8;
    if (role != ServiceRole::kGateway) c.llm_urls = {llm_->url()};
    return c;
  }

  Runtime& start(RuntimeConfig c) {
    const auto problems = c.validate();
    EXPECT_TRUE(problems.empty()) << problems.front();
    runtimes_.push_back(std::make_unique<Runtime>(c));
    runtimes_.back()->start();
    return *runtimes_.back();
  }

  std::string redis_url_;
  pg::PgOptions pg_options_;
  std::unique_ptr<pg::testing::SchemaGuard> schema_guard_;
  std::string namespace_;
  std::unique_ptr<MockLlm> llm_;
  std::vector<std::unique_ptr<Runtime>> runtimes_;
};

struct Accepted {
  std::string task_id;
  std::string stream_url;
};

Accepted send(SyncClient& client, const std::string& token, const std::string& agent) {
  const auto r = client.post("/api/chat", "{\"agentId\":\"" + agent + "\",\"message\":\"hello\"}", token);
  EXPECT_EQ(r.status, 202u) << r.body;
  if (r.status != 202u) return {};
  return {std::string(r.json().at("taskId").as_string()), std::string(r.json().at("streamUrl").as_string())};
}

std::string create_agent(SyncClient& client, const std::string& token) {
  const auto r = client.post("/api/agents", R"({"name":"shared"})", token);
  EXPECT_EQ(r.status, 201u) << r.body;
  return r.status == 201u ? std::string(r.json().at("id").as_string()) : std::string();
}

// Every task's stream (read through the gateway, from Redis) ends with exactly one terminal
// event, and the store holds exactly one turn for each, with its messages written once.
void expect_each_done_once(Runtime& gateway, SyncClient& client, const std::string& token,
                           const std::vector<Accepted>& tasks) {
  std::vector<std::string> ids;
  for (const auto& t : tasks) {
    const StreamReply s = client.stream(t.stream_url, token, std::nullopt, std::chrono::milliseconds(30'000));
    ASSERT_TRUE(s.terminal()) << t.task_id << ": " << s.body;
    int terminals = 0;
    for (const auto& e : s.events) terminals += (e.event == "done" || e.event == "error") ? 1 : 0;
    EXPECT_EQ(terminals, 1) << t.task_id;
    EXPECT_EQ(s.events.back().event, "done") << t.task_id << ": " << s.events.back().data;
    ids.push_back(t.task_id);
  }
  const auto audit = gateway.turn_stats().audit_tasks(ids);
  ASSERT_TRUE(audit.ok()) << audit.error().message();
  EXPECT_TRUE(audit->complete);
  for (const auto& e : audit->tasks) {
    EXPECT_EQ(e.turns, 1u) << e.task_id;
    EXPECT_EQ(e.messages, e.expected_messages) << e.task_id;
    EXPECT_GE(e.messages, 2u) << e.task_id;
  }
}

TEST_F(SharedBackendsTest, AGatewayAndTwoWorkerProcessesShareRedisAndPostgres) {
  llm_ = std::make_unique<MockLlm>(profile(0, 4), SteadyClock::instance(), 7);
  llm_->start();
  Runtime& gateway = start(config(ServiceRole::kGateway));
  Runtime& w1 = start(config(ServiceRole::kWorker, "w1"));
  Runtime& w2 = start(config(ServiceRole::kWorker, "w2"));
  EXPECT_EQ(gateway.worker_count(), 0u);
  EXPECT_EQ(w1.worker(0).counts().held, 0u);

  SyncClient client(gateway.url());
  const std::string token = gateway.token_for("alice");
  std::vector<std::string> agents;
  for (int i = 0; i < 8; ++i) agents.push_back(create_agent(client, token));
  std::vector<Accepted> tasks;
  for (int round = 0; round < 3; ++round) {
    for (const auto& a : agents) tasks.push_back(send(client, token, a));
    for (std::size_t i = tasks.size() - agents.size(); i < tasks.size(); ++i) {
      (void)client.stream(tasks[i].stream_url, token, std::nullopt, std::chrono::milliseconds(30'000));
    }
  }
  expect_each_done_once(gateway, client, token, tasks);
  // Both worker processes took tasks, and the agents' histories hold every turn.
  EXPECT_GT(w1.worker(0).counts().acked, 0u);
  EXPECT_GT(w2.worker(0).counts().acked, 0u);
  EXPECT_EQ(w1.worker(0).counts().acked + w2.worker(0).counts().acked, tasks.size());
  for (const auto& a : agents) {
    const auto r = client.get("/api/agents/" + a, token);
    ASSERT_EQ(r.status, 200u);
    EXPECT_EQ(r.json().at("messageCount").as_int64(), 6);  // 3 turns × (user + assistant)
  }
  // A worker process serves only the operational routes.
  SyncClient worker_client(w1.url());
  EXPECT_EQ(worker_client.get("/healthz").status, 200u);
  EXPECT_EQ(worker_client.post("/api/agents", R"({"name":"x"})", token).status, 404u);
}

TEST_F(SharedBackendsTest, TasksOfAWorkerThatDiesMidTurnAreRedeliveredAndDoneOnce) {
  // Turns of about a second (40 tokens × 25 ms), so the kill lands mid-turn.
  llm_ = std::make_unique<MockLlm>(profile(25, 40), SteadyClock::instance(), 8);
  llm_->start();
  Runtime& gateway = start(config(ServiceRole::kGateway));
  Runtime& doomed = start(config(ServiceRole::kWorker, "doomed"));

  SyncClient client(gateway.url());
  const std::string token = gateway.token_for("bob");
  std::vector<Accepted> tasks;
  for (int i = 0; i < 6; ++i) tasks.push_back(send(client, token, create_agent(client, token)));
  // Wait until the doomed worker holds them all, then let it die without a drain: its io thread
  // stops, nothing is acked, its locks are not released.
  ASSERT_TRUE(testing::wait_until([&] { return doomed.worker(0).counts().held == tasks.size(); },
                                  std::chrono::seconds(10)));
  // ... and every turn is streaming (its first text_chunk is on the bus).
  ASSERT_TRUE(testing::wait_until(
      [&] {
        for (const auto& t : tasks) {
          const auto slice = gateway.bus().read(t.task_id, 0, 1);
          if (!slice.ok() || slice->events.empty()) return false;
        }
        return true;
      },
      std::chrono::seconds(10)));
  doomed.stop(Nanos::zero());

  // A second worker takes the tasks over once their leases (and the agents' locks) expire.
  const auto killed_at = std::chrono::steady_clock::now();
  start(config(ServiceRole::kWorker, "survivor"));
  expect_each_done_once(gateway, client, token, tasks);
  const auto recovery = std::chrono::steady_clock::now() - killed_at;
  EXPECT_LT(recovery, std::chrono::seconds(20));
  // The doomed worker's agents were not left PROCESSING.
  const auto counts = gateway.agents().count_by_state();
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ((*counts)[AgentState::kProcessing], 0u);
}

TEST_F(SharedBackendsTest, AStoppingWorkerFinishesWhatItHoldsAndLeavesTheQueueToTheOthers) {
  llm_ = std::make_unique<MockLlm>(profile(20, 20), SteadyClock::instance(), 10);  // ~0.4 s turns
  llm_->start();
  Runtime& gateway = start(config(ServiceRole::kGateway));
  RuntimeConfig one_at_a_time = config(ServiceRole::kWorker, "leaving");
  one_at_a_time.worker_concurrency = 2;
  Runtime& leaving = start(one_at_a_time);
  SyncClient client(gateway.url());
  const std::string token = gateway.token_for("dave");
  std::vector<Accepted> tasks;
  for (int i = 0; i < 8; ++i) tasks.push_back(send(client, token, create_agent(client, token)));
  ASSERT_TRUE(testing::wait_until([&] { return leaving.worker(0).counts().held == 2; }, std::chrono::seconds(10)));
  // A graceful stop with a long drain: the two tasks it holds finish, the six still queued are
  // not its to drain (on the in-memory queue they would be).
  leaving.stop(Seconds(20));
  const auto left = leaving.worker(0).counts();
  EXPECT_EQ(left.acked, left.leased);
  EXPECT_LE(left.acked, 4u);
  Runtime& staying = start(config(ServiceRole::kWorker, "staying"));
  expect_each_done_once(gateway, client, token, tasks);
  EXPECT_EQ(left.acked + staying.worker(0).counts().acked, tasks.size());
}

TEST_F(SharedBackendsTest, TwoGatewaysShareEachUsersChatRate) {
  llm_ = std::make_unique<MockLlm>(profile(0, 4), SteadyClock::instance(), 11);
  llm_->start();
  RuntimeConfig limited = config(ServiceRole::kGateway);
  limited.user_rate_per_s = 0.05;  // 3 chats per minute
  limited.user_burst = 3;
  Runtime& a = start(limited);
  Runtime& b = start(limited);
  SyncClient via_a(a.url());
  SyncClient via_b(b.url());
  const std::string token = a.token_for("erin");
  const std::string agent = create_agent(via_a, token);
  const std::string body = "{\"agentId\":\"" + agent + "\",\"message\":\"hi\"}";
  EXPECT_EQ(via_a.post("/api/chat", body, token).status, 202u);
  EXPECT_EQ(via_b.post("/api/chat", body, token).status, 202u);
  EXPECT_EQ(via_a.post("/api/chat", body, token).status, 202u);
  // The fourth within the window is over the user's rate, whichever gateway it reaches.
  const auto refused = via_b.post("/api/chat", body, token);
  EXPECT_EQ(refused.status, 429u) << refused.body;
  EXPECT_EQ(via_a.post("/api/chat", body, token).status, 429u);
  // Another user has a window of their own.
  const std::string other = a.token_for("frank");
  EXPECT_EQ(via_b.post("/api/chat", "{\"agentId\":\"" + create_agent(via_b, other) + "\",\"message\":\"hi\"}", other).status,
            202u);
}

TEST_F(SharedBackendsTest, AWorkerRestartedUnderItsNameRecoversTheAgentsItLeftProcessing) {
  llm_ = std::make_unique<MockLlm>(profile(0, 4), SteadyClock::instance(), 9);
  llm_->start();
  Runtime& gateway = start(config(ServiceRole::kGateway));
  // What a crashed w1-1 leaves behind: an agent PROCESSING under its id.
  SyncClient client(gateway.url());
  const std::string token = gateway.token_for("carol");
  const std::string agent = create_agent(client, token);
  ASSERT_TRUE(gateway.agents()
                  .transition(agent, Transition{.to = AgentState::kProcessing, .fence = 1, .owner = "w1-1"})
                  .ok());
  start(config(ServiceRole::kWorker, "w1"));
  const auto rec = gateway.agents().get_agent(agent);
  ASSERT_TRUE(rec.ok());
  EXPECT_EQ(rec->state, AgentState::kHibernated);
  EXPECT_EQ(rec->worker_id, "");
}

}  // namespace
}  // namespace lab::runtime
