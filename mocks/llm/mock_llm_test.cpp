// The mock LLM over real sockets: each API's wire format, every fault kind, rate limits, the
// queue, determinism and /metrics. Latencies are pinned to 0–a few ms through the x-mock-*
// headers, so the tests are fast; the clock is simulated where time matters (rate limits,
// fault windows).

#include "mocks/llm/mock_llm.hpp"

#include <sstream>
#include <thread>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <gtest/gtest.h>

#include "mocks/llm/testing/http_fetch.hpp"

namespace lab::mocks::llm {
namespace {

namespace json = boost::json;
using boost::beast::http::verb;
using testing::FetchOptions;
using testing::FetchResult;
using testing::fetch;
using testing::sse_events;

constexpr std::string_view kChat = R"({"model":"mock","messages":[{"role":"user","content":"Say something."}],"max_tokens":12})";
constexpr std::string_view kChatStream =
    R"({"model":"mock","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Say something."}],"max_tokens":12})";
constexpr std::string_view kMessages = R"({"model":"claude-mock","max_tokens":12,"messages":[{"role":"user","content":"Say something."}]})";
constexpr std::string_view kMessagesStream =
    R"({"model":"claude-mock","max_tokens":12,"stream":true,"messages":[{"role":"user","content":"Say something."}]})";

/// A fast profile: zero latency unless a test pins it.
Profile fast_profile() {
  Profile p;
  p.latency.ttft_ms = Distribution::constant(0.0);
  p.latency.prefill_ms_per_token = 0.0;
  p.latency.itl_ms = Distribution::constant(0.0);
  p.output.tokens = Distribution::constant(8.0);
  p.max_hang = std::chrono::seconds(5);
  return p;
}

json::value parse_json(std::string_view text) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  EXPECT_FALSE(ec) << "not JSON: " << text;
  return v;
}

std::string streamed_openai_text(const FetchResult& r) {
  std::string text;
  for (const auto& e : sse_events(r.body)) {
    if (e.data == "[DONE]") break;
    const json::value chunk = parse_json(e.data);
    const json::array& choices = chunk.at("choices").as_array();
    if (choices.empty()) continue;
    const json::object& delta = choices[0].at("delta").as_object();
    if (const json::value* c = delta.if_contains("content"); c && c->is_string()) text += std::string(c->as_string());
  }
  return text;
}

class MockLlmTest : public ::testing::Test {
 protected:
  void start(Profile profile = fast_profile(), std::uint64_t seed = 1) {
    mock_ = std::make_unique<MockLlm>(std::move(profile), clock_, seed);
    mock_->start();
  }
  FetchResult post(std::string_view target, std::string_view body, FetchOptions options = {}) {
    return fetch(mock_->port(), verb::post, target, body, options);
  }
  FetchResult get(std::string_view target, FetchOptions options = {}) {
    return fetch(mock_->port(), verb::get, target, {}, options);
  }
  /// Waits (bounded) until the mock has no request in its batch: the server side of a
  /// dropped connection finishes asynchronously.
  bool wait_until_idle() {
    for (int i = 0; i < 500; ++i) {
      if (mock_->running() == 0 && mock_->waiting() == 0) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }
  /// Waits (bounded) until `n` requests hold batch slots.
  bool wait_until_running(int n) {
    for (int i = 0; i < 500; ++i) {
      if (mock_->running() == n) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }

  SimulatedClock clock_;
  std::unique_ptr<MockLlm> mock_;
};

TEST_F(MockLlmTest, OpenAiCompletionHasTheChatCompletionShape) {
  start();
  const FetchResult r = post("/v1/chat/completions", kChat);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("content-type"), "application/json");
  EXPECT_FALSE(r.header("x-request-id").empty());
  const json::value body = parse_json(r.body);
  EXPECT_TRUE(body.at("id").as_string().starts_with("chatcmpl-"));
  EXPECT_EQ(body.at("object"), "chat.completion");
  EXPECT_EQ(body.at("model"), "mock");
  EXPECT_EQ(body.at("choices").at(0).at("message").at("role"), "assistant");
  EXPECT_EQ(body.at("choices").at(0).at("finish_reason"), "stop");
  EXPECT_EQ(body.at("usage").at("completion_tokens"), 8);
  EXPECT_EQ(body.at("usage").at("total_tokens").as_int64(),
            body.at("usage").at("prompt_tokens").as_int64() + 8);
}

TEST_F(MockLlmTest, OpenAiStreamMatchesTheNonStreamingTextAndEndsWithDone) {
  start();
  const FetchResult full = post("/v1/chat/completions", kChat);
  const FetchResult r = post("/v1/chat/completions", kChatStream);
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.header("content-type"), "text/event-stream; charset=utf-8");
  EXPECT_EQ(r.header("transfer-encoding"), "chunked");
  EXPECT_FALSE(r.error) << r.error.message();
  const auto events = sse_events(r.body);
  ASSERT_EQ(events.size(), 1u + 8u + 1u + 1u + 1u);  // role, tokens, finish, usage, [DONE]
  EXPECT_EQ(events.back().data, "[DONE]");
  const json::value usage = parse_json(events[events.size() - 2].data);
  EXPECT_EQ(usage.at("usage").at("completion_tokens"), 8);
  EXPECT_EQ(streamed_openai_text(r),
            std::string(parse_json(full.body).at("choices").at(0).at("message").at("content").as_string()));
}

TEST_F(MockLlmTest, OpenAiToolsGiveToolCallsThenTextAfterTheToolResult) {
  start();
  const std::string tools =
      R"("tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}])";
  const FetchResult call = post("/v1/chat/completions",
                                R"({"model":"m","messages":[{"role":"user","content":"weather?"}],)" + tools + "}");
  ASSERT_EQ(call.status, 200);
  const json::value body = parse_json(call.body);
  EXPECT_EQ(body.at("choices").at(0).at("finish_reason"), "tool_calls");
  const json::value& tc = body.at("choices").at(0).at("message").at("tool_calls").at(0);
  EXPECT_EQ(tc.at("function").at("name"), "get_weather");
  EXPECT_EQ(parse_json(tc.at("function").at("arguments").as_string()).at("city"), "mock-city");

  const FetchResult after = post("/v1/chat/completions",
      R"({"model":"m","messages":[{"role":"user","content":"weather?"},{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{}"}}]},{"role":"tool","tool_call_id":"call_1","content":"sunny"}],)" + tools + "}");
  ASSERT_EQ(after.status, 200);
  EXPECT_EQ(parse_json(after.body).at("choices").at(0).at("finish_reason"), "stop");

  const FetchResult streamed = post("/v1/chat/completions",
      R"({"model":"m","stream":true,"messages":[{"role":"user","content":"weather?"}],)" + tools + "}");
  const auto events = sse_events(streamed.body);
  ASSERT_GE(events.size(), 3u);
  EXPECT_EQ(parse_json(events[0].data).at("choices").at(0).at("delta").at("tool_calls").at(0).at("function").at("name"), "get_weather");
  EXPECT_EQ(parse_json(events[events.size() - 2].data).at("choices").at(0).at("finish_reason"), "tool_calls");
}

