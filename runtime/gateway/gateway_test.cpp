// The gateway alone over the in-memory backends, with no workers: what it answers is decided
// by it alone (auth, ownership, validation, backpressure, rate limits, replay).

#include "runtime/gateway/gateway.hpp"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <thread>

#include <boost/json/serialize.hpp>

#include "common/http/server.hpp"
#include "common/jwt/jwt.hpp"
#include "common/text/json_util.hpp"
#include "runtime/events/memory_event_bus.hpp"
#include "runtime/gateway/testing/fake_control_plane.hpp"
#include "runtime/queue/memory_queue.hpp"
#include "runtime/service/testing/sync_client.hpp"
#include "runtime/stores/memory_store.hpp"

namespace lab::runtime {
namespace {

namespace bj = boost::json;
using testing::FakeControlPlane;
using testing::SyncClient;

constexpr std::string_view kSecret = "gateway-test-secret";

std::string hmac_hex(std::string_view key, std::string_view data) {
  unsigned char mac[32];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
       data.size(), mac, &len);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < len; ++i) {
    out += kHex[mac[i] >> 4];
    out += kHex[mac[i] & 0xF];
  }
  return out;
}

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string sign(std::string_view user, std::string_view secret = kSecret, std::int64_t exp_offset = 3600) {
  jwt::Claims c;
  c.sub = std::string(user);
  c.exp = unix_now() + exp_offset;
  return jwt::sign_hs256(c, secret);
}

class GatewayTest : public ::testing::Test {
 protected:
  void start(GatewayConfig config = {}, std::size_t queue_bound = 100) {
    config.jwt_secret = std::string(kSecret);
    config_ = config;
    MemoryQueueConfig qc;
    qc.max_depth = queue_bound;
    queue_ = std::make_unique<MemoryTaskQueue>(qc, clock_);
    bus_ = std::make_unique<MemoryEventBus>(MemoryEventBusConfig{}, clock_);
    control_ = std::make_unique<FakeControlPlane>(store_);
    gateway_ = std::make_unique<Gateway>(config, GatewayDeps{store_, *queue_, *bus_, *control_, metrics_, clock_});
    http::Router router;
    gateway_->add_routes(router);
    http::ServerOptions options;
    options.body_limit = 4096;
    options.threads = 2;
    server_ = std::make_unique<http::Server>(options, router.handler());
    server_->start();
    client_ = std::make_unique<SyncClient>(server_->url());
  }

  std::string create_agent(std::string_view token, std::string_view name = "agent") {
    auto r = client_->post("/api/agents", "{\"name\":\"" + std::string(name) + "\"}", token);
    EXPECT_EQ(r.status, 201u) << r.body;
    return std::string(r.json().at("id").as_string());
  }

  testing::Reply chat(std::string_view token, std::string_view agent_id, std::string_view message = "hi") {
    return client_->post("/api/chat",
                         "{\"agentId\":\"" + std::string(agent_id) + "\",\"message\":\"" + std::string(message) + "\"}",
                         token);
  }

  static std::string error_type(const testing::Reply& r) {
    const bj::value v = r.json();
    if (!v.is_object() || !v.as_object().contains("error")) return "";
    return std::string(v.at("error").at("type").as_string());
  }

  SimulatedClock clock_;
  MemoryStore store_;
  RuntimeMetrics metrics_;
  GatewayConfig config_;
  std::unique_ptr<MemoryTaskQueue> queue_;
  std::unique_ptr<MemoryEventBus> bus_;
  std::unique_ptr<FakeControlPlane> control_;
  std::unique_ptr<Gateway> gateway_;
  std::unique_ptr<http::Server> server_;
  std::unique_ptr<SyncClient> client_;
};

