#include <string>
#include <vector>

#include <boost/json/parse.hpp>
#include <gtest/gtest.h>

#include "common/http/sse.hpp"
#include "mocks/llm/anthropic_wire.hpp"
#include "mocks/llm/openai_wire.hpp"
#include "mocks/llm/tokens.hpp"

namespace lab::mocks::llm {
namespace {

namespace json = boost::json;

std::vector<http::SseEvent> events_of(std::string_view wire) {
  std::vector<http::SseEvent> events;
  http::SseParser parser;
  EXPECT_TRUE(parser.feed(wire, [&](http::SseEvent&& e) { events.push_back(std::move(e)); }));
  return events;
}

json::value parse_json(std::string_view text) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  EXPECT_FALSE(ec) << text;
  return v;
}

ChatRequest openai_request(bool include_usage, bool continuous = false) {
  ChatRequest req;
  req.api = Api::kOpenAi;
  req.model = "gpt-\"quoted\"";
  req.stream = true;
  req.include_usage = include_usage;
  req.continuous_usage = continuous;
  req.input_tokens = 12;
  return req;
}

Generation text_generation(int tokens) {
  Generation gen;
  gen.text_seed = 99;
  gen.output_tokens = tokens;
  gen.finish = FinishReason::kLength;
  return gen;
}

Generation tool_generation(Api api) {
  ChatRequest req;
  req.api = api;
  req.tools.push_back({"get_weather", parse_json(R"({"type":"object","properties":{"city":{"type":"string"},"days":{"type":"integer"}}})")});
  req.tool_mode = ToolMode::kRequired;
  Rng rng(1);
  return plan_generation(req, OutputProfile{}, {}, rng);
}

// Renders a whole stream the way the server does: open with token 0, close with the last.
std::string render_stream(StreamRenderer& r, const Generation& gen, int input_tokens) {
  std::string wire;
  TokenGenerator tokens(gen.text_seed);
  for (int k = 0; k < gen.output_tokens; ++k) {
    if (k == 0) r.open(wire);
    r.token(wire, gen.tool_call ? std::string_view(gen.tool_call->escaped_fragments[k]) : tokens.next(), k);
  }
  r.close(wire, gen.finish, Usage{input_tokens, gen.output_tokens});
  return wire;
}

TEST(OpenAiWire, StreamIsRoleChunkTokensFinishUsageAndDone) {
  const ChatRequest req = openai_request(true);
  const Generation gen = text_generation(5);
  auto renderer = make_openai_stream(req, gen, {"chatcmpl-abc", 1700000000});
  const auto events = events_of(render_stream(*renderer, gen, req.input_tokens));
  ASSERT_EQ(events.size(), 1u + 5u + 1u + 1u + 1u);
  std::string text;
  for (std::size_t i = 0; i + 1 < events.size(); ++i) {
    const json::object chunk = parse_json(events[i].data).as_object();
    EXPECT_EQ(chunk.at("id"), "chatcmpl-abc");
    EXPECT_EQ(chunk.at("object"), "chat.completion.chunk");
    EXPECT_EQ(chunk.at("created"), 1700000000);
    EXPECT_EQ(chunk.at("model"), "gpt-\"quoted\"");
    ASSERT_TRUE(chunk.contains("usage"));
    if (i == events.size() - 2) {  // the usage chunk
      EXPECT_TRUE(chunk.at("choices").as_array().empty());
      EXPECT_EQ(chunk.at("usage").at("prompt_tokens"), 12);
      EXPECT_EQ(chunk.at("usage").at("completion_tokens"), 5);
      EXPECT_EQ(chunk.at("usage").at("total_tokens"), 17);
      continue;
    }
    EXPECT_TRUE(chunk.at("usage").is_null());
    const json::object& choice = chunk.at("choices").as_array().at(0).as_object();
    const json::object& delta = choice.at("delta").as_object();
    if (i == 0) {
      EXPECT_EQ(delta.at("role"), "assistant");
      EXPECT_EQ(delta.at("content"), "");
    } else if (i <= 5) {
      EXPECT_TRUE(choice.at("finish_reason").is_null());
      text += std::string(delta.at("content").as_string());
    } else {
      EXPECT_TRUE(delta.empty());
      EXPECT_EQ(choice.at("finish_reason"), "length");
    }
  }
  EXPECT_EQ(text, generate_text(99, 5));
  EXPECT_EQ(events.back().data, "[DONE]");
}

TEST(OpenAiWire, WithoutIncludeUsageThereIsNoUsageField) {
  const ChatRequest req = openai_request(false);
  const Generation gen = text_generation(3);
  auto renderer = make_openai_stream(req, gen, {"chatcmpl-x", 1});
  const auto events = events_of(render_stream(*renderer, gen, req.input_tokens));
  ASSERT_EQ(events.size(), 1u + 3u + 1u + 1u);
  for (std::size_t i = 0; i + 1 < events.size(); ++i) {
    EXPECT_FALSE(parse_json(events[i].data).as_object().contains("usage"));
  }
}

TEST(OpenAiWire, ContinuousUsageCountsTokensOnEveryChunk) {
  const ChatRequest req = openai_request(false, true);
  const Generation gen = text_generation(4);
  auto renderer = make_openai_stream(req, gen, {"chatcmpl-x", 1});
  const auto events = events_of(render_stream(*renderer, gen, req.input_tokens));
  for (int k = 0; k < 4; ++k) {
    const json::object chunk = parse_json(events[1 + k].data).as_object();
    EXPECT_EQ(chunk.at("usage").at("completion_tokens"), k + 1);
  }
}

TEST(OpenAiWire, ToolCallStreamsNameThenArgumentFragments) {
  ChatRequest req = openai_request(false);
  const Generation gen = tool_generation(Api::kOpenAi);
  ASSERT_TRUE(gen.tool_call);
  EXPECT_EQ(gen.finish, FinishReason::kToolCalls);
  auto renderer = make_openai_stream(req, gen, {"chatcmpl-t", 1});
  const auto events = events_of(render_stream(*renderer, gen, 3));
  const json::object first = parse_json(events[0].data).as_object();
  const json::object& call = first.at("choices").at(0).at("delta").at("tool_calls").at(0).as_object();
  EXPECT_EQ(call.at("id"), json::value(gen.tool_call->id));
  EXPECT_EQ(call.at("type"), "function");
  EXPECT_EQ(call.at("function").at("name"), "get_weather");
  std::string arguments;
  for (int k = 0; k < gen.output_tokens; ++k) {
    const json::value chunk = parse_json(events[1 + k].data);
    arguments += std::string(chunk.at("choices").at(0).at("delta").at("tool_calls").at(0).at("function").at("arguments").as_string());
  }
  EXPECT_EQ(arguments, gen.tool_call->arguments);
  const json::value args = parse_json(arguments);
  EXPECT_EQ(args.at("city"), "mock-city");
  EXPECT_EQ(args.at("days"), 7);
  const json::value finish = parse_json(events[1 + gen.output_tokens].data);
  EXPECT_EQ(finish.at("choices").at(0).at("finish_reason"), "tool_calls");
}

TEST(OpenAiWire, CompletionBodyHasMessageUsageAndFinishReason) {
  ChatRequest req = openai_request(false);
  const Generation gen = text_generation(6);
  const json::value body = parse_json(render_openai_completion(req, gen, {"chatcmpl-y", 5}, {12, 6}));
  EXPECT_EQ(body.at("object"), "chat.completion");
  EXPECT_EQ(body.at("choices").at(0).at("message").at("role"), "assistant");
  EXPECT_EQ(body.at("choices").at(0).at("message").at("content"), json::value(generate_text(99, 6)));
  EXPECT_EQ(body.at("choices").at(0).at("finish_reason"), "length");
  EXPECT_EQ(body.at("usage").at("total_tokens"), 18);

  const Generation tool = tool_generation(Api::kOpenAi);
  const json::value tool_body = parse_json(render_openai_completion(req, tool, {"chatcmpl-z", 5}, {12, tool.output_tokens}));
  const json::value& message = tool_body.at("choices").at(0).at("message");
  EXPECT_TRUE(message.at("content").is_null());
  EXPECT_EQ(message.at("tool_calls").at(0).at("function").at("arguments"), json::value(tool.tool_call->arguments));
  EXPECT_EQ(tool_body.at("choices").at(0).at("finish_reason"), "tool_calls");
}

TEST(OpenAiWire, ErrorsAndModelsHaveOpenAiShapes) {
  const json::value e = parse_json(render_openai_error("bad \"thing\"", "invalid_request_error", "messages"));
  EXPECT_EQ(e.at("error").at("message"), "bad \"thing\"");
  EXPECT_EQ(e.at("error").at("param"), "messages");
  EXPECT_TRUE(e.at("error").at("code").is_null());
  EXPECT_EQ(parse_json(render_openai_status_error(429)).at("error").at("code"), "rate_limit_exceeded");
  EXPECT_EQ(parse_json(render_openai_status_error(503)).at("error").at("type"), "server_error");
  const json::value models = parse_json(render_openai_models({"a", "b"}));
  EXPECT_EQ(models.at("object"), "list");
  EXPECT_EQ(models.at("data").at(1).at("id"), "b");
  EXPECT_EQ(models.at("data").at(1).at("object"), "model");
}

TEST(AnthropicWire, StreamHasTheFullEventSequence) {
  ChatRequest req;
  req.api = Api::kAnthropic;
  req.model = "claude-x";
  req.input_tokens = 20;
  Generation gen = text_generation(3);
  gen.finish = FinishReason::kStop;
  auto renderer = make_anthropic_stream(req, gen, {"msg_01abc", 0});
  const auto events = events_of(render_stream(*renderer, gen, 20));
  std::vector<std::string> types;
  for (const auto& e : events) {
    const json::value data = parse_json(e.data);
    EXPECT_EQ(data.at("type"), json::value(e.event));  // the event name repeats the type
    types.push_back(e.event);
  }
  EXPECT_EQ(types, (std::vector<std::string>{"message_start", "content_block_start", "ping",
                                             "content_block_delta", "content_block_delta",
                                             "content_block_delta", "content_block_stop",
                                             "message_delta", "message_stop"}));
  const json::value start = parse_json(events[0].data);
  EXPECT_EQ(start.at("message").at("id"), "msg_01abc");
  EXPECT_EQ(start.at("message").at("usage").at("input_tokens"), 20);
  std::string text;
  for (int i = 3; i < 6; ++i) {
    const json::value d = parse_json(events[i].data);
    EXPECT_EQ(d.at("delta").at("type"), "text_delta");
    text += std::string(d.at("delta").at("text").as_string());
  }
  EXPECT_EQ(text, generate_text(99, 3));
  const json::value delta = parse_json(events[7].data);
  EXPECT_EQ(delta.at("delta").at("stop_reason"), "end_turn");
  EXPECT_EQ(delta.at("usage").at("output_tokens"), 3);
}

TEST(AnthropicWire, ToolUseStreamsInputJsonDeltas) {
  ChatRequest req;
  req.api = Api::kAnthropic;
  req.model = "claude-x";
  const Generation gen = tool_generation(Api::kAnthropic);
  ASSERT_TRUE(gen.tool_call);
  EXPECT_TRUE(gen.tool_call->id.starts_with("toolu_"));
  auto renderer = make_anthropic_stream(req, gen, {"msg_01t", 0});
  const auto events = events_of(render_stream(*renderer, gen, 1));
  const json::value block = parse_json(events[1].data);
  EXPECT_EQ(block.at("content_block").at("type"), "tool_use");
  EXPECT_EQ(block.at("content_block").at("name"), "get_weather");
  std::string partial;
  for (int k = 0; k < gen.output_tokens; ++k) {
    const json::value d = parse_json(events[3 + k].data);
    EXPECT_EQ(d.at("delta").at("type"), "input_json_delta");
    partial += std::string(d.at("delta").at("partial_json").as_string());
  }
  EXPECT_EQ(partial, gen.tool_call->arguments);
  EXPECT_EQ(parse_json(events[events.size() - 2].data).at("delta").at("stop_reason"), "tool_use");
}

TEST(AnthropicWire, MessageBodyAndErrors) {
  ChatRequest req;
  req.api = Api::kAnthropic;
  req.model = "claude-x";
  Generation gen = text_generation(4);
  const json::value body = parse_json(render_anthropic_message(req, gen, {"msg_01", 0}, {9, 4}));
  EXPECT_EQ(body.at("type"), "message");
  EXPECT_EQ(body.at("content").at(0).at("type"), "text");
  EXPECT_EQ(body.at("stop_reason"), "max_tokens");
  EXPECT_EQ(body.at("usage").at("output_tokens"), 4);
  const Generation tool = tool_generation(Api::kAnthropic);
  const json::value tool_body = parse_json(render_anthropic_message(req, tool, {"msg_02", 0}, {9, 4}));
  EXPECT_EQ(tool_body.at("content").at(0).at("input").at("city"), "mock-city");
  EXPECT_EQ(tool_body.at("stop_reason"), "tool_use");
  const json::value err = parse_json(render_anthropic_status_error(529));
  EXPECT_EQ(err.at("type"), "error");
  EXPECT_EQ(err.at("error").at("type"), "overloaded_error");
  EXPECT_EQ(anthropic_error_type(429), "rate_limit_error");
  const json::value models = parse_json(render_anthropic_models({"claude-a"}));
  EXPECT_EQ(models.at("data").at(0).at("type"), "model");
  EXPECT_EQ(models.at("first_id"), "claude-a");
}

TEST(Wire, MalformedEventIsNotJson) {
  ChatRequest req = openai_request(false);
  const Generation gen = text_generation(2);
  for (auto renderer : {make_openai_stream(req, gen, {"chatcmpl-m", 1}).release(),
                        make_anthropic_stream(req, gen, {"msg_m", 1}).release()}) {
    std::unique_ptr<StreamRenderer> owned(renderer);
    std::string wire;
    owned->malformed(wire);
    const auto events = events_of(wire);
    ASSERT_EQ(events.size(), 1u);
    boost::system::error_code ec;
    json::parse(events[0].data, ec);
    EXPECT_TRUE(ec);
  }
}

TEST(ExampleArguments, FollowTheSchema) {
  Rng rng(1);
  const json::value args = parse_json(example_arguments(
      parse_json(R"({"type":"object","properties":{"unit":{"enum":["c","f"]},"n":{"type":"number"},
                  "ok":{"type":"boolean"},"tags":{"type":"array","items":{"type":"string"}},
                  "inner":{"type":"object","properties":{"x":{"type":"integer"}}}}})"), rng));
  EXPECT_TRUE(args.at("unit") == "c" || args.at("unit") == "f");
  EXPECT_EQ(args.at("n"), 42.5);
  EXPECT_EQ(args.at("ok"), true);
  EXPECT_EQ(args.at("tags").at(0), "mock-tags");
  EXPECT_EQ(args.at("inner").at("x"), 7);
  EXPECT_EQ(example_arguments(json::value(), rng), "{}");
}

}  // namespace
}  // namespace lab::mocks::llm
