#pragma once
// What one agent turn leaves behind: its messages, tool calls and statistics (seed 000's
// message log and tool_calls, seed 004's turn statistics). A turn is written once, atomically,
// by MessageStore::commit_turn, keyed by its task id.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock/clock.hpp"

namespace lab::runtime {

enum class Role : std::uint8_t { kSystem, kUser, kAssistant, kTool };
/// "system", "user", "assistant", "tool".
std::string_view to_string(Role r) noexcept;

struct Message {
  std::uint64_t seq = 0;  ///< 1-based position in the agent's visible history; set by the store
  Role role = Role::kUser;
  std::string content;
};

/// seed 000's tool_calls.state; a committed turn only holds finished calls.
enum class ToolCallState : std::uint8_t { kCompleted, kFailed, kSealed /* cut short */ };
std::string_view to_string(ToolCallState s) noexcept;

struct ToolCallRecord {
  std::string call_id;
  std::string name;
  std::string input;   ///< JSON
  std::string result;  ///< JSON
  ToolCallState state = ToolCallState::kCompleted;
  Micros duration{0};
};

/// seed 004's TurnData: cost, tokens, duration.
struct TurnStats {
  std::uint32_t input_tokens = 0;
  std::uint32_t output_tokens = 0;
  double cost_usd = 0;
  Micros duration{0};        ///< turn start → done
  Micros ttft{0};            ///< turn start → first token from the LLM
  std::uint32_t llm_calls = 0;
  std::string model;         ///< the model that answered (a backup under degradation)
};

/// One turn's effects, as committed.
struct TurnWrite {
  std::string agent_id;
  std::string task_id;        ///< the idempotency key
  std::uint64_t fence = 0;    ///< the agent lock's fencing token; 0 is refused (turns are fenced)
  std::vector<Message> messages;  ///< in order (seq ignored: the store assigns it)
  std::vector<ToolCallRecord> tool_calls;
  TurnStats stats;
};

}  // namespace lab::runtime