TEST_F(GatewayTest, RejectsRequestsWithoutAValidBearerToken) {
  start();
  const std::string good = sign("alice");
  const std::string agent = create_agent(good);
  const std::vector<std::string> bad = {"", "garbage", sign("alice", "another-secret"), sign("alice", kSecret, -10)};
  for (const auto& token : bad) {
    auto r = client_->get("/api/agents", token);
    EXPECT_EQ(r.status, 401u) << token;
    EXPECT_EQ(error_type(r), "unauthorized");
    EXPECT_EQ(r.header("WWW-Authenticate").value_or(""), "Bearer");
    EXPECT_EQ(chat(token, agent).status, 401u);
    EXPECT_EQ(client_->get("/api/agents/" + agent, token).status, 401u);
  }
  auto basic = client_->request(boost::beast::http::verb::get, "/api/agents", {}, {},
                                {{"Authorization", "Basic YWxpY2U6cHc="}});
  EXPECT_EQ(basic.status, 401u);
  EXPECT_EQ(client_->get("/api/agents", good).status, 200u);
  EXPECT_GE(metrics_.rejections(Rejection::kUnauthorized), 13u);
}

TEST_F(GatewayTest, AnotherUsersAgentIsNotFoundNeverForbidden) {
  start();
  const std::string alice = sign("alice");
  const std::string bob = sign("bob");
  const std::string agent = create_agent(alice, "alices");
  create_agent(bob, "bobs");

  EXPECT_EQ(client_->get("/api/agents/" + agent, alice).status, 200u);
  for (const auto& r : {client_->get("/api/agents/" + agent, bob), chat(bob, agent),
                        client_->post("/api/agents/" + agent + "/hibernate", "", bob),
                        client_->post("/api/fork", "{\"agentId\":\"" + agent + "\"}", bob),
                        client_->get("/api/agents/a-does-not-exist", bob)}) {
    EXPECT_EQ(r.status, 404u) << r.body;
    EXPECT_EQ(error_type(r), "not_found");
  }
  // The same answer for "exists but not yours" and "does not exist": nothing leaks.
  EXPECT_EQ(client_->get("/api/agents/" + agent, bob).body, client_->get("/api/agents/a-nope", bob).body);

  auto list = client_->get("/api/agents", bob).json();
  ASSERT_EQ(list.at("agents").as_array().size(), 1u);
  EXPECT_EQ(list.at("agents").at(0).at("name").as_string(), "bobs");
}

TEST_F(GatewayTest, AnotherUsersTaskStreamIsNotFound) {
  start();
  const std::string alice = sign("alice");
  const std::string agent = create_agent(alice);
  auto accepted = chat(alice, agent);
  ASSERT_EQ(accepted.status, 202u);
  const std::string task = std::string(accepted.json().at("taskId").as_string());
  ASSERT_TRUE(bus_->append(task, EventKind::kDone, R"({"kind":"done"})").ok());

  EXPECT_EQ(client_->stream("/api/stream/" + task, sign("bob")).status, 404u);
  EXPECT_EQ(client_->stream("/api/stream/" + task, alice).status, 200u);
  // A forged id (right shape, wrong tag) is refused the same way.
  std::string forged = task;
  forged.back() = forged.back() == '0' ? '1' : '0';
  EXPECT_EQ(client_->stream("/api/stream/" + forged, alice).status, 404u);
}

