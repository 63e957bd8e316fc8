#pragma once
// Agents, their lifecycle state, checkpoints and copy-on-write forks (seed 000's agents and
// checkpoints tables). The lifecycle rule is is_allowed_transition (agent_state.hpp); the store
// enforces it on every change.
//
// Fencing: each agent has the highest fencing token the store has seen (LockService grants
// them). A fenced write (fence > 0) with a token below it fails with kStaleFence, and raises it
// otherwise. Workers fence every write they make under the agent's lock (the transition to
// PROCESSING first, so a newer lock holder shuts out an older one at once).
//
// Implementations: MemoryStore (runtime/stores/), and for issue 5 PostgreSQL (agents.state,
// agents.worker_id, agents.fence; the fork base columns; checkpoints).

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/api/agent_state.hpp"
#include "runtime/api/result.hpp"

namespace lab::runtime {

/// Where a fork's history comes from: the parent's visible history up to a checkpoint.
struct ForkBase {
  std::string parent_agent_id;  ///< empty: not a fork
  std::string checkpoint_id;
  std::uint64_t message_count = 0;  ///< the parent's history length at the checkpoint
  bool is_fork() const noexcept { return !parent_agent_id.empty(); }
};

struct AgentRecord {
  std::string id;
  std::string user_id;      ///< the owner (JWT sub); another user's agent is a 404 at the API
  std::string name;
  std::string template_id;
  AgentState state = AgentState::kReady;
  std::string worker_id;    ///< owner worker while PROCESSING or ACTIVE, else empty (crash recovery)
  std::uint64_t fence = 0;  ///< highest fencing token seen on a write
  std::uint64_t message_count = 0;  ///< visible history length (fork base + own messages)
  ForkBase fork;
};

struct NewAgent {
  std::string id;  ///< chosen by the caller (the gateway's UUID); must be unique and non-empty
  std::string user_id;
  std::string name;
  std::string template_id;
};

/// A state change. The store checks, in order: the agent exists (kNotFound); `expected_state`
/// and `expected_owner` if given (kConflict); the fence (kStaleFence); an agent in
/// MEMBERSHIP_PAUSED only leaves it for HIBERNATED, and only while its user is not paused
/// (kMembershipPaused); the lifecycle rule (kInvalidTransition). On success the state is `to`,
/// and worker_id is `owner` when `to` is PROCESSING or ACTIVE, empty otherwise.
struct Transition {
  AgentState to = AgentState::kReady;
  std::optional<AgentState> expected_state;      ///< compare-and-set on the current state
  std::optional<std::string_view> expected_owner;  ///< compare-and-set on the current worker_id
  std::uint64_t fence = 0;                       ///< 0: an unfenced write (the gateway's)
  std::string_view owner;                        ///< the worker taking PROCESSING/ACTIVE
};

struct CheckpointRecord {
  std::string id;             ///< made by the store
  std::string agent_id;
  std::string parent_checkpoint_id;  ///< the agent's previous checkpoint, or the fork base's
  std::uint64_t message_count = 0;   ///< the agent's visible history length when it was taken
  std::string snapshot;       ///< opaque (JSON): whatever the worker needs besides the messages
  std::vector<std::string> tags;
};

struct ForkRequest {
  std::string parent_id;
  std::string checkpoint_id;  ///< empty: a new checkpoint of the parent at its current head
  std::vector<std::string> fork_ids;  ///< the new agents' ids (the API allows up to 10)
};

struct ForkResult {
  CheckpointRecord checkpoint;      ///< the checkpoint the forks start from
  std::vector<AgentRecord> forks;   ///< in fork_ids order
};

/// The agent store. All members are thread-safe.
class AgentStore {
 public:
  virtual ~AgentStore() = default;

  /// Creates an agent in READY (in MEMBERSHIP_PAUSED while its user's membership is paused).
  /// kAlreadyExists, kInvalidArgument (empty id or user), kLimitExceeded (store full).
  virtual Result<AgentRecord> create_agent(const NewAgent& agent) = 0;

  /// kNotFound when there is no such agent.
  virtual Result<AgentRecord> get_agent(std::string_view agent_id) = 0;

  /// A user's agents in creation order, at most `limit`.
  virtual Result<std::vector<AgentRecord>> list_agents(std::string_view user_id, std::size_t limit) = 0;

  /// Ids of agents in `state` owned by `worker_id` (crash recovery: a starting worker finds the
  /// agents it left PROCESSING), at most `limit`.
  virtual Result<std::vector<std::string>> list_owned(AgentState state, std::string_view worker_id,
                                                      std::size_t limit) = 0;

  /// Applies a state change (see Transition) and returns the updated record.
  virtual Result<AgentRecord> transition(std::string_view agent_id, const Transition& t) = 0;

  /// subscription.cancelled (paused = true): every agent of the user goes to MEMBERSHIP_PAUSED,
  /// and agents the user creates while paused start there. subscription.renewed (false): the
  /// user's MEMBERSHIP_PAUSED agents go to HIBERNATED (seed 000). Returns how many agents
  /// changed. Idempotent.
  virtual Result<std::size_t> set_membership_paused(std::string_view user_id, bool paused) = 0;

  /// Whether the user's membership is paused.
  virtual Result<bool> membership_paused(std::string_view user_id) = 0;

  /// Agents per state (for /api/system: hibernated_agents).
  virtual Result<StateCounts> count_by_state() = 0;

  /// Records a checkpoint at the agent's current head (its visible history length). Turn
  /// commits are atomic, so the head is always a turn boundary. kNotFound.
  virtual Result<CheckpointRecord> create_checkpoint(std::string_view agent_id, std::string snapshot,
                                                     std::vector<std::string> tags) = 0;

  /// kNotFound when there is no such checkpoint (or it was dropped by a retention bound).
  virtual Result<CheckpointRecord> get_checkpoint(std::string_view checkpoint_id) = 0;

  /// The agent's retained checkpoints, oldest first.
  virtual Result<std::vector<CheckpointRecord>> list_checkpoints(std::string_view agent_id) = 0;

  /// Copy-on-write forks: each new agent (same user, name and template as the parent, state
  /// READY) sees the parent's history up to the checkpoint and nothing the parent writes later;
  /// its own messages go to its own log. No message is copied. All or nothing: kNotFound
  /// (parent or checkpoint, or a checkpoint of another agent), kAlreadyExists (a fork id),
  /// kInvalidArgument (no or empty ids), kLimitExceeded (store full, or fork chain too deep).
  virtual Result<ForkResult> fork(const ForkRequest& request) = 0;
};

}  // namespace lab::runtime
