#pragma once
// Turn statistics (seed 004's StatisticsStore: getTotalCost, getTotalTokens), as written by
// MessageStore::commit_turn.

#include <cstddef>
#include <cstdint>
#include <span>
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

/// What the store holds of one task, for the harness ledger's reconciliation against the store:
/// a task that ended `done` must have exactly one committed turn whose messages were written
/// once; a task that failed, none.
struct TaskEffects {
  std::string task_id;
  std::uint32_t turns = 0;              ///< committed turns with this task id (any agent)
  std::uint64_t messages = 0;           ///< message rows written by the task
  std::uint64_t expected_messages = 0;  ///< what its committed turns said they wrote
};

struct TaskAudit {
  std::vector<TaskEffects> tasks;  ///< one per asked id, in the order asked
  /// false when retention bounds dropped turns or messages, so a zero may mean "forgotten"
  /// rather than "never stored" (the in-memory store's per-agent limits; PostgreSQL keeps all).
  bool complete = true;
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
  /// What the store holds of each task (see TaskEffects). Ids the store never saw come back with
  /// zeros. At most kMaxAuditTasks ids per call (kInvalidArgument beyond).
  virtual Result<TaskAudit> audit_tasks(std::span<const std::string> task_ids) = 0;
  static constexpr std::size_t kMaxAuditTasks = 1'000'000;
};

}  // namespace lab::runtime
