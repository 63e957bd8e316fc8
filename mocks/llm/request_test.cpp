#include "mocks/llm/request.hpp"

#include <gtest/gtest.h>

namespace lab::mocks::llm {
namespace {

ChatRequest parse_ok_openai(std::string_view body) {
  ChatRequest req;
  const auto err = parse_openai_request(body, req);
  EXPECT_FALSE(err) << (err ? err->message : "");
  return req;
}

RequestError parse_bad_openai(std::string_view body) {
  ChatRequest req;
  const auto err = parse_openai_request(body, req);
  EXPECT_TRUE(err) << body;
  return err.value_or(RequestError{});
}

RequestError parse_bad_anthropic(std::string_view body) {
  ChatRequest req;
  const auto err = parse_anthropic_request(body, req);
  EXPECT_TRUE(err) << body;
  return err.value_or(RequestError{});
}

TEST(OpenAiRequest, ParsesStreamingRequestWithUsageAndTools) {
  const ChatRequest req = parse_ok_openai(R"({
    "model": "gpt-4o-mini", "stream": true, "stream_options": {"include_usage": true},
    "max_completion_tokens": 64,
    "messages": [{"role": "system", "content": "be brief"},
                 {"role": "user", "content": [{"type": "text", "text": "weather in Paris?"}]}],
    "tools": [{"type": "function", "function": {"name": "get_weather",
               "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
    "tool_choice": {"type": "function", "function": {"name": "get_weather"}}})");
  EXPECT_EQ(req.api, Api::kOpenAi);
  EXPECT_EQ(req.model, "gpt-4o-mini");
  EXPECT_TRUE(req.stream);
  EXPECT_TRUE(req.include_usage);
  EXPECT_EQ(req.max_tokens, 64);
  ASSERT_EQ(req.tools.size(), 1u);
  EXPECT_EQ(req.tools[0].name, "get_weather");
  EXPECT_TRUE(req.tools[0].schema.is_object());
  EXPECT_EQ(req.tool_mode, ToolMode::kNamed);
  EXPECT_EQ(req.tool_name, "get_weather");
  EXPECT_FALSE(req.after_tool_result);
  EXPECT_GT(req.input_tokens, 10);
}

TEST(OpenAiRequest, ToolResultLastMeansAnswerInText) {
  const ChatRequest req = parse_ok_openai(R"({"model": "m", "messages": [
    {"role": "user", "content": "weather?"},
    {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
      "function": {"name": "get_weather", "arguments": "{}"}}]},
    {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}],
    "tools": [{"type": "function", "function": {"name": "get_weather"}}]})");
  EXPECT_TRUE(req.after_tool_result);
}

TEST(OpenAiRequest, InputTokensGrowWithThePrompt) {
  const ChatRequest small = parse_ok_openai(R"({"model":"m","messages":[{"role":"user","content":"hi"}]})");
  const std::string big_body = R"({"model":"m","messages":[{"role":"user","content":")" +
                               std::string(4000, 'x') + R"("}]})";
  const ChatRequest big = parse_ok_openai(big_body);
  EXPECT_EQ(big.input_tokens - small.input_tokens, 1000 - 1);
}

TEST(OpenAiRequest, SameContentSameHashDifferentContentDifferentHash) {
  const ChatRequest a = parse_ok_openai(R"({"model":"m","messages":[{"role":"user","content":"hi"}]})");
  const ChatRequest b = parse_ok_openai(R"({ "messages":[{"content":"hi","role":"user"}], "model":"m", "stream":true })");
  const ChatRequest c = parse_ok_openai(R"({"model":"m","messages":[{"role":"user","content":"ho"}]})");
  const ChatRequest d = parse_ok_openai(R"({"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"}]})");
  EXPECT_EQ(a.content_hash, b.content_hash);  // stream and field order do not change the output
  EXPECT_NE(a.content_hash, c.content_hash);
  EXPECT_NE(a.content_hash, d.content_hash);
}