TEST_F(MockLlmTest, AnthropicStreamHasTheFullEventSequence) {
  start();
  const FetchResult r = post("/v1/messages", kMessagesStream, {{{"anthropic-version", "2023-06-01"}}});
  ASSERT_EQ(r.status, 200);
  EXPECT_FALSE(r.header("request-id").empty());
  std::vector<std::string> kinds;
  for (const auto& e : sse_events(r.body)) kinds.push_back(e.event);
  std::vector<std::string> expected = {"message_start", "content_block_start", "ping"};
  for (int i = 0; i < 8; ++i) expected.push_back("content_block_delta");
  for (const char* k : {"content_block_stop", "message_delta", "message_stop"}) expected.push_back(k);
  EXPECT_EQ(kinds, expected);
}

TEST_F(MockLlmTest, AnthropicMessageAndToolUse) {
  start();
  const FetchResult r = post("/v1/messages", kMessages);
  ASSERT_EQ(r.status, 200);
  const json::value body = parse_json(r.body);
  EXPECT_EQ(body.at("type"), "message");
  EXPECT_EQ(body.at("stop_reason"), "end_turn");
  EXPECT_EQ(body.at("usage").at("output_tokens"), 8);

  const FetchResult tool = post("/v1/messages",
      R"({"model":"c","max_tokens":100,"tool_choice":{"type":"tool","name":"lookup"},"tools":[{"name":"search","input_schema":{"type":"object"}},{"name":"lookup","input_schema":{"type":"object","properties":{"q":{"type":"string"}}}}],"messages":[{"role":"user","content":"find it"}]})");
  ASSERT_EQ(tool.status, 200);
  const json::value tb = parse_json(tool.body);
  EXPECT_EQ(tb.at("stop_reason"), "tool_use");
  EXPECT_EQ(tb.at("content").at(0).at("name"), "lookup");
  EXPECT_EQ(tb.at("content").at(0).at("input").at("q"), "mock-q");
}

