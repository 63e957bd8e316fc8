#include "runtime/worker/chat_protocol.hpp"

#include <gtest/gtest.h>

#include "common/text/json_util.hpp"

namespace lab::runtime {
namespace {

TEST(ChatProtocol, BuildsAStreamingBodyWithToolsAndToolResults) {
  ChatRequestSpec spec;
  spec.messages.push_back({"system", "be brief", {}, {}});
  spec.messages.push_back({"user", "say \"hi\"\n", {}, {}});
  spec.messages.push_back({"assistant", "", {ToolCall{"call_1", "lookup", R"({"query":"x"})"}}, {}});
  spec.messages.push_back({"tool", R"({"result":"r"})", {}, "call_1"});
  spec.tools.push_back({"lookup", "looks things up", R"({"type":"object"})"});
  spec.max_tokens = 16;
  const auto body = json::parse(build_chat_body(spec, "m-1"));
  ASSERT_TRUE(body);
  EXPECT_EQ(body->at("model").as_string(), "m-1");
  EXPECT_TRUE(body->at("stream").as_bool());
  EXPECT_TRUE(body->at("stream_options").at("include_usage").as_bool());
  EXPECT_EQ(body->at("max_tokens").as_int64(), 16);
  const auto& messages = body->at("messages").as_array();
  ASSERT_EQ(messages.size(), 4u);
  EXPECT_EQ(messages[1].at("content").as_string(), "say \"hi\"\n");
  EXPECT_TRUE(messages[2].at("content").is_null());
  EXPECT_EQ(messages[2].at("tool_calls").at(0).at("function").at("arguments").as_string(), R"({"query":"x"})");
  EXPECT_EQ(messages[3].at("tool_call_id").as_string(), "call_1");
  EXPECT_EQ(body->at("tools").at(0).at("function").at("name").as_string(), "lookup");
  EXPECT_EQ(body->at("tool_choice").as_string(), "auto");
  spec.tool_choice_none = true;
  EXPECT_EQ(json::parse(build_chat_body(spec, "m"))->at("tool_choice").as_string(), "none");
  spec.tools.clear();
  EXPECT_EQ(json::parse(build_chat_body(spec, "m"))->as_object().if_contains("tools"), nullptr);
}

TEST(ChatProtocol, AccumulatesTextDeltasUsageAndFinish) {
  ChunkAccumulator acc;
  std::string text;
  EXPECT_EQ(acc.feed(R"({"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]})", text),
            ChunkAccumulator::Feed::kOk);
  EXPECT_EQ(acc.feed(R"({"choices":[{"index":0,"delta":{"content":"Hel"}}]})", text), ChunkAccumulator::Feed::kOk);
  EXPECT_EQ(acc.feed(R"({"choices":[{"index":0,"delta":{"content":"lo"}}]})", text), ChunkAccumulator::Feed::kOk);
  EXPECT_FALSE(acc.finished());
  EXPECT_EQ(acc.feed(R"({"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]})", text), ChunkAccumulator::Feed::kOk);
  EXPECT_EQ(acc.feed(R"({"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":2,"total_tokens":14}})", text),
            ChunkAccumulator::Feed::kOk);
  EXPECT_EQ(acc.feed("[DONE]", text), ChunkAccumulator::Feed::kDone);
  EXPECT_EQ(text, "Hello");
  EXPECT_TRUE(acc.finished());
  EXPECT_EQ(acc.finish_reason(), "stop");
  EXPECT_EQ(acc.model(), "m");
  EXPECT_EQ(acc.prompt_tokens(), 12);
  EXPECT_EQ(acc.completion_tokens(), 2);
  EXPECT_EQ(acc.text_deltas(), 2);
  EXPECT_TRUE(acc.tool_calls().empty());
}

TEST(ChatProtocol, AssemblesToolCallsFromFragmentsByIndex) {
  ChunkAccumulator acc;
  std::string text;
  acc.feed(R"({"choices":[{"delta":{"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"lookup","arguments":""}}]}}]})", text);
  acc.feed(R"({"choices":[{"delta":{"tool_calls":[{"index":1,"id":"call_b","function":{"name":"other","arguments":"{}"}}]}}]})", text);
  acc.feed(R"({"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"query\":"}}]}}]})", text);
  acc.feed(R"({"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"cats\"}"}}]}}]})", text);
  acc.feed(R"({"choices":[{"delta":{},"finish_reason":"tool_calls"}]})", text);
  EXPECT_TRUE(text.empty());
  ASSERT_EQ(acc.tool_calls().size(), 2u);
  EXPECT_EQ(acc.tool_calls()[0].id, "call_a");
  EXPECT_EQ(acc.tool_calls()[0].name, "lookup");
  EXPECT_EQ(acc.tool_calls()[0].arguments, R"({"query":"cats"})");
  EXPECT_EQ(acc.tool_calls()[1].name, "other");
  EXPECT_EQ(acc.finish_reason(), "tool_calls");
}

TEST(ChatProtocol, RejectsMalformedChunks) {
  std::string text;
  for (const char* bad : {"{\"choices\":[{\"delta\":{\"content\":\"x\"", "[]", "42", R"({"id":"x"})",
                          R"({"choices":[1]})", R"({"choices":[{"delta":{"tool_calls":[{"index":99}]}}]})"}) {
    ChunkAccumulator acc;
    EXPECT_EQ(acc.feed(bad, text), ChunkAccumulator::Feed::kMalformed) << bad;
  }
}

TEST(ChatProtocol, ProbeBodyAsksForOneToken) {
  const auto body = json::parse(build_probe_body("m"));
  ASSERT_TRUE(body);
  EXPECT_EQ(body->at("max_tokens").as_int64(), 1);
  EXPECT_EQ(body->as_object().if_contains("stream"), nullptr);
}

}  // namespace
}  // namespace lab::runtime