TEST_F(GatewayTest, MalformedRequestsGet400WithAClearMessage) {
  start();
  const std::string alice = sign("alice");
  const std::string agent = create_agent(alice);
  struct Case {
    std::string target, body, expect_in_message;
  };
  const std::vector<Case> cases = {
      {"/api/agents", "{not json", "malformed JSON"},
      {"/api/agents", "[1,2]", "expected a JSON object"},
      {"/api/agents", "", "expected a JSON object body"},
      {"/api/agents", "{}", "missing field 'name'"},
      {"/api/agents", "{\"name\":42}", "field 'name' must be a non-empty string"},
      {"/api/chat", "{\"agentId\":\"" + agent + "\"}", "missing field 'message'"},
      {"/api/chat", "{\"message\":\"hi\"}", "missing field 'agentId'"},
      {"/api/chat", "{\"agentId\":\"" + agent + "\",\"message\":\"hi\",\"priority\":\"urgent\"}", "priority"},
      {"/api/fork", "{\"agentId\":\"" + agent + "\",\"count\":11}", "count must be between 1 and 10"},
      {"/api/fork", "{\"agentId\":\"" + agent + "\",\"count\":\"two\"}", "must be an integer"},
      {"/api/webhooks/membership", "{\"type\":\"subscription.paused\",\"data\":{\"user_id\":\"alice\"}}",
       "subscription.cancelled"},
  };
  for (const auto& c : cases) {
    auto r = client_->post(c.target, c.body, alice);
    EXPECT_EQ(r.status, 400u) << c.target << " " << c.body << " → " << r.body;
    EXPECT_EQ(error_type(r), "bad_request");
    const bj::value v = r.json();
    ASSERT_TRUE(v.is_object()) << r.body;
    EXPECT_NE(std::string(v.at("error").at("message").as_string()).find(c.expect_in_message), std::string::npos)
        << r.body;
  }
  EXPECT_EQ(queue_->stats().total_depth(), 0u);
  const std::string task = std::string(chat(alice, agent).json().at("taskId").as_string());
  auto bad_id = client_->request(boost::beast::http::verb::get, "/api/stream/" + task, {}, alice,
                                 {{"Last-Event-ID", "12abc"}});
  EXPECT_EQ(bad_id.status, 400u);
  EXPECT_NE(bad_id.body.find("Last-Event-ID"), std::string::npos);
}

TEST_F(GatewayTest, OversizedBodiesAndMessagesAre413) {
  GatewayConfig config;
  config.max_message_bytes = 100;
  start(config);
  const std::string alice = sign("alice");
  const std::string agent = create_agent(alice);
  auto long_message = chat(alice, agent, std::string(200, 'x'));
  EXPECT_EQ(long_message.status, 413u);
  EXPECT_EQ(error_type(long_message), "body_too_large");
  auto huge_body = chat(alice, agent, std::string(8000, 'x'));  // over the server's 4 KiB limit
  EXPECT_EQ(huge_body.status, 413u);
  EXPECT_EQ(chat(alice, agent, std::string(100, 'x')).status, 202u);
}

TEST_F(GatewayTest, QueueOverItsBoundAnswers503WithRetryAfter) {
  GatewayConfig config;
  config.queue_full_retry_after = Seconds(3);
  start(config, /*queue_bound=*/2);
  const std::string alice = sign("alice");
  const std::string agent = create_agent(alice);
  EXPECT_EQ(chat(alice, agent).status, 202u);
  EXPECT_EQ(chat(alice, agent).status, 202u);
  auto full = chat(alice, agent);
  EXPECT_EQ(full.status, 503u);
  EXPECT_EQ(full.header("Retry-After").value_or(""), "3");
  EXPECT_EQ(error_type(full), "queue_full");
  EXPECT_EQ(queue_->stats().total_depth(), 2u);
  EXPECT_EQ(metrics_.rejections(Rejection::kQueueFull), 1u);
  EXPECT_EQ(metrics_.ledger().accepted, 2u);
  // Room again once a task leaves the queue.
  auto lease = queue_->lease("w", Seconds(30), Nanos::zero());
  ASSERT_TRUE(lease.ok());
  ASSERT_TRUE(queue_->ack(lease->receipt).ok());
  EXPECT_EQ(chat(alice, agent).status, 202u);
}