TEST_F(MockLlmTest, ModelsInBothShapes) {
  Profile p = fast_profile();
  p.models = {"alpha", "beta"};
  start(p);
  const json::value openai = parse_json(get("/v1/models").body);
  EXPECT_EQ(openai.at("data").at(1).at("id"), "beta");
  const json::value anthropic = parse_json(get("/v1/models", {{{"anthropic-version", "2023-06-01"}}}).body);
  EXPECT_EQ(anthropic.at("data").at(0).at("type"), "model");
  EXPECT_EQ(anthropic.at("has_more"), false);
  EXPECT_EQ(parse_json(get("/v1/models/alpha").body).at("id"), "alpha");
  EXPECT_EQ(get("/v1/models/gamma").status, 404);
}

TEST_F(MockLlmTest, MalformedRequestsGetTheProvidersErrorShape) {
  Profile p = fast_profile();
  p.accept_any_model = false;
  p.models = {"known"};
  p.max_body_bytes = 4096;
  start(p);
  const FetchResult openai = post("/v1/chat/completions", R"({"model":"known"})");
  EXPECT_EQ(openai.status, 400);
  EXPECT_EQ(parse_json(openai.body).at("error").at("param"), "messages");
  EXPECT_EQ(parse_json(openai.body).at("error").at("type"), "invalid_request_error");
  const FetchResult anthropic = post("/v1/messages", R"({"model":"known","messages":[{"role":"user","content":"x"}]})");
  EXPECT_EQ(anthropic.status, 400);
  EXPECT_EQ(parse_json(anthropic.body).at("type"), "error");
  EXPECT_EQ(parse_json(anthropic.body).at("error").at("message"), "max_tokens: Field required");
  const FetchResult unknown = post("/v1/chat/completions", R"({"model":"other","messages":[{"role":"user","content":"x"}]})");
  EXPECT_EQ(unknown.status, 404);
  EXPECT_EQ(parse_json(unknown.body).at("error").at("code"), "model_not_found");
  const FetchResult header = post("/v1/chat/completions", R"({"model":"known","messages":[{"role":"user","content":"x"}]})",
                                  {{{"x-mock-itl-ms", "fast"}}});
  EXPECT_EQ(header.status, 400);
  const FetchResult big = post("/v1/chat/completions", std::string(8192, ' '));
  EXPECT_EQ(big.status, 413);
}

TEST_F(MockLlmTest, AdminApiAddsListsAndClearsFaults) {
  start();
  const FetchResult added = post("/admin/faults", R"({"error_rate": 1.0, "status": 503})");
  ASSERT_EQ(added.status, 201) << added.body;
  EXPECT_EQ(parse_json(added.body).at("id"), 1);
  const FetchResult failed = post("/v1/chat/completions", kChat);
  EXPECT_EQ(failed.status, 503);
  EXPECT_EQ(failed.header("retry-after"), "1");
  EXPECT_EQ(parse_json(failed.body).at("error").at("type"), "server_error");
  const FetchResult anthropic = post("/v1/messages", kMessages);
  EXPECT_EQ(anthropic.status, 503);
  EXPECT_EQ(parse_json(anthropic.body).at("error").at("type"), "overloaded_error");
  const json::value listed = parse_json(get("/admin/faults").body);
  EXPECT_EQ(listed.at("faults").at(0).at("matched"), 2);
  EXPECT_EQ(listed.at("faults").at(0).at("state"), "active");
  const FetchResult bad = post("/admin/faults", R"({"error_rate": 5, "volume": 11})");
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(parse_json(bad.body).at("errors").as_array().size(), 2u);
  EXPECT_EQ(fetch(mock_->port(), verb::delete_, "/admin/faults").status, 200);
  EXPECT_EQ(post("/v1/chat/completions", kChat).status, 200);
  EXPECT_EQ(fetch(mock_->port(), verb::delete_, "/admin/faults/99").status, 404);
}

