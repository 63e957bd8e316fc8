#pragma once
// Tool call records (seed 000's tool_calls table), as written by MessageStore::commit_turn.

#include <cstddef>
#include <string_view>
#include <vector>

#include "runtime/api/result.hpp"
#include "runtime/api/turn_types.hpp"

namespace lab::runtime {

/// All members are thread-safe.
class ToolCallStore {
 public:
  virtual ~ToolCallStore() = default;
  /// The agent's newest `limit` tool calls, oldest first. kNotFound.
  virtual Result<std::vector<ToolCallRecord>> recent_tool_calls(std::string_view agent_id,
                                                                std::size_t limit) = 0;
};

}  // namespace lab::runtime
