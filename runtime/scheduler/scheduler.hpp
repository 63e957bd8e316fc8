#pragma once
// The worker-side agent scheduler of seed 000 (AgentScheduler): an LRU of resident agents
// bounded by max_active_agents, idle hibernation, resume on demand from the store, one turn at a
// time per agent in arrival order, membership pause and renewal, crash recovery.
//
// How a worker uses it (the lead's worker loop):
//
//   lease = queue.lease(...)                        // a task for agent A
//   adm = scheduler.submit(A, task)                 // kMembershipPaused: answer error, ack
//   if (!adm->run_now) { park the lease; continue; }   // A is busy: it waits its turn (extend!)
//   for (task_id = task; ;) {
//     turn = scheduler.begin_turn(A, task_id)       // lock + fence, resume if needed, PROCESSING
//       (on error: nack/dead-letter, next = scheduler.abandon(A, task_id), continue with next)
//     ... LLM, tools, events; messages.commit_turn({A, task_id, turn->fence, ...}) ...
//     next = scheduler.end_turn(std::move(*turn), {committed messages})   // ACTIVE, unlock
//     ack the lease; if (!next) break; task_id = *next (its parked lease)
//   }
//   every second: scheduler.tick()                  // idle agents hibernate
//
// A resident agent holds an AgentContext (the newest history_limit messages). Turns commit
// their effects to the store as they end, so hibernation has nothing to flush: it records
// HIBERNATED (compare-and-set on ACTIVE and this worker) and frees the context.
//
// The agent lock is held for the span of a turn. Its fencing token grows by one per acquire, so
// a token equal to the cached context's + 1 proves no other worker ran the agent in between and
// the cache is current; otherwise the context is reloaded from the store.
//
// Thread-safe. The scheduler's mutex is never held across a store or lock call.

#include <cstdint>
#include <deque>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock/clock.hpp"
#include "runtime/api/agent_store.hpp"
#include "runtime/api/lock_service.hpp"
#include "runtime/api/message_store.hpp"
#include "runtime/api/string_key.hpp"

namespace lab::runtime {

struct SchedulerConfig {
  std::string worker_id = "worker-1";      ///< lock owner, and agents.worker_id while it runs them
  std::size_t max_active_agents = 1000;    ///< resident agents before the LRU idle one hibernates
  Nanos idle_timeout = Seconds(300);       ///< an idle resident agent hibernates after this (tick)
  Nanos lock_ttl = Seconds(60);            ///< agent lock TTL per turn; renew() for longer turns
  std::size_t history_limit = 50;          ///< messages a resident context keeps
  std::size_t max_pending_per_agent = 64;  ///< tasks waiting behind a busy agent (incl. the head)
};

/// A resident agent's working memory.
struct AgentContext {
  std::string agent_id;
  std::string user_id;
  std::string template_id;
  std::vector<Message> history;     ///< the newest history_limit messages, oldest first
  std::uint64_t history_total = 0;  ///< the visible history's length in the store
};

/// The right to run one turn: the agent lock's fencing token and exclusive use of the context
/// until end_turn. Read the context; do not modify it (end_turn appends what was committed).
struct Turn {
  std::string agent_id;
  std::string task_id;
  std::uint64_t fence = 0;  ///< put it on every store write of this turn
  std::shared_ptr<AgentContext> context;
  bool resumed = false;     ///< the context was (re)loaded from the store for this turn
};

struct Admission {
  bool run_now = false;      ///< the task is at the head and the agent is idle: begin_turn it
  std::size_t position = 0;  ///< tasks ahead of it for this agent
};

struct TurnEnd {
  /// What commit_turn stored, with the seqs it assigned (empty when the turn failed).
  std::vector<Message> committed;
  /// false drops the cached context (next turn reloads): a stale-fence refusal, a commit error.
  bool context_valid = true;
};

enum class HibernateOutcome : std::uint8_t {
  kHibernated,   ///< it was idle: HIBERNATED in the store, context freed
  kDeferred,     ///< it is busy or has tasks waiting: it hibernates when its queue drains
  kNotResident,  ///< not loaded here; nothing to do
};

struct SchedulerCounts {
  std::size_t resident = 0;        ///< agents with a loaded context (/api/system active_agents)
  std::size_t busy = 0;            ///< agents in a turn
  std::size_t parked_tasks = 0;    ///< tasks waiting behind a busy agent
  std::uint64_t turns = 0;         ///< turns begun
  std::uint64_t resumes = 0;       ///< contexts loaded from the store (cold or stale cache)
  std::uint64_t hibernations = 0;  ///< by idle timeout, eviction, command or pause
  std::uint64_t evictions = 0;     ///< LRU hibernations to stay within max_active_agents
  std::uint64_t over_capacity = 0; ///< resumes that left more than max_active_agents resident (all busy)
  std::uint64_t lock_conflicts = 0;   ///< begin_turn refused with kLockHeld
  std::uint64_t paused_rejections = 0;  ///< submits/begins refused for a paused membership
};

class Scheduler {
 public:
  /// The clock, stores and lock service must outlive the scheduler.
  Scheduler(SchedulerConfig config, const Clock& clock, AgentStore& agents, MessageStore& messages,
            LockService& locks);
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  /// A task for the agent arrived (call in lease order). Appends it to the agent's FIFO; run_now
  /// when it is the head of an idle agent. kMembershipPaused (the user was paused through this
  /// scheduler), kLimitExceeded (max_pending_per_agent), kInvalidArgument (empty id).
  Result<Admission> submit(std::string_view agent_id, std::string_view task_id);

