#include "mocks/llm/generation.hpp"
#include "common/text/json_util.hpp"

#include <boost/json/serialize.hpp>

namespace lab::mocks::llm {

namespace json = boost::json;

namespace {

constexpr int kMaxSchemaDepth = 6;
constexpr std::size_t kFragmentBytes = 4;  // about one token of JSON

json::value example_value(const json::value& schema, std::string_view name, Rng& rng, int depth) {
  const json::object* obj = schema.if_object();
  if (!obj || depth > kMaxSchemaDepth) return json::value("mock");
  if (const json::value* e = obj->if_contains("enum"); e && e->is_array() && !e->get_array().empty()) {
    const json::array& values = e->get_array();
    return values[rng.below(values.size())];
  }
  if (const json::value* c = obj->if_contains("const")) return *c;
  std::string_view type = "object";
  if (const json::value* t = obj->if_contains("type")) {
    if (t->is_string()) type = t->get_string();
    else if (t->is_array() && !t->get_array().empty() && t->get_array()[0].is_string()) {
      type = t->get_array()[0].get_string();
    }
  } else if (!obj->contains("properties")) {
    type = "string";
  }
  if (type == "string") return json::value("mock-" + std::string(name.empty() ? "value" : name));
  if (type == "integer") return json::value(7);
  if (type == "number") return json::value(42.5);
  if (type == "boolean") return json::value(true);
  if (type == "null") return json::value(nullptr);
  if (type == "array") {
    json::array array;
    const json::value* items = obj->if_contains("items");
    array.push_back(example_value(items ? *items : json::value(), name, rng, depth + 1));
    return array;
  }
  json::object result;
  if (const json::value* props = obj->if_contains("properties"); props && props->is_object()) {
    for (const auto& [key, sub] : props->get_object()) {
      result[key] = example_value(sub, key, rng, depth + 1);
    }
  }
  return result;
}

}  // namespace

void json_escape(std::string_view text, std::string& out) { lab::json::append_escaped(out, text); }

std::string example_arguments(const json::value& schema, Rng& rng) {
  json::value v = example_value(schema.is_null() ? json::value(json::object()) : schema, "", rng, 0);
  if (!v.is_object()) v = json::object();  // arguments are always an object
  return json::serialize(v);
}

Generation plan_generation(const ChatRequest& request, const OutputProfile& output,
                           const GenerationOptions& options, Rng& rng) {
  Generation gen;
  gen.text_seed = mix64(rng.next());
  const bool offer = !request.tools.empty() && request.tool_mode != ToolMode::kNone &&
                     !request.after_tool_result;
  bool call = false;
  if (offer) {
    call = request.tool_mode == ToolMode::kRequired || request.tool_mode == ToolMode::kNamed ||
           rng.chance(options.tool_call_probability);
  }
  if (!call) {
    const OutputLength length = output_length(output, rng, request.max_tokens, request.ignore_eos,
                                              options.pinned_tokens);
    gen.output_tokens = length.tokens;
    gen.finish = length.finish;
    return gen;
  }
  const ToolSpec* tool = nullptr;
  if (request.tool_mode == ToolMode::kNamed) {
    for (const ToolSpec& t : request.tools) {
      if (t.name == request.tool_name) tool = &t;
    }
  }
  if (!tool) tool = &request.tools[rng.below(request.tools.size())];
  ToolCallPlan plan;
  static constexpr char kAlphabet[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  plan.id = request.api == Api::kOpenAi ? "call_" : "toolu_01";
  for (int i = 0; i < 24; ++i) plan.id += kAlphabet[rng.below(sizeof(kAlphabet) - 1)];
  plan.name = tool->name;
  plan.arguments = example_arguments(tool->schema, rng);
  for (std::size_t at = 0; at < plan.arguments.size(); at += kFragmentBytes) {
    std::string escaped;
    json_escape(std::string_view(plan.arguments).substr(at, kFragmentBytes), escaped);
    plan.escaped_fragments.push_back(std::move(escaped));
  }
  gen.output_tokens = static_cast<int>(plan.escaped_fragments.size());
  gen.finish = FinishReason::kToolCalls;
  // A tool call is still cut by max_tokens, as a real model's would be.
  if (request.max_tokens && gen.output_tokens > *request.max_tokens) {
    plan.escaped_fragments.resize(static_cast<std::size_t>(*request.max_tokens));
    gen.output_tokens = *request.max_tokens;
    gen.finish = FinishReason::kLength;
  }
  gen.tool_call = std::move(plan);
  return gen;
}

}  // namespace lab::mocks::llm