TEST_F(GatewayTest, UserOverItsRateGets429UntilTokensRefill) {
  GatewayConfig config;
  config.user_rate_per_s = 1;
  config.user_burst = 2;
  start(config);
  const std::string alice = sign("alice");
  const std::string bob = sign("bob");
  const std::string a = create_agent(alice);
  const std::string b = create_agent(bob);
  EXPECT_EQ(chat(alice, a).status, 202u);
  EXPECT_EQ(chat(alice, a).status, 202u);
  auto limited = chat(alice, a);
  EXPECT_EQ(limited.status, 429u);
  EXPECT_EQ(limited.header("Retry-After").value_or(""), "1");
  EXPECT_EQ(error_type(limited), "rate_limited");
  EXPECT_EQ(chat(bob, b).status, 202u);  // per user
  clock_.advance(Millis(999));
  EXPECT_EQ(chat(alice, a).status, 429u);
  clock_.advance(Millis(2));
  EXPECT_EQ(chat(alice, a).status, 202u);
  EXPECT_EQ(metrics_.rejections(Rejection::kRateLimited), 2u);
}

TEST_F(GatewayTest, ChatEnqueuesTheTaskAndMarksTheAgentQueued) {
  start();
  const std::string alice = sign("alice");
  const std::string agent = create_agent(alice);
  auto r = client_->post("/api/chat", "{\"agentId\":\"" + agent + "\",\"message\":\"hello \\\"you\\\"\",\"priority\":\"high\"}",
                         alice);
  ASSERT_EQ(r.status, 202u) << r.body;
  const std::string task = std::string(r.json().at("taskId").as_string());
  EXPECT_EQ(r.json().at("streamUrl").as_string(), "/api/stream/" + task);
  EXPECT_TRUE(gateway_->auth().task_owned_by(task, "alice"));
  EXPECT_FALSE(gateway_->auth().task_owned_by(task, "bob"));
  EXPECT_EQ(store_.get_agent(agent)->state, AgentState::kQueued);
  auto lease = queue_->lease("w", Seconds(30), Nanos::zero());
  ASSERT_TRUE(lease.ok());
  EXPECT_EQ(lease->task.task_id, task);
  EXPECT_EQ(lease->task.agent_id, agent);
  EXPECT_EQ(lease->task.priority, Priority::kHigh);
  auto payload = json::parse(lease->task.payload);
  ASSERT_TRUE(payload);
  EXPECT_EQ(payload->at("user").as_string(), "alice");
  EXPECT_EQ(payload->at("message").as_string(), "hello \"you\"");
  // The stream exists (empty) from the moment the task is accepted.
  EXPECT_TRUE(bus_->read(task, 0, 10).ok());
}

TEST_F(GatewayTest, StreamReplaysFromLastEventId) {
  start();
  const std::string alice = sign("alice");
  const std::string agent = create_agent(alice);
  const std::string task = std::string(chat(alice, agent).json().at("taskId").as_string());
  for (const char* word : {"one", "two", "three"}) {
    ASSERT_TRUE(bus_->append(task, EventKind::kTextChunk,
                             std::string(R"({"kind":"text_chunk","text":")") + word + "\"}")
                    .ok());
  }
  ASSERT_TRUE(bus_->append(task, EventKind::kDone, R"({"kind":"done"})").ok());

  auto all = client_->stream("/api/stream/" + task, alice);
  ASSERT_EQ(all.status, 200u);
  ASSERT_EQ(all.events.size(), 4u);
  EXPECT_EQ(all.events[0].id, "1");
  EXPECT_EQ(all.events[0].event, "text_chunk");
  EXPECT_EQ(all.events[3].event, "done");
  for (std::size_t i = 0; i < all.events.size(); ++i) {
    EXPECT_EQ(all.data()[i].at("kind").as_string(), all.events[i].event);
  }

  auto resumed = client_->stream("/api/stream/" + task, alice, 2);
  ASSERT_EQ(resumed.events.size(), 2u);
  EXPECT_EQ(resumed.events[0].id, "3");
  EXPECT_EQ(resumed.data()[0].at("text").as_string(), "three");
  EXPECT_EQ(resumed.events[1].id, "4");
  EXPECT_TRUE(resumed.terminal());

  auto by_query = client_->stream("/api/stream/" + task + "?lastEventId=3", alice);
  ASSERT_EQ(by_query.events.size(), 1u);
  EXPECT_EQ(by_query.events[0].event, "done");

  // Past the terminal event: the stream ends at once, empty.
  auto after_end = client_->stream("/api/stream/" + task, alice, 4);
  EXPECT_EQ(after_end.status, 200u);
  EXPECT_TRUE(after_end.events.empty());
  EXPECT_TRUE(after_end.error.empty()) << after_end.error;
}

