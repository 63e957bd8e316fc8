#include "runtime/api/agent_state.hpp"

namespace lab::runtime {

std::string_view to_string(AgentState s) noexcept {
  switch (s) {
    case AgentState::kReady: return "READY";
    case AgentState::kQueued: return "QUEUED";
    case AgentState::kProcessing: return "PROCESSING";
    case AgentState::kActive: return "ACTIVE";
    case AgentState::kHibernated: return "HIBERNATED";
    case AgentState::kMembershipPaused: return "MEMBERSHIP_PAUSED";
  }
  return "UNKNOWN";
}

std::optional<AgentState> parse_agent_state(std::string_view text) noexcept {
  for (const auto s : kAllAgentStates) {
    if (to_string(s) == text) return s;
  }
  return std::nullopt;
}

bool is_allowed_transition(AgentState from, AgentState to) noexcept {
  using S = AgentState;
  if (from == to) return true;
  if (to == S::kMembershipPaused) return true;  // a cancelled subscription pauses any agent
  switch (from) {
    case S::kReady:
      return to == S::kQueued || to == S::kProcessing || to == S::kActive;
    case S::kQueued:
      return to == S::kProcessing || to == S::kActive || to == S::kHibernated;
    case S::kProcessing:
      return to == S::kActive || to == S::kHibernated;
    case S::kActive:
      return to == S::kQueued || to == S::kProcessing || to == S::kHibernated;
    case S::kHibernated:
      return to == S::kQueued || to == S::kProcessing || to == S::kActive;
    case S::kMembershipPaused:
      return to == S::kHibernated;
  }
  return false;
}

}  // namespace lab::runtime
