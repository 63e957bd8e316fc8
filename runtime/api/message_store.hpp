#pragma once
// The append-only message log per agent, written one whole turn at a time. commit_turn is the
// single write path for a turn's effects (messages, tool calls, statistics), atomic and keyed by
// the task id, so a task redelivered after a worker crash cannot store its effects twice.
// TurnStatsStore and ToolCallStore read what it wrote; one backend implements all three.
//
// Implementations: MemoryStore (runtime/stores/), and for issue 5 PostgreSQL (one transaction:
// INSERT INTO turns (task_id PRIMARY KEY) ON CONFLICT DO NOTHING, then the message_log rows,
// tool_calls, turn_stats and agents.message_count, with the fence checked on the agent row).

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "runtime/api/result.hpp"
#include "runtime/api/turn_types.hpp"

namespace lab::runtime {

struct CommitResult {
  bool applied = false;        ///< false: this task id was committed before; nothing was written
  std::uint64_t first_seq = 0; ///< the turn's messages are first_seq .. last_seq (also on a replay)
  std::uint64_t last_seq = 0;
};

/// A slice of an agent's visible history.
struct History {
  std::vector<Message> messages;  ///< the newest ones asked for, oldest first
  std::uint64_t total = 0;        ///< the visible history's length (fork base + own messages)
};

/// All members are thread-safe.
class MessageStore {
 public:
  virtual ~MessageStore() = default;

  /// Stores the turn's effects exactly once. A task id already committed for the agent returns
  /// applied = false and writes nothing (checked before the fence, so a redelivered task's
  /// worker learns the turn is done). Errors: kNotFound (agent), kInvalidArgument (empty task id,
  /// fence 0), kStaleFence, kLimitExceeded (a store bound).
  virtual Result<CommitResult> commit_turn(const TurnWrite& turn) = 0;

  /// The newest `max_messages` messages of the agent's visible history: for a fork, the parent's
  /// history up to the fork checkpoint followed by the fork's own messages. kNotFound.
  virtual Result<History> load_history(std::string_view agent_id, std::size_t max_messages) = 0;

  /// Whether the task's turn was committed for the agent. kNotFound (agent).
  virtual Result<bool> turn_committed(std::string_view agent_id, std::string_view task_id) = 0;
};

}  // namespace lab::runtime