TEST_F(GatewayTest, StreamFollowsEventsAsTheyAreAppended) {
  GatewayConfig config;
  config.stream_keepalive = Seconds(60);  // a lost wake-up would stall the stream past the read timeout
  start(config);
  const std::string alice = sign("alice");
  const std::string agent = create_agent(alice);
  const std::string task = std::string(chat(alice, agent).json().at("taskId").as_string());
  std::thread producer([&] {
    ASSERT_TRUE(testing::wait_until([&] { return bus_->stats().subscribers == 1; }));
    for (int i = 0; i < 2000; ++i) {
      ASSERT_TRUE(bus_->append(task, EventKind::kTextChunk, R"({"kind":"text_chunk","text":"x"})").ok());
      if (i % 7 == 0) std::this_thread::yield();  // bursts of varied size
    }
    ASSERT_TRUE(bus_->append(task, EventKind::kError, R"({"kind":"error","error":"boom"})").ok());
  });
  auto live = client_->stream("/api/stream/" + task, alice, std::nullopt, std::chrono::milliseconds(5000));
  producer.join();
  ASSERT_EQ(live.events.size(), 2001u) << live.error;
  for (std::size_t i = 0; i < live.events.size(); ++i) EXPECT_EQ(live.events[i].id, std::to_string(i + 1));
  EXPECT_EQ(live.events.back().event, "error");
  EXPECT_TRUE(testing::wait_until([&] { return bus_->stats().subscribers == 0; }));
}

TEST_F(GatewayTest, MaintenanceModeAndDrainingRejectNewWorkWith503) {
  GatewayConfig config;
  config.degraded_retry_after = Seconds(7);
  start(config);
  const std::string alice = sign("alice");
  const std::string agent = create_agent(alice);
  control_->accepting = false;
  auto degraded = chat(alice, agent);
  EXPECT_EQ(degraded.status, 503u);
  EXPECT_EQ(degraded.header("Retry-After").value_or(""), "7");
  EXPECT_EQ(error_type(degraded), "degraded");
  control_->accepting = true;
  EXPECT_EQ(chat(alice, agent).status, 202u);

  EXPECT_EQ(client_->get("/readyz").status, 200u);
  control_->is_draining = true;
  EXPECT_EQ(client_->get("/readyz").status, 503u);
  EXPECT_EQ(client_->get("/healthz").status, 200u);
  EXPECT_EQ(error_type(chat(alice, agent)), "draining");
}

