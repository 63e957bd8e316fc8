// End to end: the mock LLM (primary and backup) and the whole Runtime in-process on loopback,
// driven over HTTP exactly as the harness drives it. Breakers, degradation, leases and rate
// limits run on a SimulatedClock; maintenance is triggered with maintain().

#include "runtime/service/runtime.hpp"

#include <gtest/gtest.h>

#include <thread>

#include "common/text/json_util.hpp"
#include "mocks/llm/mock_llm.hpp"
#include "runtime/service/testing/sync_client.hpp"

namespace lab::runtime {
namespace {

namespace bj = boost::json;
using mocks::llm::Distribution;
using mocks::llm::FaultRule;
using mocks::llm::MockLlm;
using mocks::llm::Profile;
using resilience::CircuitState;
using testing::StreamReply;
using testing::SyncClient;
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

class RuntimeTest : public ::testing::Test {
 protected:
  RuntimeTest() : primary_(fast_profile(), mock_clock_, 11), backup_(fast_profile(), mock_clock_, 12) {
    primary_.start();
    backup_.start();
  }

  void start(RuntimeConfig config = {}) {
    config.llm_urls = {primary_.url(), backup_.url()};
    config.tool_latency = Millis(1);
    config.maintenance_interval = Seconds(3600);  // the tests call maintain()
    config.log = false;
    config.llm_retry.base_delay = Millis(1);
    config.llm_retry.max_delay = Millis(2);
    config.llm_retry.max_retries = 1;
    ASSERT_TRUE(config.validate().empty()) << config.validate().front();
    runtime_ = std::make_unique<Runtime>(config, clock_);
    runtime_->start();
    client_ = std::make_unique<SyncClient>(runtime_->url());
    token_ = runtime_->token_for("alice");
  }

  std::string create_agent(std::string_view token) {
    auto r = client_->post("/api/agents", R"({"name":"e2e"})", token);
    EXPECT_EQ(r.status, 201u) << r.body;
    return std::string(r.json().at("id").as_string());
  }

  testing::Reply send(std::string_view agent, std::string_view message = "hello", std::string_view token = {}) {
    return client_->post("/api/chat",
                         "{\"agentId\":\"" + std::string(agent) + "\",\"message\":\"" + std::string(message) + "\"}",
                         token.empty() ? std::string_view(token_) : token);
  }

  /// POST /api/chat then GET the stream to its terminal event.
  StreamReply chat(std::string_view agent, std::string_view message = "hello") {
    auto accepted = send(agent, message);
    EXPECT_EQ(accepted.status, 202u) << accepted.body;
    if (accepted.status != 202u) return {};
    return client_->stream(std::string(accepted.json().at("streamUrl").as_string()), token_);
  }

  bj::value system() { return client_->get("/api/system").json(); }

  static bj::value done_of(const StreamReply& s) {
    EXPECT_TRUE(s.terminal());
    if (s.events.empty()) return {};
    EXPECT_EQ(s.events.back().event, "done") << s.events.back().data;
    return s.data().back();
  }

