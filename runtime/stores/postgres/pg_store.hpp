#pragma once
// The stores on PostgreSQL: one object implements AgentStore, MessageStore, TurnStatsStore and
// ToolCallStore over one schema (migrations/*.sql, applied at open), as the in-memory store does
// over one mutex. Many worker and gateway processes share it.
//
// Exactly-once turn effects. A turn's commit is one call of agentlab_commit_turn (migration 002):
// lock the agent row (FOR UPDATE, so commits of one agent serialise), look the task id up in
// `turns` (primary key (agent_id, task_id): the idempotency key), check the fencing token against
// agents.fence, then insert the messages, the turn row and its tool calls and advance
// agents.message_count/fence. Two workers delivering the same task concurrently: the second waits
// on the row lock, then finds the turn and answers applied = false. A commit cut off by a broken
// connection (outcome unknown) is run again: the idempotency key makes that safe, and answers
// applied = false if it had landed.
//
// Group commit (max_commit_batch > 1): turns committed concurrently by this process's threads go
// into one transaction — the first caller leads, the others wait — so one WAL flush serves many
// turns. Each caller returns only once the transaction holding its turn has committed
// (synchronous_commit on: flushed), so batching keeps the durability guarantee; a batch that
// fails as a whole is committed again turn by turn, each with its own answer.

// Copy-on-write forks: a fork row points at its parent and the fork checkpoint's history length;
// load_history walks the chain with one recursive query (no message is copied).
//
// Bounds: max_checkpoints_per_agent (older checkpoints are deleted; forks keep their base),
// max_fork_depth, and load_history's max_messages. Unlike the in-memory store nothing else is
// trimmed: the log, turns and tool calls are kept whole (PostgreSQL is the durable record), and
// there is no agent-count bound. Message content must be valid UTF-8 without NUL bytes
// (kInvalidArgument otherwise): PostgreSQL text cannot hold them.
//
// Durability: open() refuses a server whose synchronous_commit is "off" (an acknowledged commit
// could be lost in a crash); on, local, remote_write and remote_apply are accepted. Prepared
// statements on every pooled connection.
// Errors: kUnavailable when PostgreSQL cannot be reached (after the pool's retries),
// kBackendError for other database failures, plus each interface's own codes.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/api/agent_store.hpp"
#include "runtime/api/message_store.hpp"
#include "runtime/api/tool_call_store.hpp"
#include "runtime/api/turn_stats_store.hpp"
#include "runtime/postgres/pg_migrations.hpp"
#include "runtime/postgres/pg_pool.hpp"

namespace lab::runtime {

struct PgStoreConfig {
  pg::PgOptions db;                         ///< url, schema, pool size, timeouts
  std::size_t max_checkpoints_per_agent = 32;
  std::size_t max_fork_depth = 32;
  std::size_t max_commit_batch = 64;        ///< turns per group commit; 1: every turn on its own
};

struct PgStoreStats {
  std::uint64_t commits = 0;            ///< turns applied by this process
  std::uint64_t duplicate_commits = 0;  ///< commits answered applied = false
  std::uint64_t stale_fence_rejections = 0;
  std::uint64_t batches = 0;            ///< group commits of more than one turn
  std::uint64_t batch_fallbacks = 0;    ///< batches that failed whole and were committed turn by turn
  std::size_t waiting_commits = 0;      ///< turns waiting for the group commit in flight (a gauge)
  pg::PgPoolStats pool;                 ///< pool.retries: commits re-run after a broken connection
};

class PgStore final : public AgentStore, public MessageStore, public TurnStatsStore, public ToolCallStore {
 public:
  /// Applies the migrations (creating the schema), checks synchronous_commit, and returns a
  /// store with its pool. kInvalidArgument (bad schema name, synchronous_commit off),
  /// kUnavailable (cannot connect), kConflict (an applied migration changed), kBackendError.
  static Result<std::unique_ptr<PgStore>> open(PgStoreConfig config, const Clock& clock);

  /// The store's migrations, in version order (embedded from migrations/*.sql at build time).
  static std::span<const pg::Migration> migrations();

  ~PgStore() override;

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
  Result<TaskAudit> audit_tasks(std::span<const std::string> task_ids) override;

  // ToolCallStore
  Result<std::vector<ToolCallRecord>> recent_tool_calls(std::string_view agent_id, std::size_t limit) override;

  PgStoreStats stats() const;
  /// The server's synchronous_commit, as read at open().
  const std::string& synchronous_commit() const noexcept { return synchronous_commit_; }

  struct EncodedTurn;

 private:
  struct PendingCommit;
  PgStore(PgStoreConfig config, const Clock& clock, std::string synchronous_commit);
  static Result<EncodedTurn> encode(const TurnWrite& turn);
  Result<CommitResult> commit_one(const EncodedTurn& e);
  void commit_batch(std::vector<PendingCommit*>& batch);

  const PgStoreConfig config_;
  std::unique_ptr<pg::PgPool> pool_;
  const std::string synchronous_commit_;
  std::atomic<std::uint64_t> commits_{0};
  std::atomic<std::uint64_t> duplicate_commits_{0};
  std::atomic<std::uint64_t> stale_fence_{0};
  std::atomic<std::uint64_t> batches_{0};
  std::atomic<std::uint64_t> batch_fallbacks_{0};
  mutable std::mutex batch_mu_;
  std::condition_variable batch_cv_;
  std::deque<PendingCommit*> pending_;
  bool batch_leader_ = false;
};

}  // namespace lab::runtime