TEST_F(MockLlmTest, FailFirstThenRecover) {
  start();
  ASSERT_EQ(post("/admin/faults", R"([{"fail_first": 2, "status": 429}])").status, 201);
  const FetchResult first = post("/v1/chat/completions", kChat);
  EXPECT_EQ(first.status, 429);
  EXPECT_EQ(first.header("retry-after"), "1");
  EXPECT_EQ(post("/v1/chat/completions", kChat).status, 429);
  EXPECT_EQ(post("/v1/chat/completions", kChat).status, 200);
}

TEST_F(MockLlmTest, FaultWindowFollowsTheInjectedClock) {
  start();
  mock_->add_fault([] {
    FaultRule r;
    r.error_rate = 1.0;
    r.status = 500;
    r.delay = Seconds(10);
    r.duration = Seconds(5);
    return r;
  }());
  EXPECT_EQ(post("/v1/chat/completions", kChat).status, 200);
  clock_.advance(Seconds(10));
  EXPECT_EQ(post("/v1/chat/completions", kChat).status, 500);
  clock_.advance(Seconds(5));
  EXPECT_EQ(post("/v1/chat/completions", kChat).status, 200);
}

TEST_F(MockLlmTest, HangAcceptsAndNeverAnswers) {
  start();
  ASSERT_EQ(post("/admin/faults", R"({"hang_rate": 1})").status, 201);
  const FetchResult r = post("/v1/chat/completions", kChat, {{}, std::chrono::milliseconds(300)});
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(r.error, boost::beast::error::timeout);
  mock_->clear_faults();
  EXPECT_EQ(post("/v1/chat/completions", kChat).status, 200);
}

TEST_F(MockLlmTest, DisconnectCutsTheStreamAfterNTokens) {
  start();
  ASSERT_EQ(post("/admin/faults", R"({"disconnect_after_tokens": 3, "disconnect_rate": 1})").status, 201);
  const FetchResult r = post("/v1/chat/completions", kChatStream);
  EXPECT_EQ(r.status, 200);
  EXPECT_TRUE(r.error);  // the body never completed
  const auto events = sse_events(r.body);
  ASSERT_EQ(events.size(), 1u + 3u);  // role chunk + 3 tokens, then nothing
  EXPECT_NE(events.back().data, "[DONE]");
  // Non-streaming: the connection drops without an answer.
  const FetchResult plain = post("/v1/chat/completions", kChat);
  EXPECT_EQ(plain.status, 0);
  EXPECT_TRUE(plain.error);
}

TEST_F(MockLlmTest, StallSendsSomeTokensThenGoesQuiet) {
  start();
  const FetchResult r = post("/v1/messages", kMessagesStream,
                             {{{"x-mock-fault", "stall=2"}}, std::chrono::milliseconds(800)});
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.error, boost::beast::error::timeout);
  const auto events = sse_events(r.body);
  ASSERT_EQ(events.size(), 3u + 2u);  // message_start, content_block_start, ping + 2 deltas
  EXPECT_EQ(events.back().event, "content_block_delta");
}

TEST_F(MockLlmTest, MalformedBreaksOneEventOrTheBody) {
  start();
  const FetchResult r = post("/v1/chat/completions", kChatStream, {{{"x-mock-fault", "malformed"}}});
  ASSERT_EQ(r.status, 200);
  int broken = 0;
  for (const auto& e : sse_events(r.body)) {
    boost::system::error_code ec;
    json::parse(e.data == "[DONE]" ? "{}" : e.data, ec);
    if (ec) ++broken;
  }
  EXPECT_EQ(broken, 1);
  ASSERT_EQ(post("/admin/faults", R"({"malformed_rate": 1})").status, 201);
  const FetchResult body = post("/v1/chat/completions", kChat);
  EXPECT_EQ(body.status, 200);
  boost::system::error_code ec;
  json::parse(body.body, ec);
  EXPECT_TRUE(ec);
}

TEST_F(MockLlmTest, LatencyMultiplierSlowsTheResponse) {
  start();
  const FetchOptions pinned{{{"x-mock-ttft-ms", "20"}, {"x-mock-itl-ms", "0"}}};
  const FetchResult normal = post("/v1/chat/completions", kChat, pinned);
  ASSERT_EQ(post("/admin/faults", R"({"latency_multiplier": 10})").status, 201);
  const FetchResult slow = post("/v1/chat/completions", kChat, pinned);
  EXPECT_EQ(slow.status, 200);
  EXPECT_GE(normal.elapsed, std::chrono::milliseconds(20));
  EXPECT_GE(slow.elapsed, std::chrono::milliseconds(200));
}

