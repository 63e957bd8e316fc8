#include "runtime/api/turn_types.hpp"

namespace lab::runtime {

std::string_view to_string(Role r) noexcept {
  switch (r) {
    case Role::kSystem: return "system";
    case Role::kUser: return "user";
    case Role::kAssistant: return "assistant";
    case Role::kTool: return "tool";
  }
  return "unknown";
}

std::string_view to_string(ToolCallState s) noexcept {
  switch (s) {
    case ToolCallState::kCompleted: return "COMPLETED";
    case ToolCallState::kFailed: return "FAILED";
    case ToolCallState::kSealed: return "SEALED";
  }
  return "UNKNOWN";
}

}  // namespace lab::runtime