TEST(OpenAiRequest, RejectsWhatOpenAiRejects) {
  EXPECT_EQ(parse_bad_openai("{not json").message.substr(0, 33), "We could not parse the JSON body ");
  EXPECT_EQ(parse_bad_openai("[1]").message, "The request body must be a JSON object.");
  EXPECT_EQ(parse_bad_openai(R"({"messages":[{"role":"user","content":"x"}]})").param, "model");
  EXPECT_EQ(parse_bad_openai(R"({"model":"m"})").message, "Missing required parameter: 'messages'.");
  EXPECT_EQ(parse_bad_openai(R"({"model":"m","messages":[]})").message, "[] is too short - 'messages'");
  const RequestError role = parse_bad_openai(R"({"model":"m","messages":[{"role":"robot","content":"x"}]})");
  EXPECT_EQ(role.param, "messages[0].role");
  EXPECT_NE(role.message.find("'robot'"), std::string::npos);
  EXPECT_EQ(parse_bad_openai(R"({"model":"m","messages":[{"role":"user"}]})").param, "messages[0].content");
  EXPECT_EQ(parse_bad_openai(R"({"model":"m","max_tokens":0,"messages":[{"role":"user","content":"x"}]})").param, "max_tokens");
  EXPECT_EQ(parse_bad_openai(R"({"model":"m","stream_options":{"include_usage":true},"messages":[{"role":"user","content":"x"}]})").param, "stream_options");
  EXPECT_EQ(parse_bad_openai(R"({"model":"m","n":3,"messages":[{"role":"user","content":"x"}]})").param, "n");
  EXPECT_EQ(parse_bad_openai(R"({"model":"m","temperature":3,"messages":[{"role":"user","content":"x"}]})").param, "temperature");
  EXPECT_EQ(parse_bad_openai(R"({"model":"m","tool_choice":"required","messages":[{"role":"user","content":"x"}]})").param, "tool_choice");
  EXPECT_EQ(parse_bad_openai(R"({"model":"m","tools":[{"type":"function","function":{}}],"messages":[{"role":"user","content":"x"}]})").param, "tools[0].function.name");
  const RequestError bad = parse_bad_openai(R"({"model":"m","messages":"x"})");
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(bad.type, "invalid_request_error");
}

TEST(AnthropicRequest, ParsesMessagesWithSystemToolsAndToolResult) {
  ChatRequest req;
  const auto err = parse_anthropic_request(R"({
    "model": "claude-3-5-sonnet-latest", "max_tokens": 1024, "stream": true,
    "system": [{"type": "text", "text": "You are terse."}],
    "tools": [{"name": "get_weather", "input_schema": {"type": "object",
               "properties": {"location": {"type": "string"}}, "required": ["location"]}}],
    "tool_choice": {"type": "any"},
    "messages": [{"role": "user", "content": "weather?"},
                 {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1",
                   "name": "get_weather", "input": {"location": "Paris"}}]},
                 {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
                   "content": "sunny"}]}]})", req);
  ASSERT_FALSE(err) << err->message;
  EXPECT_EQ(req.api, Api::kAnthropic);
  EXPECT_EQ(req.max_tokens, 1024);
  EXPECT_TRUE(req.stream);
  EXPECT_EQ(req.tool_mode, ToolMode::kRequired);
  ASSERT_EQ(req.tools.size(), 1u);
  EXPECT_TRUE(req.after_tool_result);
}

TEST(AnthropicRequest, RejectsWhatAnthropicRejects) {
  EXPECT_EQ(parse_bad_anthropic(R"({"model":"m","messages":[{"role":"user","content":"x"}]})").message,
            "max_tokens: Field required");
  EXPECT_EQ(parse_bad_anthropic(R"({"max_tokens":5,"messages":[{"role":"user","content":"x"}]})").message,
            "model: Field required");
  EXPECT_EQ(parse_bad_anthropic(R"({"model":"m","max_tokens":5})").message, "messages: Field required");
  EXPECT_EQ(parse_bad_anthropic(R"({"model":"m","max_tokens":5,"messages":[{"role":"system","content":"x"}]})").param,
            "messages[0].role");
  EXPECT_EQ(parse_bad_anthropic(R"({"model":"m","max_tokens":5,"tool_choice":{"type":"weird"},"messages":[{"role":"user","content":"x"}]})").param,
            "tool_choice");
  EXPECT_EQ(parse_bad_anthropic("nope").status, 400);
}

}  // namespace
}  // namespace lab::mocks::llm