TEST_F(MockLlmTest, HeaderForcesAnErrorForOneRequest) {
  start();
  const FetchResult r = post("/v1/chat/completions", kChat, {{{"x-mock-fault", "error=429"}}});
  EXPECT_EQ(r.status, 429);
  EXPECT_EQ(parse_json(r.body).at("error").at("code"), "rate_limit_exceeded");
  EXPECT_EQ(post("/v1/chat/completions", kChat).status, 200);
  EXPECT_EQ(post("/v1/chat/completions", kChat, {{{"x-mock-fault", "boom"}}}).status, 400);
}

TEST_F(MockLlmTest, RateLimitsPerKeyWithHeadersAndRetryAfter) {
  Profile p = fast_profile();
  p.key_rate_limits["sk-small"] = {2, 0};
  start(p);
  const FetchOptions key{{{"authorization", "Bearer sk-small"}}};
  FetchResult r = post("/v1/chat/completions", kChat, key);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("x-ratelimit-limit-requests"), "2");
  EXPECT_EQ(r.header("x-ratelimit-remaining-requests"), "1");
  EXPECT_EQ(post("/v1/chat/completions", kChat, key).status, 200);
  r = post("/v1/chat/completions", kChat, key);
  EXPECT_EQ(r.status, 429);
  EXPECT_EQ(r.header("retry-after"), "30");
  EXPECT_EQ(r.header("x-ratelimit-remaining-requests"), "0");
  EXPECT_EQ(parse_json(r.body).at("error").at("code"), "rate_limit_exceeded");
  // Another key, and no key, are not limited.
  EXPECT_EQ(post("/v1/chat/completions", kChat).status, 200);
  // Anthropic's key header and header names.
  const FetchResult a = post("/v1/messages", kMessages, {{{"x-api-key", "sk-small"}}});
  EXPECT_EQ(a.status, 429);
  EXPECT_EQ(a.header("anthropic-ratelimit-requests-limit"), "2");
  EXPECT_EQ(parse_json(a.body).at("error").at("type"), "rate_limit_error");
  clock_.advance(Seconds(30));
  EXPECT_EQ(post("/v1/chat/completions", kChat, key).status, 200);
}

TEST_F(MockLlmTest, FullQueueAnswers429WithRetryAfter) {
  Profile p = fast_profile();
  p.load.max_num_seqs = 1;
  p.load.max_waiting = 0;
  p.load.retry_after = Seconds(3);
  start(p);
  // One long request holds the only slot.
  std::thread holder([&] {
    post("/v1/chat/completions", kChat, {{{"x-mock-ttft-ms", "60000"}}, std::chrono::milliseconds(1500)});
  });
  ASSERT_TRUE(wait_until_running(1));
  const FetchResult r = post("/v1/chat/completions", kChat);
  EXPECT_EQ(r.status, 429);
  EXPECT_EQ(r.header("retry-after"), "3");
  holder.join();  // its client gave up after 1.5 s: the slot comes back
  ASSERT_TRUE(wait_until_idle());
  EXPECT_EQ(post("/v1/chat/completions", kChat).status, 200);
}

