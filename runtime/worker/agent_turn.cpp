#include "runtime/worker/agent_turn.hpp"

#include <memory>

#include <boost/asio/post.hpp>

#include "common/text/json_util.hpp"

namespace lab::runtime {

namespace asio = boost::asio;

namespace {

void append_field(std::string& out, std::string_view name, std::string_view value) {
  out += ",\"";
  out += name;
  out += "\":\"";
  json::append_escaped(out, value);
  out += '"';
}

template <class N>
void append_number(std::string& out, std::string_view name, N value) {
  out += ",\"";
  out += name;
  out += "\":";
  out += std::to_string(value);
}

std::string event_head(std::string_view kind, std::string_view task_id) {
  std::string out = "{\"kind\":\"";
  out += kind;
  out += "\",\"taskId\":\"";
  json::append_escaped(out, task_id);
  out += '"';
  return out;
}

std::int64_t ms(Nanos d) { return std::chrono::duration_cast<Millis>(d).count(); }

/// Coalesces text deltas into text_chunk events (see the header). Shared with the posted flush,
/// which may run after the turn ended.
struct TextRelay : std::enable_shared_from_this<TextRelay> {
  TextRelay(asio::any_io_executor ex, EventBus& bus, std::string task_id)
      : executor(std::move(ex)), bus(bus), task_id(std::move(task_id)) {}

  void on_text(std::string_view delta) {
    pending.append(delta.data(), delta.size());
    if (!posted) {
      posted = true;
      asio::post(executor, [self = shared_from_this()] {
        self->posted = false;
        self->flush();
      });
    }
  }

  void flush() {
    if (pending.empty() || closed) {
      pending.clear();
      return;
    }
    append(EventKind::kTextChunk, text_chunk_data(task_id, pending));
    pending.clear();
  }

  void append(EventKind kind, std::string data) {
    if (closed) return;
    auto r = bus.append(task_id, kind, std::move(data));
    if (!r.ok() && r.error() == Errc::kStreamFinished) closed = true;  // a duplicate delivery's stream
  }

