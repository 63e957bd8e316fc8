#include "runtime/worker/chat_protocol.hpp"

#include <array>

#include <boost/json/monotonic_resource.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include "common/text/json_util.hpp"

namespace lab::runtime {

namespace bj = boost::json;

namespace {

void append_string(std::string& out, std::string_view s) {
  out += '"';
  json::append_escaped(out, s);
  out += '"';
}

int as_int(const bj::value* v) {
  if (v == nullptr) return 0;
  if (v->is_int64()) return static_cast<int>(v->get_int64());
  if (v->is_uint64()) return static_cast<int>(v->get_uint64());
  return 0;
}

}  // namespace

std::string build_chat_body(const ChatRequestSpec& spec, std::string_view model) {
  std::string out;
  out.reserve(256 + spec.messages.size() * 128);
  out += "{\"model\":";
  append_string(out, model);
  out += ",\"stream\":true,\"stream_options\":{\"include_usage\":true},\"messages\":[";
  bool first = true;
  for (const ChatMessage& m : spec.messages) {
    if (!first) out += ',';
    first = false;
    out += "{\"role\":";
    append_string(out, m.role);
    out += ",\"content\":";
    if (m.content.empty() && !m.tool_calls.empty()) {
      out += "null";
    } else {
      append_string(out, m.content);
    }
    if (!m.tool_calls.empty()) {
      out += ",\"tool_calls\":[";
      for (std::size_t i = 0; i < m.tool_calls.size(); ++i) {
        const ToolCall& c = m.tool_calls[i];
        if (i > 0) out += ',';
        out += "{\"id\":";
        append_string(out, c.id);
        out += ",\"type\":\"function\",\"function\":{\"name\":";
        append_string(out, c.name);
        out += ",\"arguments\":";
        append_string(out, c.arguments);
        out += "}}";
      }
      out += ']';
    }
    if (!m.tool_call_id.empty()) {
      out += ",\"tool_call_id\":";
      append_string(out, m.tool_call_id);
    }
    out += '}';
  }
  out += ']';
  if (!spec.tools.empty()) {
    out += ",\"tools\":[";
    for (std::size_t i = 0; i < spec.tools.size(); ++i) {
      const ToolSpec& t = spec.tools[i];
      if (i > 0) out += ',';
      out += "{\"type\":\"function\",\"function\":{\"name\":";
      append_string(out, t.name);
      out += ",\"description\":";
      append_string(out, t.description);
      out += ",\"parameters\":";
      out += t.parameters_json;
      out += "}}";
    }
    out += "],\"tool_choice\":";
    out += spec.tool_choice_none ? "\"none\"" : "\"auto\"";
  }
  if (spec.max_tokens) {
    out += ",\"max_tokens\":";
    out += std::to_string(*spec.max_tokens);
  }
  out += '}';
  return out;
}

std::string build_probe_body(std::string_view model) {
  std::string out = "{\"model\":";
  append_string(out, model);
  out += ",\"max_tokens\":1,\"messages\":[{\"role\":\"user\",\"content\":\"ping\"}]}";
  return out;
}

ChunkAccumulator::Feed ChunkAccumulator::feed(std::string_view data, std::string& text_delta) {
  if (data == "[DONE]") {
    done_ = true;
    return Feed::kDone;
  }
  // Chunks are small: parse into a stack buffer first, the heap only for large ones.
  std::array<unsigned char, 4096> buffer;
  bj::monotonic_resource mr(buffer.data(), buffer.size());
  boost::system::error_code ec;
  const bj::value v = bj::parse(data, ec, &mr);
  if (ec || !v.is_object()) return Feed::kMalformed;
  const bj::object& o = v.get_object();
  if (const bj::value* m = o.if_contains("model"); m != nullptr && m->is_string() && model_.empty()) {
    model_ = std::string(m->get_string());
  }
  if (const bj::value* u = o.if_contains("usage"); u != nullptr && u->is_object()) {
    prompt_tokens_ = as_int(u->get_object().if_contains("prompt_tokens"));
    completion_tokens_ = as_int(u->get_object().if_contains("completion_tokens"));
  }
  const bj::value* choices = o.if_contains("choices");
  if (choices == nullptr || !choices->is_array()) return Feed::kMalformed;
  for (const bj::value& cv : choices->get_array()) {
    if (!cv.is_object()) return Feed::kMalformed;
    const bj::object& c = cv.get_object();
    if (const bj::value* d = c.if_contains("delta"); d != nullptr && d->is_object()) {
      const bj::object& delta = d->get_object();
      if (const bj::value* t = delta.if_contains("content"); t != nullptr && t->is_string() && !t->get_string().empty()) {
        text_delta.append(t->get_string().data(), t->get_string().size());
        ++text_deltas_;
      }
      if (const bj::value* calls = delta.if_contains("tool_calls"); calls != nullptr && calls->is_array()) {
        for (const bj::value& callv : calls->get_array()) {
          if (!callv.is_object()) return Feed::kMalformed;
          const bj::object& call = callv.get_object();
          const int index = as_int(call.if_contains("index"));
          if (index < 0 || index > 64) return Feed::kMalformed;
          if (tool_calls_.size() <= static_cast<std::size_t>(index)) tool_calls_.resize(static_cast<std::size_t>(index) + 1);
          ToolCall& tc = tool_calls_[static_cast<std::size_t>(index)];
          if (const bj::value* id = call.if_contains("id"); id != nullptr && id->is_string()) {
            tc.id = std::string(id->get_string());
          }
          if (const bj::value* fn = call.if_contains("function"); fn != nullptr && fn->is_object()) {
            const bj::object& f = fn->get_object();
            if (const bj::value* n = f.if_contains("name"); n != nullptr && n->is_string()) {
              tc.name = std::string(n->get_string());
            }
            if (const bj::value* a = f.if_contains("arguments"); a != nullptr && a->is_string()) {
              tc.arguments.append(a->get_string().data(), a->get_string().size());
            }
          }
        }
      }
    }
    if (const bj::value* f = c.if_contains("finish_reason"); f != nullptr && f->is_string()) {
      finish_reason_ = std::string(f->get_string());
    }
  }
  return Feed::kOk;
}

}  // namespace lab::runtime
