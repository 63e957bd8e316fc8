#include "runtime/api/task_queue.hpp"

namespace lab::runtime {

std::string_view to_string(Priority p) noexcept {
  switch (p) {
    case Priority::kHigh: return "high";
    case Priority::kMedium: return "medium";
    case Priority::kNormal: return "normal";
  }
  return "unknown";
}

std::optional<Priority> parse_priority(std::string_view text) noexcept {
  for (const auto p : {Priority::kHigh, Priority::kMedium, Priority::kNormal}) {
    if (to_string(p) == text) return p;
  }
  return std::nullopt;
}

}  // namespace lab::runtime
