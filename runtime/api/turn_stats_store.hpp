#pragma once
// Turn statistics (seed 004's StatisticsStore: getTotalCost, getTotalTokens), as written by
// MessageStore::commit_turn.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/api/result.hpp"
#include "runtime/api/turn_types.hpp"

namespace lab::runtime {

struct StatsTotals {
  std::uint64_t turns = 0;
  std::uint64_t input_tokens = 0;
  std::uint64_t output_tokens = 0;
  std::uint64_t tool_calls = 0;
  double cost_usd = 0;
  Micros duration{0};
};

struct TurnStatsRecord {
  std::string task_id;
  TurnStats stats;
};

/// All members are thread-safe.
class TurnStatsStore {
 public:
  virtual ~TurnStatsStore() = default;
  /// Sums over every turn the agent ever committed (not reduced by retention bounds). kNotFound.
  virtual Result<StatsTotals> turn_totals(std::string_view agent_id) = 0;
  /// Sums over all agents.
  virtual Result<StatsTotals> system_turn_totals() = 0;
  /// The agent's newest `limit` turns, oldest first. kNotFound.
  virtual Result<std::vector<TurnStatsRecord>> recent_turns(std::string_view agent_id, std::size_t limit) = 0;
};

}  // namespace lab::runtime
