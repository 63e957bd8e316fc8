#pragma once
// The agent lifecycle of seed 000 as an explicit state machine. Every store (memory, PostgreSQL)
// enforces is_allowed_transition on each state change, so the rule lives in one place.
//
//   READY ──────────┬─▶ QUEUED ─────────┬─▶ PROCESSING ─▶ ACTIVE ─▶ HIBERNATED
//     (created)     │  (task enqueued)  │   (turn runs)   (loaded,   (persisted,
//                   │                   │                  idle)      not in memory)
//   any state ──────┴─▶ MEMBERSHIP_PAUSED ─(subscription.renewed)─▶ HIBERNATED
//
// Allowed (besides "to the current state", which is always an allowed no-op):
//   READY             → QUEUED PROCESSING ACTIVE MEMBERSHIP_PAUSED
//   QUEUED            → PROCESSING ACTIVE HIBERNATED MEMBERSHIP_PAUSED
//   PROCESSING        → ACTIVE HIBERNATED MEMBERSHIP_PAUSED
//   ACTIVE            → QUEUED PROCESSING HIBERNATED MEMBERSHIP_PAUSED
//   HIBERNATED        → QUEUED PROCESSING ACTIVE MEMBERSHIP_PAUSED
//   MEMBERSHIP_PAUSED → HIBERNATED
// Notes: PROCESSING → QUEUED is forbidden, so a gateway marking a busy agent QUEUED is refused
// (the busy agent keeps PROCESSING; its next task waits in the scheduler's per-agent FIFO).
// PROCESSING → HIBERNATED is crash recovery (the owner died mid-turn; its task is redelivered).
// QUEUED → ACTIVE/HIBERNATED is a queued task that ended before its turn began (dead letter).
// → PROCESSING from READY/HIBERNATED covers a worker that leased the task before the gateway
// marked the agent QUEUED. Nothing leaves MEMBERSHIP_PAUSED except renewal.

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace lab::runtime {

enum class AgentState : std::uint8_t {
  kReady,             ///< created, never run
  kQueued,            ///< a task for it is waiting in the queue
  kProcessing,        ///< a worker runs one of its turns
  kActive,            ///< loaded in a worker's scheduler, idle
  kHibernated,        ///< persisted and evicted from memory; resumes on demand
  kMembershipPaused,  ///< the owner's subscription was cancelled: no new work
};
inline constexpr std::size_t kAgentStateCount = 6;
inline constexpr std::array<AgentState, kAgentStateCount> kAllAgentStates = {
    AgentState::kReady,  AgentState::kQueued,     AgentState::kProcessing,
    AgentState::kActive, AgentState::kHibernated, AgentState::kMembershipPaused};

/// "READY", "QUEUED", "PROCESSING", "ACTIVE", "HIBERNATED", "MEMBERSHIP_PAUSED" (the API's and
/// the PostgreSQL column's spelling).
std::string_view to_string(AgentState s) noexcept;
/// The inverse of to_string; nullopt for anything else (case-sensitive).
std::optional<AgentState> parse_agent_state(std::string_view text) noexcept;
/// Whether the lifecycle allows from → to (see the table above). from == to is always allowed.
bool is_allowed_transition(AgentState from, AgentState to) noexcept;

/// Agents per state, indexed by static_cast<std::size_t>(AgentState).
struct StateCounts {
  std::array<std::uint64_t, kAgentStateCount> by_state{};
  std::uint64_t operator[](AgentState s) const { return by_state[static_cast<std::size_t>(s)]; }
  std::uint64_t total() const {
    std::uint64_t n = 0;
    for (auto c : by_state) n += c;
    return n;
  }
};

}  // namespace lab::runtime