  /// Starts the head task's turn: takes the agent lock (kLockHeld: another worker runs the agent;
  /// nack with a delay), loads the context if it is not resident or is stale, and moves the agent
  /// to PROCESSING with the fence (kMembershipPaused, kStaleFence, kNotFound and store errors
  /// pass through). May hibernate the least recently used idle agent to stay within
  /// max_active_agents. kBusy: the agent is in a turn; kInvalidArgument: task_id is not the head.
  /// On an error the task stays the head: retry, or abandon() it.
  Result<Turn> begin_turn(std::string_view agent_id, std::string_view task_id);

  /// Extends the agent lock of a long turn by lock_ttl. kLockLost: another worker took over;
  /// stop the turn (its commit would be refused with kStaleFence anyway).
  Result<LockGrant> renew(const Turn& turn);

  /// Ends the turn: the agent goes ACTIVE (fenced; refused if it was paused meanwhile, which
  /// frees the context), the lock is released, the committed messages join the context's history
  /// and the task leaves the FIFO. Returns the agent's next task, which the caller should
  /// begin_turn now (the agent stays out of the LRU until its FIFO drains).
  std::optional<std::string> end_turn(Turn&& turn, TurnEnd end);

  /// Removes a task that will not run (its begin_turn failed, its lease was lost, shutdown).
  /// Returns the next task to begin if the removed one was the head of an idle agent.
  std::optional<std::string> abandon(std::string_view agent_id, std::string_view task_id);

  /// The hibernate command (POST /api/agents/{id}/hibernate).
  HibernateOutcome hibernate(std::string_view agent_id);

  /// Hibernates resident agents idle for idle_timeout or longer; returns how many. Call it
  /// periodically (every second is plenty).
  std::size_t tick();

  /// subscription.cancelled: pauses the user in the store, frees their idle resident agents,
  /// and returns the tasks that were waiting behind their busy agents (answer them with an
  /// error event and ack). A head task is never returned: it is running (its end_turn will find
  /// the agent paused) or about to begin (its begin_turn answers kMembershipPaused).
  Result<std::vector<std::string>> pause_user(std::string_view user_id);

  /// subscription.renewed: the user's paused agents go to HIBERNATED; returns how many.
  Result<std::size_t> renew_user(std::string_view user_id);

  /// Crash recovery, once at worker start: agents this worker_id left PROCESSING or ACTIVE (a
  /// previous incarnation died) go to HIBERNATED; their unacked tasks come back from the queue
  /// when the leases expire. Returns the recovered agent ids.
  Result<std::vector<std::string>> recover();

  SchedulerCounts counts() const;
  /// Resident idle agents, least recently used first (for tests and diagnostics).
  std::vector<std::string> idle_lru() const;
  bool is_resident(std::string_view agent_id) const;

 private:
  struct Slot;
  using Lru = std::list<Slot*>;
  struct Slot {
    std::string agent_id;
    std::string user_id;  // known once loaded
    std::shared_ptr<AgentContext> context;  // null: not resident
    std::uint64_t fence = 0;                // the token the context is current with
    std::deque<std::string> pending;        // arrival order; the front runs or runs next
    bool busy = false;
    bool hibernate_requested = false;
    bool paused = false;
    TimePoint last_used;
    Lru::iterator lru_pos;
    bool in_lru = false;
  };

  // All *_locked members run with mu_ held.
  void lru_remove_locked(Slot& s);
  void lru_push_locked(Slot& s);
  void set_context_locked(Slot& s, std::shared_ptr<AgentContext> ctx);
  // Takes an idle resident slot out of the scheduler; the caller hibernates the returned id
  // in the store once mu_ is released.
  std::string detach_locked(Slot& s);
  // After the head task left an idle slot: LRU, erase, or hibernate. Returns an id to hibernate.
  std::optional<std::string> settle_locked(Slot& s);
  void undo_begin(Slot& s);
  void hibernate_in_store(const std::vector<std::string>& agent_ids);

  const SchedulerConfig config_;
  const Clock& clock_;
  AgentStore& agents_;
  MessageStore& messages_;
  LockService& locks_;

  mutable std::mutex mu_;
  StringMap<std::unique_ptr<Slot>> slots_;
  Lru lru_;  // idle resident slots, least recently used first
  std::size_t resident_ = 0;
  SchedulerCounts counters_;
};

}  // namespace lab::runtime