  SimulatedClock mock_clock_;
  MockLlm primary_;
  MockLlm backup_;
  SimulatedClock clock_;
  std::unique_ptr<Runtime> runtime_;
  std::unique_ptr<SyncClient> client_;
  std::string token_;
};

TEST_F(RuntimeTest, AChatWithAToolCallStreamsToDoneOverHttp) {
  start();
  const std::string agent = create_agent(token_);
  const StreamReply s = chat(agent);
  ASSERT_EQ(s.status, 200u) << s.body;
  ASSERT_GE(s.events.size(), 4u);
  EXPECT_EQ(s.events[0].event, "tool:start");
  EXPECT_EQ(s.events[1].event, "tool:complete");
  EXPECT_EQ(s.events[2].event, "text_chunk");
  const auto data = s.data();
  for (std::size_t i = 0; i < s.events.size(); ++i) {
    EXPECT_EQ(s.events[i].id, std::to_string(i + 1));
    EXPECT_EQ(data[i].at("kind").as_string(), s.events[i].event);  // the harness's {field: /kind}
  }
  EXPECT_EQ(data[1].at("ok").as_bool(), true);
  std::string text;
  for (std::size_t i = 2; i + 1 < data.size(); ++i) text += std::string(data[i].at("text").as_string());
  EXPECT_FALSE(text.empty());
  const bj::value done = done_of(s);
  EXPECT_EQ(done.at("toolCalls").as_int64(), 1);
  EXPECT_EQ(done.at("provider").as_string(), "llm_primary");
  EXPECT_EQ(done.at("degradationLevel").as_int64(), 0);

  auto a = client_->get("/api/agents/" + agent, token_).json();
  EXPECT_EQ(a.at("state").as_string(), "ACTIVE");
  EXPECT_EQ(a.at("messageCount").as_int64(), 2);
  EXPECT_EQ(runtime_->messages().load_history(agent, 10)->messages[1].content, text);

  // The worker counts the task after appending its done event, which the stream may deliver first.
  EXPECT_TRUE(wait_until([&] { return runtime_->counters().ledger.completed == 1; }));
  const bj::value sys = system();
  EXPECT_EQ(sys.at("degradation_level").as_int64(), 0);
  EXPECT_EQ(sys.at("breakers").at("llm_primary").as_string(), "CLOSED");
  EXPECT_EQ(sys.at("breakers").at("llm_backup").as_string(), "CLOSED");
  EXPECT_EQ(sys.at("active_agents").as_int64(), 1);
  EXPECT_EQ(sys.at("workers").as_int64(), 2);
  EXPECT_EQ(sys.at("queue_depth").as_int64(), 0);
  EXPECT_EQ(sys.at("tasks").at("completed").as_int64(), 1);

  const std::string metrics = client_->get("/metrics").body;
  EXPECT_NE(metrics.find("agentlab_runtime_tasks_completed_total 1"), std::string::npos);
  EXPECT_NE(metrics.find("agentlab_runtime_breaker_state{breaker=\"llm_primary\"} 0"), std::string::npos);
  EXPECT_NE(metrics.find("agentlab_runtime_http_request_duration_seconds_count{route=\"chat\"} 1"), std::string::npos);

  // The second turn carries the first in its prompt and is stored after it.
  const bj::value second = done_of(chat(agent, "and again"));
  EXPECT_GT(second.at("inputTokens").as_int64(), done.at("inputTokens").as_int64());
  EXPECT_EQ(client_->get("/api/agents/" + agent, token_).json().at("messageCount").as_int64(), 4);
}

TEST_F(RuntimeTest, FailsOverToTheBackupWhenThePrimaryReturns503) {
  start();
  FaultRule down;
  down.error_rate = 1.0;
  down.status = 503;
  primary_.add_fault(down);
  const std::string agent = create_agent(token_);
  const bj::value done = done_of(chat(agent));
  EXPECT_EQ(done.at("provider").as_string(), "llm_backup");
  EXPECT_EQ(done.at("model").as_string(), "mock-llama-3.2-1b");
}

TEST_F(RuntimeTest, ThePrimaryBreakerOpensAndClosesAndDegradationFollows) {
  RuntimeConfig config;
  config.degradation.recovery_hold = Seconds(30);
  start(config);
  FaultRule down;
  down.error_rate = 1.0;
  down.status = 503;
  const auto fault = primary_.add_fault(down);
  const std::string agent = create_agent(token_);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(done_of(chat(agent)).at("provider").as_string(), "llm_backup");

  bj::value sys = system();
  EXPECT_EQ(sys.at("breakers").at("llm_primary").as_string(), "OPEN");
  EXPECT_EQ(sys.at("degradation_level").as_int64(), 1);
  EXPECT_TRUE(sys.at("degradation").at("features").at("use_backup_model").as_bool());
  // Level 1: the backup model answers first, the primary is not tried.
  const auto primary_calls = runtime_->breakers().find("llm_primary")->metrics().total_not_permitted;
  const bj::value degraded = done_of(chat(agent));
  EXPECT_EQ(degraded.at("provider").as_string(), "llm_backup");
  EXPECT_EQ(degraded.at("degradationLevel").as_int64(), 1);
  EXPECT_EQ(runtime_->breakers().find("llm_primary")->metrics().total_not_permitted, primary_calls);

  // Still failing after the wait: the probe re-opens it.
  clock_.advance(Seconds(60));
  runtime_->maintain();
  EXPECT_EQ(system().at("breakers").at("llm_primary").as_string(), "OPEN");
  // Recovered: the next probe closes it; the level falls after the recovery hold.
  primary_.remove_fault(fault);
  clock_.advance(Seconds(60));
  runtime_->maintain();
  sys = system();
  EXPECT_EQ(sys.at("breakers").at("llm_primary").as_string(), "CLOSED");
  EXPECT_EQ(sys.at("degradation").at("target_level").as_int64(), 0);
  EXPECT_EQ(sys.at("degradation_level").as_int64(), 1);
  clock_.advance(Seconds(30));
  runtime_->maintain();
  EXPECT_EQ(system().at("degradation_level").as_int64(), 0);
  EXPECT_EQ(done_of(chat(agent)).at("provider").as_string(), "llm_primary");

  const std::string metrics = runtime_->metrics_text();
  EXPECT_NE(metrics.find("agentlab_runtime_breaker_transitions_total{breaker=\"llm_primary\",from=\"CLOSED\",to=\"OPEN\"} 1"),
            std::string::npos);
  EXPECT_NE(metrics.find("agentlab_runtime_breaker_transitions_total{breaker=\"llm_primary\",from=\"HALF_OPEN\",to=\"CLOSED\"} 1"),
            std::string::npos);
  EXPECT_NE(metrics.find("agentlab_runtime_degradation_level 0"), std::string::npos);
}

TEST_F(RuntimeTest, DegradationRisesToRejectNewWorkAndFallsBack) {
  RuntimeConfig config;
  config.degradation.recovery_hold = Seconds(30);
  config.degraded_retry_after = Seconds(5);
  start(config);
  const std::string agent = create_agent(token_);
  auto& breakers = runtime_->breakers();
  breakers.find("llm_primary")->force_open();
  breakers.find("llm_backup")->force_open();
  EXPECT_EQ(system().at("degradation_level").as_int64(), 4);
  auto refused = send(agent);
  EXPECT_EQ(refused.status, 503u);
  EXPECT_EQ(refused.header("Retry-After").value_or(""), "5");
  EXPECT_EQ(refused.json().at("error").at("type").as_string(), "degraded");
  EXPECT_EQ(client_->get("/readyz").status, 200u);  // still serving streams and reads

  breakers.find("llm_primary")->reset();
  breakers.find("llm_backup")->reset();
  EXPECT_EQ(system().at("degradation_level").as_int64(), 4);  // held
  EXPECT_EQ(send(agent).status, 503u);
  clock_.advance(Seconds(30));
  runtime_->maintain();
  EXPECT_EQ(system().at("degradation_level").as_int64(), 0);
  EXPECT_EQ(done_of(chat(agent)).at("degradationLevel").as_int64(), 0);
  EXPECT_EQ(runtime_->counters().rejected_degraded, 2u);
}

TEST_F(RuntimeTest, EachDegradationLevelChangesWhatATurnDoes) {
  RuntimeConfig config;
  config.degradation.recovery_hold = Seconds(1);
  start(config);
  const std::string agent = create_agent(token_);
  const bj::value first = done_of(chat(agent, "hello"));
  EXPECT_EQ(first.at("toolCalls").as_int64(), 1);
  const bj::value with_history = done_of(chat(agent, "hello"));

  // Level 2 (memory down): no history in the prompt, so the same message costs what the first did.
  runtime_->breakers().find("memory")->force_open();
  EXPECT_EQ(system().at("degradation_level").as_int64(), 2);
  const bj::value no_history = done_of(chat(agent, "hello"));
  EXPECT_EQ(no_history.at("degradationLevel").as_int64(), 2);
  EXPECT_LT(no_history.at("inputTokens").as_int64(), with_history.at("inputTokens").as_int64());
  EXPECT_EQ(no_history.at("inputTokens").as_int64(), first.at("inputTokens").as_int64());
  runtime_->breakers().find("memory")->reset();
  clock_.advance(Seconds(1));
  runtime_->maintain();

  // Level 3 (tools down): simple Q&A, no tools offered, no tool events.
  runtime_->breakers().find("tools")->force_open();
  EXPECT_EQ(system().at("degradation_level").as_int64(), 3);
  const StreamReply core = chat(agent, "hello");
  for (const auto& e : core.events) EXPECT_NE(e.event, "tool:start");
  EXPECT_EQ(done_of(core).at("toolCalls").as_int64(), 0);
  EXPECT_EQ(done_of(core).at("llmCalls").as_int64(), 1);
  runtime_->breakers().find("tools")->reset();
  clock_.advance(Seconds(1));
  runtime_->maintain();
  EXPECT_EQ(system().at("degradation_level").as_int64(), 0);
}

TEST_F(RuntimeTest, TheSameTaskIdTwiceIsStoredOnceWithOneTerminalEvent) {
  RuntimeConfig config;
  config.workers = 1;  // with two, the copy may bounce off the agent lock (nack delays run on clock_)
  start(config);
  const std::string agent = create_agent(token_);
  const std::string task = "t-dup";
  ASSERT_TRUE(runtime_->bus().open(task).ok());
  const Task t{task, agent, Priority::kNormal, R"({"user":"alice","message":"once"})"};
  ASSERT_TRUE(runtime_->queue().enqueue(t).accepted());
  ASSERT_TRUE(runtime_->queue().enqueue(t).accepted());
  ASSERT_TRUE(wait_until([&] { return runtime_->queue().stats().acked == 2; }));
  auto slice = runtime_->bus().read(task, 0, 1000);
  int terminals = 0;
  for (const auto& e : slice->events) terminals += is_terminal(e.kind) ? 1 : 0;
  EXPECT_EQ(terminals, 1);
  EXPECT_EQ(runtime_->turn_stats().turn_totals(agent)->turns, 1u);
  const auto c = runtime_->counters();
  EXPECT_EQ(c.ledger.completed, 1u);
  EXPECT_EQ(c.ledger.commits_applied, 1u);
}

TEST_F(RuntimeTest, HibernateAndResumeKeepTheConversation) {
  start();
  const std::string agent = create_agent(token_);
  done_of(chat(agent));
  auto h = client_->post("/api/agents/" + agent + "/hibernate", "", token_);
  ASSERT_EQ(h.status, 202u);
  EXPECT_EQ(h.json().at("result").as_string(), "hibernated");
  EXPECT_EQ(client_->get("/api/agents/" + agent, token_).json().at("state").as_string(), "HIBERNATED");
  EXPECT_EQ(system().at("active_agents").as_int64(), 0);
  EXPECT_EQ(system().at("hibernated_agents").as_int64(), 1);
  done_of(chat(agent));
  auto a = client_->get("/api/agents/" + agent, token_).json();
  EXPECT_EQ(a.at("state").as_string(), "ACTIVE");
  EXPECT_EQ(a.at("messageCount").as_int64(), 4);
}

TEST_F(RuntimeTest, IdleAgentsHibernateAfterTheIdleTimeout) {
  RuntimeConfig config;
  config.idle_timeout = Seconds(300);
  config.workers = 1;
  start(config);
  const std::string agent = create_agent(token_);
  done_of(chat(agent));
  EXPECT_EQ(system().at("active_agents").as_int64(), 1);
  clock_.advance(Seconds(301));
  // The worker ticks its scheduler every second (real time).
  ASSERT_TRUE(wait_until([&] { return system().at("active_agents").as_int64() == 0; }, std::chrono::milliseconds(5000)));
  EXPECT_EQ(client_->get("/api/agents/" + agent, token_).json().at("state").as_string(), "HIBERNATED");
}

TEST_F(RuntimeTest, MembershipCancellationPausesAndRenewalResumes) {
  start();
  const std::string agent = create_agent(token_);
  done_of(chat(agent));
  auto cancel = client_->post("/api/webhooks/membership",
                              R"({"type":"subscription.cancelled","data":{"user_id":"alice"}})", token_);
  ASSERT_EQ(cancel.status, 200u) << cancel.body;
  EXPECT_EQ(client_->get("/api/agents/" + agent, token_).json().at("state").as_string(), "MEMBERSHIP_PAUSED");
  EXPECT_EQ(system().at("active_agents").as_int64(), 0);
  EXPECT_EQ(send(agent).status, 402u);
  auto renew = client_->post("/api/webhooks/membership",
                             R"({"type":"subscription.renewed","data":{"user_id":"alice"}})", token_);
  ASSERT_EQ(renew.status, 200u);
  EXPECT_EQ(client_->get("/api/agents/" + agent, token_).json().at("state").as_string(), "HIBERNATED");
  EXPECT_EQ(done_of(chat(agent)).at("kind").as_string(), "done");
}

TEST_F(RuntimeTest, GracefulStopFinishesTurnsInFlightAndDeliversTheirEvents) {
  RuntimeConfig config;
  config.llm_headers = {{"x-mock-ttft-ms", "150"}};
  config.workers = 1;
  start(config);
  const std::string agent = create_agent(token_);
  std::vector<std::string> streams;
  for (int i = 0; i < 3; ++i) {
    auto r = send(agent);
    ASSERT_EQ(r.status, 202u);
    streams.push_back(std::string(r.json().at("streamUrl").as_string()));
  }
  // Clients following their streams when the stop begins get every event up to the terminal.
  std::vector<StreamReply> replies(streams.size());
  std::vector<std::thread> readers;
  for (std::size_t i = 0; i < streams.size(); ++i) {
    readers.emplace_back([&, i] {
      SyncClient c(runtime_->url());
      replies[i] = c.stream(streams[i], token_);
    });
  }
  ASSERT_TRUE(wait_until([&] { return runtime_->metrics().sse_streams_open().Value() == static_cast<double>(streams.size()); }));
  runtime_->stop(Seconds(10));
  for (auto& t : readers) t.join();
  EXPECT_EQ(send(agent).status, 0u);  // stopped: nothing listens any more
  for (const auto& r : replies) {
    ASSERT_TRUE(r.terminal()) << r.error;
    EXPECT_EQ(r.events.back().event, "done");
  }
  const auto c = runtime_->counters();
  EXPECT_EQ(c.ledger.accepted, 3u);
  EXPECT_EQ(c.ledger.completed, 3u);
  EXPECT_EQ(c.queue_depth, 0u);
  EXPECT_EQ(c.in_flight, 0u);
}

TEST_F(RuntimeTest, StopWithoutDrainEndsUnfinishedTasksWithAnError) {
  RuntimeConfig config;
  config.workers = 1;
  start(config);
  FaultRule hang;
  hang.hang_rate = 1.0;
  primary_.add_fault(hang);
  backup_.add_fault(hang);
  const std::string agent = create_agent(token_);
  auto running = send(agent);
  auto queued = send(create_agent(token_));
  ASSERT_EQ(running.status, 202u);
  ASSERT_EQ(queued.status, 202u);
  ASSERT_TRUE(wait_until([&] { return runtime_->agents().get_agent(agent)->state == AgentState::kProcessing; }));
  runtime_->stop(Nanos::zero());
  for (const auto* r : {&running, &queued}) {
    const std::string task = std::string(r->json().at("taskId").as_string());
    auto slice = runtime_->bus().read(task, 0, 1000);
    ASSERT_TRUE(slice.ok());
    ASSERT_TRUE(slice->finished) << task;
    EXPECT_EQ(json::parse(slice->events.back().data)->at("code").as_string(), "shutdown");
  }
  const auto c = runtime_->counters();
  EXPECT_EQ(c.ledger.accepted, c.ledger.completed + c.ledger.failed);
}

TEST_F(RuntimeTest, ConfigValidationListsEveryProblem) {
  RuntimeConfig c;
  c.workers = 0;
  c.queue = "amqp://localhost:5672";
  c.store = "mysql://x";
  c.namespace_ = "has space";
  c.role = ServiceRole::kWorker;
  c.llm_urls = {"https://example.com"};
  const auto problems = c.validate();
  auto has = [&](std::string_view needle) {
    for (const auto& p : problems) {
      if (p.find(needle) != std::string::npos) return true;
    }
    return false;
  };
  EXPECT_TRUE(has("workers"));
  EXPECT_TRUE(has("queue: expected memory or redis://"));
  EXPECT_TRUE(has("store: expected memory or postgresql://"));
  EXPECT_TRUE(has("namespace: expected"));
  EXPECT_TRUE(has("role: 'worker' needs a queue and a store shared between processes"));
  EXPECT_TRUE(has("https is not supported"));
  RuntimeConfig ok;
  ok.llm_urls = {"http://127.0.0.1:9"};
  EXPECT_TRUE(ok.validate().empty());
  ok.role = ServiceRole::kWorker;
  ok.queue = "redis://127.0.0.1:6379/2";
  ok.store = "postgresql://postgres@127.0.0.1:5432/agentlab";
  ok.instance = "w1";
  EXPECT_TRUE(ok.validate().empty());
}

}  // namespace
}  // namespace lab::runtime
