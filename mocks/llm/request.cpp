#include "mocks/llm/request.hpp"

#include <array>
#include <cstddef>

#include <boost/json/monotonic_resource.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "mocks/llm/rng.hpp"
#include "mocks/llm/tokens.hpp"

namespace lab::mocks::llm {

namespace json = boost::json;

std::string_view to_string(Api api) { return api == Api::kOpenAi ? "openai" : "anthropic"; }

namespace {

constexpr std::uint64_t kTokensPerMessage = 4;  // role and separators, as OpenAI counts them

RequestError invalid(std::string message, std::string param = {}) {
  return RequestError{400, std::move(message), std::move(param)};
}

// Parses into a monotonic arena: small requests never touch the heap for the DOM.
struct ParsedBody {
  std::array<unsigned char, 8192> arena;
  json::monotonic_resource resource{arena.data(), arena.size()};
  json::value value;
};

std::optional<RequestError> parse_body(std::string_view body, ParsedBody& parsed, bool anthropic) {
  boost::system::error_code ec;
  parsed.value = json::parse(body, ec, json::storage_ptr(&parsed.resource));
  if (ec) {
    if (anthropic) return invalid("There was an issue with your request body: invalid JSON (" + ec.message() + ")");
    return invalid(
        "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
        "using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was "
        "sent was not valid JSON.)");
  }
  if (!parsed.value.is_object()) {
    return invalid(anthropic ? "request body: Input should be a valid dictionary"
                             : "The request body must be a JSON object.");
  }
  return std::nullopt;
}

// Positive integer (as JSON integer, or a double with an integral value).
std::optional<int> as_positive_int(const json::value& v) {
  if (v.is_int64() && v.get_int64() >= 1 && v.get_int64() <= (1 << 30)) {
    return static_cast<int>(v.get_int64());
  }
  if (v.is_uint64() && v.get_uint64() >= 1 && v.get_uint64() <= (1u << 30)) {
    return static_cast<int>(v.get_uint64());
  }
  return std::nullopt;
}

std::string indexed(std::string_view base, std::size_t i, std::string_view field = {}) {
  std::string s(base);
  s += '[';
  s += std::to_string(i);
  s += ']';
  if (!field.empty()) {
    s += '.';
    s += field;
  }
  return s;
}

// Text of a content value: a string, or an array of parts whose "text" fields count.
// Returns false if the shape is wrong.
bool content_text(const json::value& content, std::uint64_t& hash, int& tokens) {
  if (content.is_string()) {
    const json::string& s = content.get_string();
    hash = fnv1a(std::string_view(s.data(), s.size()), hash);
    tokens += estimate_tokens(std::string_view(s.data(), s.size()));
    return true;
  }
  if (content.is_null()) return true;
  if (!content.is_array()) return false;
  for (const json::value& part : content.get_array()) {
    if (!part.is_object()) return false;
    const json::object& obj = part.get_object();
    if (const json::value* text = obj.if_contains("text"); text && text->is_string()) {
      const json::string& s = text->get_string();
      hash = fnv1a(std::string_view(s.data(), s.size()), hash);
      tokens += estimate_tokens(std::string_view(s.data(), s.size()));
    } else if (const json::value* inner = obj.if_contains("content")) {
      // Anthropic tool_result blocks nest their content.
      if (!content_text(*inner, hash, tokens)) return false;
    } else if (const json::value* input = obj.if_contains("input")) {
      // Anthropic tool_use blocks in the history: count the arguments.
      const std::string text = json::serialize(*input);
      hash = fnv1a(text, hash);
      tokens += estimate_tokens(text);
    } else {
      tokens += 85;  // an image or another non-text part: a flat cost, like a low-detail image
    }
  }
  return true;
}

std::optional<RequestError> parse_tools_openai(const json::value& tools, ChatRequest& out) {
  if (!tools.is_array()) return invalid("Invalid type for 'tools': expected an array.", "tools");
  std::size_t i = 0;
  for (const json::value& tool : tools.get_array()) {
    const json::object* obj = tool.if_object();
    const json::value* function = obj ? obj->if_contains("function") : nullptr;
    const json::value* name =
        function && function->is_object() ? function->get_object().if_contains("name") : nullptr;
    if (!name || !name->is_string() || name->get_string().empty()) {
      return invalid("Missing required parameter: 'tools[" + std::to_string(i) + "].function.name'.",
                     indexed("tools", i, "function.name"));
    }
    ToolSpec spec;
    spec.name = std::string(name->get_string());
    if (const json::value* params = function->get_object().if_contains("parameters")) {
      spec.schema = json::value(*params, json::storage_ptr());
    }
    out.input_tokens += estimate_tokens(json::serialize(*function));
    out.content_hash = fnv1a(spec.name, out.content_hash);
    out.tools.push_back(std::move(spec));
    ++i;
  }
  return std::nullopt;
}

bool has_tool(const ChatRequest& req, std::string_view name) {
  for (const ToolSpec& t : req.tools) {
    if (t.name == name) return true;
  }
  return false;
}

}  // namespace

std::optional<RequestError> parse_openai_request(std::string_view body, ChatRequest& out) {
  out = ChatRequest{};
  out.api = Api::kOpenAi;
  ParsedBody parsed;
  if (auto err = parse_body(body, parsed, false)) return err;
  const json::object& root = parsed.value.get_object();

  const json::value* model = root.if_contains("model");
  if (!model) return invalid("you must provide a model parameter", "model");
  if (!model->is_string() || model->get_string().empty()) {
    return invalid("Invalid type for 'model': expected a non-empty string.", "model");
  }
  out.model = std::string(model->get_string());
  out.content_hash = fnv1a(out.model);

  const json::value* messages = root.if_contains("messages");
  if (!messages) return invalid("Missing required parameter: 'messages'.", "messages");
  if (!messages->is_array()) return invalid("Invalid type for 'messages': expected an array.", "messages");
  if (messages->get_array().empty()) return invalid("[] is too short - 'messages'", "messages");
  int tokens = 3;  // every reply is primed with a few tokens
  std::string_view last_role;
  std::size_t i = 0;
  for (const json::value& message : messages->get_array()) {
    const json::object* obj = message.if_object();
    if (!obj) return invalid("Invalid type for 'messages[" + std::to_string(i) + "]': expected an object.", indexed("messages", i));
    const json::value* role = obj->if_contains("role");
    if (!role) {
      return invalid("Missing required parameter: 'messages[" + std::to_string(i) + "].role'.", indexed("messages", i, "role"));
    }
    const std::string_view r = role->is_string() ? std::string_view(role->get_string()) : "";
    if (r != "system" && r != "developer" && r != "user" && r != "assistant" && r != "tool" &&
        r != "function") {
      return invalid("Invalid value: '" + (role->is_string() ? std::string(r) : json::serialize(*role)) +
                         "'. Supported values are: 'system', 'assistant', 'user', 'function', "
                         "'tool', and 'developer'.",
                     indexed("messages", i, "role"));
    }
    last_role = r;
    out.content_hash = fnv1a(r, out.content_hash);
    tokens += kTokensPerMessage;
    const json::value* content = obj->if_contains("content");
    if (!content && r != "assistant") {
      return invalid("Missing required parameter: 'messages[" + std::to_string(i) + "].content'.", indexed("messages", i, "content"));
    }
    if (content && !content_text(*content, out.content_hash, tokens)) {
      return invalid("Invalid type for 'messages[" + std::to_string(i) + "].content': expected a string or an array of content parts.",
                     indexed("messages", i, "content"));
    }
    if (const json::value* calls = obj->if_contains("tool_calls"); calls && calls->is_array()) {
      const std::string text = json::serialize(*calls);
      out.content_hash = fnv1a(text, out.content_hash);
      tokens += estimate_tokens(text);
    }
    ++i;
  }
  out.input_tokens = tokens;
  out.after_tool_result = last_role == "tool" || last_role == "function";

  if (const json::value* v = root.if_contains("n"); v && !v->is_null()) {
    if (!v->is_int64() || v->get_int64() != 1) {
      return invalid("The mock LLM supports only n=1.", "n");
    }
  }
  for (const char* field : {"max_completion_tokens", "max_tokens"}) {
    const json::value* v = root.if_contains(field);
    if (!v || v->is_null()) continue;
    const std::optional<int> n = as_positive_int(*v);
    if (!n) {
      return invalid(std::string("Invalid '") + field + "': expected an integer >= 1.", field);
    }
    if (!out.max_tokens) out.max_tokens = n;
  }
  if (out.max_tokens) out.content_hash = mix64(out.content_hash ^ static_cast<std::uint64_t>(*out.max_tokens));
  if (const json::value* v = root.if_contains("temperature"); v && !v->is_null()) {
    if (!v->is_number() || v->to_number<double>() < 0.0 || v->to_number<double>() > 2.0) {
      return invalid("Invalid 'temperature': expected a number between 0 and 2.", "temperature");
    }
  }
  if (const json::value* v = root.if_contains("stream"); v && !v->is_null()) {
    if (!v->is_bool()) return invalid("Invalid type for 'stream': expected a boolean.", "stream");
    out.stream = v->get_bool();
  }
  if (const json::value* v = root.if_contains("stream_options"); v && !v->is_null()) {
    if (!out.stream) {
      return invalid("The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                     "stream_options");
    }
    if (!v->is_object()) return invalid("Invalid type for 'stream_options': expected an object.", "stream_options");
    const json::object& so = v->get_object();
    if (const json::value* u = so.if_contains("include_usage"); u && u->is_bool()) out.include_usage = u->get_bool();
    if (const json::value* u = so.if_contains("continuous_usage_stats"); u && u->is_bool()) {
      out.continuous_usage = u->get_bool();
    }
  }
  if (const json::value* v = root.if_contains("ignore_eos"); v && v->is_bool()) out.ignore_eos = v->get_bool();

  if (const json::value* tools = root.if_contains("tools"); tools && !tools->is_null()) {
    if (auto err = parse_tools_openai(*tools, out)) return err;
  }
  if (const json::value* choice = root.if_contains("tool_choice"); choice && !choice->is_null()) {
    if (choice->is_string()) {
      const std::string_view c = choice->get_string();
      if (c == "none") out.tool_mode = ToolMode::kNone;
      else if (c == "auto") out.tool_mode = ToolMode::kAuto;
      else if (c == "required") out.tool_mode = ToolMode::kRequired;
      else return invalid("Invalid value for 'tool_choice': expected 'none', 'auto', 'required' or an object.", "tool_choice");
    } else if (choice->is_object()) {
      const json::value* function = choice->get_object().if_contains("function");
      const json::value* name =
          function && function->is_object() ? function->get_object().if_contains("name") : nullptr;
      if (!name || !name->is_string()) {
        return invalid("Missing required parameter: 'tool_choice.function.name'.", "tool_choice.function.name");
      }
      out.tool_mode = ToolMode::kNamed;
      out.tool_name = std::string(name->get_string());
    } else {
      return invalid("Invalid type for 'tool_choice'.", "tool_choice");
    }
    if (out.tool_mode != ToolMode::kNone && out.tools.empty()) {
      return invalid("Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.", "tool_choice");
    }
    if (out.tool_mode == ToolMode::kNamed && !has_tool(out, out.tool_name)) {
      return invalid("Invalid value for 'tool_choice': no function named '" + out.tool_name + "' was specified in the 'tools' parameter.", "tool_choice");
    }
  }
  return std::nullopt;
}

std::optional<RequestError> parse_anthropic_request(std::string_view body, ChatRequest& out) {
  out = ChatRequest{};
  out.api = Api::kAnthropic;
  ParsedBody parsed;
  if (auto err = parse_body(body, parsed, true)) return err;
  const json::object& root = parsed.value.get_object();

  const json::value* model = root.if_contains("model");
  if (!model) return invalid("model: Field required", "model");
  if (!model->is_string() || model->get_string().empty()) return invalid("model: Input should be a valid string", "model");
  out.model = std::string(model->get_string());
  out.content_hash = fnv1a(out.model);

  const json::value* max_tokens = root.if_contains("max_tokens");
  if (!max_tokens) return invalid("max_tokens: Field required", "max_tokens");
  out.max_tokens = as_positive_int(*max_tokens);
  if (!out.max_tokens) return invalid("max_tokens: Input should be an integer greater than or equal to 1", "max_tokens");
  out.content_hash = mix64(out.content_hash ^ static_cast<std::uint64_t>(*out.max_tokens));

  int tokens = 3;
  if (const json::value* system = root.if_contains("system"); system && !system->is_null()) {
    if (!content_text(*system, out.content_hash, tokens)) {
      return invalid("system: Input should be a valid string or a list of text blocks", "system");
    }
  }
  const json::value* messages = root.if_contains("messages");
  if (!messages) return invalid("messages: Field required", "messages");
  if (!messages->is_array()) return invalid("messages: Input should be a valid list", "messages");
  if (messages->get_array().empty()) return invalid("messages: at least one message is required", "messages");
  std::size_t i = 0;
  for (const json::value& message : messages->get_array()) {
    const json::object* obj = message.if_object();
    if (!obj) return invalid("messages." + std::to_string(i) + ": Input should be a valid dictionary", indexed("messages", i));
    const json::value* role = obj->if_contains("role");
    const std::string_view r = role && role->is_string() ? std::string_view(role->get_string()) : "";
    if (r != "user" && r != "assistant") {
      return invalid("messages." + std::to_string(i) + ".role: Input should be 'user' or 'assistant'", indexed("messages", i, "role"));
    }
    const json::value* content = obj->if_contains("content");
    if (!content) return invalid("messages." + std::to_string(i) + ".content: Field required", indexed("messages", i, "content"));
    if (!content_text(*content, out.content_hash, tokens) || content->is_null()) {
      return invalid("messages." + std::to_string(i) + ".content: Input should be a valid string or a list of content blocks",
                     indexed("messages", i, "content"));
    }
    out.content_hash = fnv1a(r, out.content_hash);
    tokens += kTokensPerMessage;
    bool has_tool_result = false;
    if (content->is_array()) {
      for (const json::value& block : content->get_array()) {
        const json::value* type = block.get_object().if_contains("type");
        if (type && type->is_string() && type->get_string() == "tool_result") has_tool_result = true;
      }
    }
    out.after_tool_result = r == "user" && has_tool_result;
    ++i;
  }
  out.input_tokens = tokens;

  if (const json::value* v = root.if_contains("stream"); v && !v->is_null()) {
    if (!v->is_bool()) return invalid("stream: Input should be a valid boolean", "stream");
    out.stream = v->get_bool();
  }
  if (const json::value* v = root.if_contains("temperature"); v && !v->is_null()) {
    if (!v->is_number() || v->to_number<double>() < 0.0 || v->to_number<double>() > 1.0) {
      return invalid("temperature: Input should be less than or equal to 1", "temperature");
    }
  }
  if (const json::value* tools = root.if_contains("tools"); tools && !tools->is_null()) {
    if (!tools->is_array()) return invalid("tools: Input should be a valid list", "tools");
    for (const json::value& tool : tools->get_array()) {
      const json::object* obj = tool.if_object();
      const json::value* name = obj ? obj->if_contains("name") : nullptr;
      if (!name || !name->is_string() || name->get_string().empty()) {
        return invalid("tools." + std::to_string(out.tools.size()) + ".name: Field required", indexed("tools", out.tools.size(), "name"));
      }
      ToolSpec spec;
      spec.name = std::string(name->get_string());
      if (const json::value* schema = obj->if_contains("input_schema")) {
        spec.schema = json::value(*schema, json::storage_ptr());
      }
      out.input_tokens += estimate_tokens(json::serialize(tool));
      out.content_hash = fnv1a(spec.name, out.content_hash);
      out.tools.push_back(std::move(spec));
    }
  }
  if (const json::value* choice = root.if_contains("tool_choice"); choice && !choice->is_null()) {
    const json::value* type = choice->is_object() ? choice->get_object().if_contains("type") : nullptr;
    const std::string_view t = type && type->is_string() ? std::string_view(type->get_string()) : "";
    if (t == "auto") out.tool_mode = ToolMode::kAuto;
    else if (t == "any") out.tool_mode = ToolMode::kRequired;
    else if (t == "none") out.tool_mode = ToolMode::kNone;
    else if (t == "tool") {
      const json::value* name = choice->get_object().if_contains("name");
      if (!name || !name->is_string()) return invalid("tool_choice.tool.name: Field required", "tool_choice.name");
      out.tool_mode = ToolMode::kNamed;
      out.tool_name = std::string(name->get_string());
      if (!has_tool(out, out.tool_name)) {
        return invalid("tool_choice: tool '" + out.tool_name + "' is not in tools", "tool_choice");
      }
    } else {
      return invalid("tool_choice: Input tag '" + std::string(t) + "' found using 'type' does not match any of the expected tags: 'auto', 'any', 'tool', 'none'", "tool_choice");
    }
  }
  return std::nullopt;
}

}  // namespace lab::mocks::llm