TEST_F(MockLlmTest, QueuedRequestsRunWhenASlotFrees) {
  Profile p = fast_profile();
  p.load.max_num_seqs = 1;
  p.load.max_waiting = 8;
  start(p);
  std::vector<std::thread> clients;
  std::atomic<int> ok{0};
  for (int i = 0; i < 4; ++i) {
    clients.emplace_back([&] {
      if (post("/v1/chat/completions", kChat, {{{"x-mock-ttft-ms", "30"}}}).status == 200) ++ok;
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(ok.load(), 4);
  EXPECT_TRUE(wait_until_idle());
}

TEST_F(MockLlmTest, SameSeedSameTokensOtherSeedOtherTokens) {
  SimulatedClock clock;
  auto text_of = [&](std::uint64_t seed) {
    MockLlm mock(fast_profile(), clock, seed);
    mock.start();
    const FetchResult r = fetch(mock.port(), verb::post, "/v1/chat/completions", kChatStream);
    return streamed_openai_text(r);
  };
  const std::string a = text_of(5);
  EXPECT_FALSE(a.empty());
  EXPECT_EQ(a, text_of(5));
  EXPECT_NE(a, text_of(6));
}

TEST_F(MockLlmTest, MetricsCountRequestsTokensAndFaults) {
  start();
  post("/v1/chat/completions", kChatStream);
  post("/v1/messages", kMessages);
  post("/v1/chat/completions", kChat, {{{"x-mock-fault", "error=500"}}});
  const FetchResult m = get("/metrics");
  ASSERT_EQ(m.status, 200);
  EXPECT_EQ(m.header("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  for (const char* line : {"mock_llm_requests_total{api=\"openai\",status=\"200\"} 1",
                           "mock_llm_requests_total{api=\"anthropic\",status=\"200\"} 1",
                           "mock_llm_requests_total{api=\"openai\",status=\"500\"} 1",
                           "mock_llm_output_tokens_total{api=\"openai\"} 8",
                           "mock_llm_faults_injected_total{kind=\"error\"} 1",
                           "mock_llm_time_to_first_token_seconds_count 1",
                           "mock_llm_inter_token_latency_seconds_count 7",
                           "mock_llm_token_lateness_seconds_count 8", "mock_llm_active_streams 0",
                           "mock_llm_queue_depth 0", "mock_llm_running_requests 0"}) {
    EXPECT_NE(m.body.find(line), std::string::npos) << line;
  }
  // promtool's naming rules: every family has HELP and TYPE; counters end in _total.
  std::istringstream lines(m.body);
  std::string line;
  int families = 0;
  while (std::getline(lines, line)) {
    if (!line.starts_with("# TYPE ")) continue;
    ++families;
    std::istringstream fields(line.substr(7));
    std::string name;
    std::string type;
    fields >> name >> type;
    EXPECT_NE(m.body.find("# HELP " + name + " "), std::string::npos) << name;
    if (type == "counter") {
      EXPECT_TRUE(name.ends_with("_total")) << name;
    }
    if (type == "histogram") {
      EXPECT_TRUE(name.ends_with("_seconds")) << name;
    }
  }
  EXPECT_EQ(families, 11);  // 12 families; mock_llm_rate_limited_total has no series yet
}

/// The value of an unlabelled series in Prometheus text ("name value"), or -1.
double metric_value(const std::string& text, const std::string& name) {
  const std::size_t at = text.find("\n" + name + " ");
  if (at == std::string::npos) return -1.0;
  return std::stod(text.substr(at + name.size() + 2));
}

TEST_F(MockLlmTest, StreamedTokensAreNeverEarlyAndEachIsCounted) {
  start();
  const FetchResult r = post("/v1/chat/completions", kChatStream,
                             {{{"x-mock-ttft-ms", "20"}, {"x-mock-itl-ms", "15"}, {"x-mock-output-tokens", "6"}}});
  ASSERT_EQ(r.status, 200);
  // Token k goes out no earlier than TTFT + k × ITL (a late one may go out together with the
  // next, but nothing is ever sent ahead of its time).
  EXPECT_GE(r.elapsed, std::chrono::milliseconds(20 + 5 * 15));
  EXPECT_FALSE(streamed_openai_text(r).empty());
  const FetchResult m = get("/metrics");
  EXPECT_GE(metric_value(m.body, "mock_llm_time_to_first_token_seconds_sum"), 0.020);
  EXPECT_EQ(metric_value(m.body, "mock_llm_token_lateness_seconds_count"), 6.0);
  EXPECT_EQ(metric_value(m.body, "mock_llm_inter_token_latency_seconds_count"), 5.0);
}

TEST_F(MockLlmTest, ManyConcurrentStreamsAllComplete) {
  start();
  std::vector<std::thread> clients;
  std::atomic<int> complete{0};
  for (int i = 0; i < 32; ++i) {
    clients.emplace_back([&] {
      const FetchResult r = post("/v1/chat/completions", kChatStream, {{{"x-mock-itl-ms", "2"}}});
      const auto events = sse_events(r.body);
      if (r.status == 200 && !r.error && !events.empty() && events.back().data == "[DONE]") ++complete;
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(complete.load(), 32);
}

}  // namespace
}  // namespace lab::mocks::llm
