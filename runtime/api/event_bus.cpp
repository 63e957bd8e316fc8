#include "runtime/api/event_bus.hpp"

namespace lab::runtime {

std::string_view to_string(EventKind k) noexcept {
  switch (k) {
    case EventKind::kTextChunk: return "text_chunk";
    case EventKind::kToolStart: return "tool:start";
    case EventKind::kToolComplete: return "tool:complete";
    case EventKind::kDone: return "done";
    case EventKind::kError: return "error";
  }
  return "unknown";
}

std::optional<EventKind> parse_event_kind(std::string_view text) noexcept {
  for (const auto k : {EventKind::kTextChunk, EventKind::kToolStart, EventKind::kToolComplete,
                       EventKind::kDone, EventKind::kError}) {
    if (to_string(k) == text) return k;
  }
  return std::nullopt;
}

}  // namespace lab::runtime
