#pragma once
// The stores in memory: one object implements AgentStore, MessageStore, TurnStatsStore and
// ToolCallStore over one mutex, as the PostgreSQL store implements them over one database (and
// as it must: a turn commit writes messages, tool calls and statistics atomically).
//
// Compact by design (issue 4: 100,000 agents in one process): an agent with no turn and no
// checkpoint is one AgentRecord and a map slot (about 400 bytes); its log is allocated at its
// first commit or checkpoint. Forks copy no message: a fork's history is read through its
// parent's log up to the fork checkpoint.
//
// Bounds (MemoryStoreLimits), each counted in MemoryStoreStats:
//   - max_agents: create/fork beyond it fail with kLimitExceeded;
//   - max_messages_per_agent: an agent's own log keeps its newest messages; older ones are
//     dropped, so its history (and its forks' view of it) starts later;
//   - max_turns_per_agent: the turn index (idempotency keys, per-turn statistics, tool calls)
//     keeps the newest turns; a task redelivered after more than this many later turns of the
//     same agent would not be recognised (per-agent turns are serialised, so this needs that many
//     turns within one lease timeout). Totals are kept whole;
//   - max_checkpoints_per_agent: the oldest checkpoints are dropped (forks made from them keep
//     working: a fork records its base itself);
//   - max_message_bytes: the content of all retained messages; a commit beyond it fails with
//     kLimitExceeded;
//   - max_fork_depth: a fork of a fork ... deeper than this fails with kLimitExceeded.

#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "runtime/api/agent_store.hpp"
#include "runtime/api/message_store.hpp"
#include "runtime/api/string_key.hpp"
#include "runtime/api/tool_call_store.hpp"
#include "runtime/api/turn_stats_store.hpp"

namespace lab::runtime {

struct MemoryStoreLimits {
  std::size_t max_agents = 1'000'000;
  std::size_t max_messages_per_agent = 1024;
  std::size_t max_turns_per_agent = 256;
  std::size_t max_checkpoints_per_agent = 32;
  std::size_t max_message_bytes = std::size_t{1} << 30;
  std::size_t max_fork_depth = 32;
};

struct MemoryStoreStats {
  std::size_t agents = 0;
  std::size_t agents_with_log = 0;
  std::size_t message_bytes = 0;        ///< content of retained messages
  std::uint64_t commits = 0;            ///< turns applied
  std::uint64_t duplicate_commits = 0;  ///< commits answered applied = false
  std::uint64_t stale_fence_rejections = 0;
  std::uint64_t limit_rejections = 0;
  std::uint64_t dropped_messages = 0;
  std::uint64_t dropped_turns = 0;
  std::uint64_t dropped_checkpoints = 0;
};

class MemoryStore final : public AgentStore,
                          public MessageStore,
                          public TurnStatsStore,
                          public ToolCallStore {
 public:
  explicit MemoryStore(MemoryStoreLimits limits = {});
  ~MemoryStore() override;
  MemoryStore(const MemoryStore&) = delete;
  MemoryStore& operator=(const MemoryStore&) = delete;

  // AgentStore
  Result<AgentRecord> create_agent(const NewAgent& agent) override;
  Result<AgentRecord> get_agent(std::string_view agent_id) override;
  Result<std::vector<AgentRecord>> list_agents(std::string_view user_id, std::size_t limit) override;
  Result<std::vector<std::string>> list_owned(AgentState state, std::string_view worker_id,
                                              std::size_t limit) override;
  Result<AgentRecord> transition(std::string_view agent_id, const Transition& t) override;
  Result<std::size_t> set_membership_paused(std::string_view user_id, bool paused) override;
  Result<bool> membership_paused(std::string_view user_id) override;
  Result<StateCounts> count_by_state() override;
  Result<CheckpointRecord> create_checkpoint(std::string_view agent_id, std::string snapshot,
                                             std::vector<std::string> tags) override;
  Result<CheckpointRecord> get_checkpoint(std::string_view checkpoint_id) override;
  Result<std::vector<CheckpointRecord>> list_checkpoints(std::string_view agent_id) override;
  Result<ForkResult> fork(const ForkRequest& request) override;

  // MessageStore
  Result<CommitResult> commit_turn(const TurnWrite& turn) override;
  Result<History> load_history(std::string_view agent_id, std::size_t max_messages) override;
  Result<bool> turn_committed(std::string_view agent_id, std::string_view task_id) override;

  // TurnStatsStore
  Result<StatsTotals> turn_totals(std::string_view agent_id) override;
  Result<StatsTotals> system_turn_totals() override;
  Result<std::vector<TurnStatsRecord>> recent_turns(std::string_view agent_id, std::size_t limit) override;
  /// Counts what the retention bounds kept; complete = false once any turn or message was dropped.
  Result<TaskAudit> audit_tasks(std::span<const std::string> task_ids) override;

  // ToolCallStore
  Result<std::vector<ToolCallRecord>> recent_tool_calls(std::string_view agent_id,
                                                        std::size_t limit) override;

  MemoryStoreStats stats() const;

 private:
  struct StoredTurn {
    std::string task_id;
    std::uint64_t first_seq = 0;
    std::uint64_t last_seq = 0;
    TurnStats stats;
    std::vector<ToolCallRecord> tool_calls;
  };
  struct AgentLog {
    std::deque<Message> messages;  // own messages, seq ascending (fork base excluded)
    std::deque<StoredTurn> turns;  // newest max_turns_per_agent
    std::deque<CheckpointRecord> checkpoints;
    StatsTotals totals;
  };
  struct AgentRow {
    AgentRecord record;
    std::unique_ptr<AgentLog> log;  // null until the first commit or checkpoint
  };

  // All *_locked members run with mu_ held.
  AgentRow* find_locked(std::string_view agent_id) const;
  AgentLog& log_of_locked(AgentRow& row);
  AgentRow& insert_locked(AgentRecord record);
  void set_state_locked(AgentRow& row, AgentState to);
  std::size_t fork_depth_locked(const AgentRow& row) const;
  CheckpointRecord checkpoint_locked(AgentRow& row, std::string snapshot, std::vector<std::string> tags);

  const MemoryStoreLimits limits_;
  mutable std::mutex mu_;
  // Keys view the row's record.id, so an id is stored once.
  std::unordered_map<std::string_view, std::unique_ptr<AgentRow>> agents_;
  StringMap<std::vector<AgentRow*>> by_user_;     // creation order
  StringMap<AgentRow*> checkpoints_;              // checkpoint id → its agent
  StringSet paused_users_;
  StateCounts counts_;
  StatsTotals system_totals_;
  std::uint64_t next_checkpoint_ = 1;
  MemoryStoreStats stats_;
};

}  // namespace lab::runtime