  asio::any_io_executor executor;
  EventBus& bus;
  std::string task_id;
  std::string pending;
  bool posted = false;
  bool closed = false;
};

}  // namespace

std::string text_chunk_data(std::string_view task_id, std::string_view text) {
  std::string out = event_head("text_chunk", task_id);
  append_field(out, "text", text);
  out += '}';
  return out;
}

std::string done_data(std::string_view task_id, std::string_view agent_id, const TurnStats& stats,
                      std::size_t tool_calls, int degradation_level, std::string_view provider,
                      bool replayed) {
  std::string out = event_head("done", task_id);
  append_field(out, "agentId", agent_id);
  append_field(out, "model", stats.model);
  append_field(out, "provider", provider);
  append_number(out, "inputTokens", stats.input_tokens);
  append_number(out, "outputTokens", stats.output_tokens);
  append_number(out, "toolCalls", tool_calls);
  append_number(out, "llmCalls", stats.llm_calls);
  append_number(out, "durationMs", ms(stats.duration));
  append_number(out, "degradationLevel", degradation_level);
  if (replayed) out += ",\"replayed\":true";
  out += '}';
  return out;
}

std::string error_data(std::string_view task_id, std::string_view code, std::string_view message) {
  std::string out = event_head("error", task_id);
  append_field(out, "code", code);
  append_field(out, "error", message);
  out += '}';
  return out;
}

AgentTurnRunner::AgentTurnRunner(asio::any_io_executor executor, TurnConfig config, LlmClient& llm,
                                 SimulatedTool& tool, EventBus& bus, RuntimeMetrics& metrics,
                                 const Clock& clock)
    : executor_(std::move(executor)),
      config_(std::move(config)),
      llm_(llm),
      tool_(tool),
      bus_(bus),
      metrics_(metrics),
      clock_(clock) {}

asio::awaitable<TurnOutput> AgentTurnRunner::run(const TurnInput& in) {
  TurnOutput out;
  const TimePoint started = clock_.now();
  auto relay = std::make_shared<TextRelay>(executor_, bus_, in.task_id);

  ChatRequestSpec spec;
  spec.max_tokens = config_.max_output_tokens;
  spec.messages.push_back({"system", config_.system_prompt, {}, {}});
  if (in.features.history_retrieval_enabled && in.context != nullptr) {
    const auto& history = in.context->history;
    const std::size_t n = std::min(history.size(), config_.history_messages);
    for (std::size_t i = history.size() - n; i < history.size(); ++i) {
      const Message& m = history[i];
      if (m.role != Role::kUser && m.role != Role::kAssistant) continue;
      spec.messages.push_back({std::string(to_string(m.role)), m.content, {}, {}});
    }
  }
  spec.messages.push_back({"user", in.user_message, {}, {}});
  if (in.features.tools_enabled) spec.tools.push_back(SimulatedTool::spec());

  const auto on_text = [relay](std::string_view delta) { relay->on_text(delta); };
  std::optional<TimePoint> first_token;
  std::string answer;
  for (int step = 0;; ++step) {
    spec.tool_choice_none = !spec.tools.empty() && step >= config_.max_tool_steps;
    LlmResult r = co_await llm_.complete(spec, in.features.use_backup_model, on_text);
    ++out.stats.llm_calls;
    out.stats.input_tokens += static_cast<std::uint32_t>(r.input_tokens);
    out.stats.output_tokens += static_cast<std::uint32_t>(r.output_tokens);
    if (r.first_token_at && !first_token) first_token = r.first_token_at;
    if (!r.ok) {
      relay->flush();
      out.error = r.error;
      out.error_code = r.error_class == resilience::ErrorClass::kCircuitOpen ? "llm_unavailable" : "llm_failed";
      co_return out;
    }
    out.stats.model = r.model;
    out.provider = r.provider;
    answer += r.text;
    if (r.tool_calls.empty() || spec.tools.empty() || spec.tool_choice_none) break;

    relay->flush();  // text before the tool call goes out before tool:start
    ChatMessage call_message{"assistant", r.text, r.tool_calls, {}};
    spec.messages.push_back(std::move(call_message));
    for (const ToolCall& call : r.tool_calls) {
      std::string start = event_head("tool:start", in.task_id);
      append_field(start, "callId", call.id);
      append_field(start, "name", call.name);
      append_field(start, "input", call.arguments);
      start += '}';
      relay->append(EventKind::kToolStart, std::move(start));

      const ToolOutcome outcome = co_await tool_.call(call);
      std::string complete = event_head("tool:complete", in.task_id);
      append_field(complete, "callId", call.id);
      append_field(complete, "name", call.name);
      complete += outcome.ok ? ",\"ok\":true" : ",\"ok\":false";
      append_number(complete, "attempts", outcome.attempts);
      append_number(complete, "durationMs", ms(outcome.duration));
      append_field(complete, "result", outcome.result);
      complete += '}';
      relay->append(EventKind::kToolComplete, std::move(complete));

      out.tool_calls.push_back(ToolCallRecord{call.id, call.name, call.arguments, outcome.result,
                                              outcome.ok ? ToolCallState::kCompleted : ToolCallState::kFailed,
                                              std::chrono::duration_cast<Micros>(outcome.duration)});
      spec.messages.push_back({"tool", outcome.result, {}, call.id});
    }
  }
  relay->flush();

  const TimePoint ended = clock_.now();
  out.ok = true;
  out.messages.push_back(Message{0, Role::kUser, in.user_message});
  out.messages.push_back(Message{0, Role::kAssistant, std::move(answer)});
  out.stats.duration = std::chrono::duration_cast<Micros>(ended - started);
  out.stats.ttft = std::chrono::duration_cast<Micros>((first_token ? *first_token : ended) - started);
  out.stats.cost_usd = out.stats.input_tokens * config_.usd_per_input_mtok / 1e6 +
                       out.stats.output_tokens * config_.usd_per_output_mtok / 1e6;
  metrics_.observe_turn(ended - started, (first_token ? *first_token : ended) - started);
  co_return out;
}

}  // namespace lab::runtime