TEST_F(GatewayTest, MembershipWebhookPausesAndRenewsTheUsersAgents) {
  start();
  const std::string alice = sign("alice");
  const std::string agent = create_agent(alice);
  const std::string cancel = R"({"type":"subscription.cancelled","data":{"user_id":"alice"}})";
  // Unsigned and without the user's token: refused. Another user's token: not found.
  EXPECT_EQ(client_->post("/api/webhooks/membership", cancel).status, 401u);
  EXPECT_EQ(client_->post("/api/webhooks/membership", cancel, sign("bob")).status, 404u);
  auto bad_sig = client_->request(boost::beast::http::verb::post, "/api/webhooks/membership", cancel, {},
                                  {{"X-Agentlab-Signature", "sha256=00"}});
  EXPECT_EQ(bad_sig.status, 401u);
  // Signed by the provider: HMAC-SHA256 of the body with the webhook secret (= the JWT secret).
  auto signed_renew = client_->request(boost::beast::http::verb::post, "/api/webhooks/membership",
                                       R"({"type":"subscription.renewed","data":{"user_id":"alice"}})", {},
                                       {{"X-Agentlab-Signature",
                                         "sha256=" + hmac_hex(kSecret, R"({"type":"subscription.renewed","data":{"user_id":"alice"}})")}});
  EXPECT_EQ(signed_renew.status, 200u) << signed_renew.body;
  auto paused = client_->post("/api/webhooks/membership", cancel, alice);
  ASSERT_EQ(paused.status, 200u) << paused.body;
  EXPECT_EQ(paused.json().at("agents").as_int64(), 1);
  EXPECT_EQ(store_.get_agent(agent)->state, AgentState::kMembershipPaused);
  auto refused = chat(alice, agent);
  EXPECT_EQ(refused.status, 402u);
  EXPECT_EQ(error_type(refused), "membership_paused");
  auto renewed = client_->post("/api/webhooks/membership",
                               R"({"type":"subscription.renewed","data":{"user_id":"alice"}})", alice);
  ASSERT_EQ(renewed.status, 200u);
  EXPECT_EQ(store_.get_agent(agent)->state, AgentState::kHibernated);
  EXPECT_EQ(chat(alice, agent).status, 202u);
}

TEST_F(GatewayTest, ForkMakesCopyOnWriteAgentsOfTheCaller) {
  start();
  const std::string alice = sign("alice");
  const std::string agent = create_agent(alice, "parent");
  auto r = client_->post("/api/fork", "{\"agentId\":\"" + agent + "\",\"count\":3}", alice);
  ASSERT_EQ(r.status, 202u) << r.body;
  const auto ids = r.json().at("forkIds").as_array();
  ASSERT_EQ(ids.size(), 3u);
  const std::string checkpoint = std::string(r.json().at("checkpointId").as_string());
  for (const auto& id : ids) {
    auto f = client_->get("/api/agents/" + std::string(id.as_string()), alice);
    ASSERT_EQ(f.status, 200u);
    EXPECT_EQ(f.json().at("forkOf").at("agentId").as_string(), agent);
    EXPECT_EQ(f.json().at("forkOf").at("checkpointId").as_string(), checkpoint);
    EXPECT_EQ(f.json().at("state").as_string(), "READY");
  }
  // From an explicit checkpoint; an unknown checkpoint is a 404.
  EXPECT_EQ(client_->post("/api/fork", "{\"agentId\":\"" + agent + "\",\"checkpointId\":\"" + checkpoint + "\"}", alice)
                .status,
            202u);
  EXPECT_EQ(client_->post("/api/fork", "{\"agentId\":\"" + agent + "\",\"checkpointId\":\"nope\"}", alice).status, 404u);
  EXPECT_EQ(client_->get("/api/agents", alice).json().at("agents").as_array().size(), 5u);
}

TEST_F(GatewayTest, HibernateIsForwardedForTheOwnersAgentOnly) {
  start();
  const std::string alice = sign("alice");
  const std::string agent = create_agent(alice);
  auto r = client_->post("/api/agents/" + agent + "/hibernate", "", alice);
  ASSERT_EQ(r.status, 202u);
  EXPECT_EQ(r.json().at("result").as_string(), "not_resident");
  EXPECT_EQ(client_->post("/api/agents/" + agent + "/hibernate", "", sign("bob")).status, 404u);
  EXPECT_EQ(control_->hibernated(), std::vector<std::string>{agent});
}

TEST_F(GatewayTest, SystemAndMetricsComeFromTheControlPlane) {
  start();
  auto system = client_->get("/api/system");
  ASSERT_EQ(system.status, 200u);
  EXPECT_TRUE(system.json().at("fake").as_bool());
  auto metrics = client_->get("/metrics");
  EXPECT_EQ(metrics.status, 200u);
  EXPECT_EQ(metrics.body, "fake_metric 1\n");
  EXPECT_EQ(client_->get("/api/nothing-here").status, 404u);
}

}  // namespace
}  // namespace lab::runtime
