#include "runtime/stores/memory_store.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

namespace lab::runtime {
namespace {

void add_turn(StatsTotals& t, const TurnStats& s, std::size_t tool_calls) {
  t.turns += 1;
  t.input_tokens += s.input_tokens;
  t.output_tokens += s.output_tokens;
  t.tool_calls += tool_calls;
  t.cost_usd += s.cost_usd;
  t.duration += s.duration;
}

bool owns_worker(AgentState s) { return s == AgentState::kProcessing || s == AgentState::kActive; }

// Invariant check: the store's internal links (rows, user index, checkpoint index) must agree.
void require(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "lab::runtime::MemoryStore invariant broken: %s\n", what);
    std::abort();
  }
}

}  // namespace

MemoryStore::MemoryStore(MemoryStoreLimits limits) : limits_(limits) {}
MemoryStore::~MemoryStore() = default;

MemoryStore::AgentRow* MemoryStore::find_locked(std::string_view agent_id) const {
  const auto it = agents_.find(agent_id);
  return it == agents_.end() ? nullptr : it->second.get();
}

MemoryStore::AgentLog& MemoryStore::log_of_locked(AgentRow& row) {
  if (!row.log) {
    row.log = std::make_unique<AgentLog>();
    ++stats_.agents_with_log;
  }
  return *row.log;
}

MemoryStore::AgentRow& MemoryStore::insert_locked(AgentRecord record) {
  auto row = std::make_unique<AgentRow>();
  row->record = std::move(record);
  AgentRow* raw = row.get();
  const std::string_view key = raw->record.id;
  const bool inserted = agents_.emplace(key, std::move(row)).second;
  require(inserted, "insert of an existing agent id");
  by_user_[raw->record.user_id].push_back(raw);
  counts_.by_state[static_cast<std::size_t>(raw->record.state)] += 1;
  return *raw;
}

void MemoryStore::set_state_locked(AgentRow& row, AgentState to) {
  counts_.by_state[static_cast<std::size_t>(row.record.state)] -= 1;
  counts_.by_state[static_cast<std::size_t>(to)] += 1;
  row.record.state = to;
}

std::size_t MemoryStore::fork_depth_locked(const AgentRow& row) const {
  std::size_t depth = 0;
  for (const AgentRow* r = &row; r->record.fork.is_fork();) {
    ++depth;
    r = find_locked(r->record.fork.parent_agent_id);
    require(r != nullptr, "fork parent missing");
  }
  return depth;
}

// ---- AgentStore ---------------------------------------------------------------------------

Result<AgentRecord> MemoryStore::create_agent(const NewAgent& agent) {
  if (agent.id.empty() || agent.user_id.empty()) return Errc::kInvalidArgument;
  std::lock_guard lk(mu_);
  if (find_locked(agent.id) != nullptr) return Errc::kAlreadyExists;
  if (agents_.size() >= limits_.max_agents) {
    ++stats_.limit_rejections;
    return Errc::kLimitExceeded;
  }
  AgentRecord rec;
  rec.id = agent.id;
  rec.user_id = agent.user_id;
  rec.name = agent.name;
  rec.template_id = agent.template_id;
  rec.state = paused_users_.contains(agent.user_id) ? AgentState::kMembershipPaused : AgentState::kReady;
  return insert_locked(std::move(rec)).record;
}

Result<AgentRecord> MemoryStore::get_agent(std::string_view agent_id) {
  std::lock_guard lk(mu_);
  const AgentRow* row = find_locked(agent_id);
  if (row == nullptr) return Errc::kNotFound;
  return row->record;
}

Result<std::vector<AgentRecord>> MemoryStore::list_agents(std::string_view user_id, std::size_t limit) {
  std::lock_guard lk(mu_);
  std::vector<AgentRecord> out;
  const auto it = by_user_.find(user_id);
  if (it == by_user_.end()) return out;
  const std::size_t n = std::min(limit, it->second.size());
  out.reserve(n);
  for (std::size_t i = 0; i < n; ++i) out.push_back(it->second[i]->record);
  return out;
}

Result<std::vector<std::string>> MemoryStore::list_owned(AgentState state, std::string_view worker_id,
                                                         std::size_t limit) {
  std::lock_guard lk(mu_);
  std::vector<std::string> out;
  for (const auto& [id, row] : agents_) {
    if (out.size() >= limit) break;
    if (row->record.state == state && row->record.worker_id == worker_id) out.emplace_back(id);
  }
  return out;
}

Result<AgentRecord> MemoryStore::transition(std::string_view agent_id, const Transition& t) {
  std::lock_guard lk(mu_);
  AgentRow* row = find_locked(agent_id);
  if (row == nullptr) return Errc::kNotFound;
  AgentRecord& rec = row->record;
  if (t.expected_state && *t.expected_state != rec.state) return Errc::kConflict;
  if (t.expected_owner && *t.expected_owner != rec.worker_id) return Errc::kConflict;
  if (t.fence != 0 && t.fence < rec.fence) {
    ++stats_.stale_fence_rejections;
    return Errc::kStaleFence;
  }
  if (rec.state == AgentState::kMembershipPaused && t.to != AgentState::kMembershipPaused &&
      (t.to != AgentState::kHibernated || paused_users_.contains(rec.user_id))) {
    return Errc::kMembershipPaused;
  }
  if (!is_allowed_transition(rec.state, t.to)) return Errc::kInvalidTransition;
  if (t.fence != 0) rec.fence = t.fence;
  set_state_locked(*row, t.to);
  if (owns_worker(t.to)) {
    rec.worker_id.assign(t.owner);
  } else {
    rec.worker_id.clear();
  }
  return rec;
}

Result<std::size_t> MemoryStore::set_membership_paused(std::string_view user_id, bool paused) {
  if (user_id.empty()) return Errc::kInvalidArgument;
  std::lock_guard lk(mu_);
  if (paused) {
    paused_users_.emplace(user_id);
  } else if (const auto it = paused_users_.find(user_id); it != paused_users_.end()) {
    paused_users_.erase(it);
  }
  std::size_t changed = 0;
  const auto it = by_user_.find(user_id);
  if (it == by_user_.end()) return changed;
  for (AgentRow* row : it->second) {
    const AgentState s = row->record.state;
    if (paused && s != AgentState::kMembershipPaused) {
      set_state_locked(*row, AgentState::kMembershipPaused);
      row->record.worker_id.clear();
      ++changed;
    } else if (!paused && s == AgentState::kMembershipPaused) {
      set_state_locked(*row, AgentState::kHibernated);
      ++changed;
    }
  }
  return changed;
}

Result<bool> MemoryStore::membership_paused(std::string_view user_id) {
  std::lock_guard lk(mu_);
  return paused_users_.contains(user_id);
}

Result<StateCounts> MemoryStore::count_by_state() {
  std::lock_guard lk(mu_);
  return counts_;
}

CheckpointRecord MemoryStore::checkpoint_locked(AgentRow& row, std::string snapshot,
                                                std::vector<std::string> tags) {
  AgentLog& log = log_of_locked(row);
  CheckpointRecord cp;
  cp.id = "ckpt-" + std::to_string(next_checkpoint_++);
  cp.agent_id = row.record.id;
  cp.parent_checkpoint_id =
      log.checkpoints.empty() ? row.record.fork.checkpoint_id : log.checkpoints.back().id;
  cp.message_count = row.record.message_count;
  cp.snapshot = std::move(snapshot);
  cp.tags = std::move(tags);
  log.checkpoints.push_back(cp);
  checkpoints_.emplace(cp.id, &row);
  while (log.checkpoints.size() > limits_.max_checkpoints_per_agent) {
    checkpoints_.erase(log.checkpoints.front().id);
    log.checkpoints.pop_front();
    ++stats_.dropped_checkpoints;
  }
  return cp;
}

Result<CheckpointRecord> MemoryStore::create_checkpoint(std::string_view agent_id, std::string snapshot,
                                                        std::vector<std::string> tags) {
  std::lock_guard lk(mu_);
  AgentRow* row = find_locked(agent_id);
  if (row == nullptr) return Errc::kNotFound;
  return checkpoint_locked(*row, std::move(snapshot), std::move(tags));
}

Result<CheckpointRecord> MemoryStore::get_checkpoint(std::string_view checkpoint_id) {
  std::lock_guard lk(mu_);
  const auto it = checkpoints_.find(checkpoint_id);
  if (it == checkpoints_.end()) return Errc::kNotFound;
  for (const auto& cp : it->second->log->checkpoints) {
    if (cp.id == checkpoint_id) return cp;
  }
  require(false, "checkpoint index names a dropped checkpoint");
  return Errc::kNotFound;
}

Result<std::vector<CheckpointRecord>> MemoryStore::list_checkpoints(std::string_view agent_id) {
  std::lock_guard lk(mu_);
  const AgentRow* row = find_locked(agent_id);
  if (row == nullptr) return Errc::kNotFound;
  if (!row->log) return std::vector<CheckpointRecord>{};
  return std::vector<CheckpointRecord>(row->log->checkpoints.begin(), row->log->checkpoints.end());
}

Result<ForkResult> MemoryStore::fork(const ForkRequest& request) {
  if (request.fork_ids.empty()) return Errc::kInvalidArgument;
  for (std::size_t i = 0; i < request.fork_ids.size(); ++i) {
    if (request.fork_ids[i].empty() || request.fork_ids[i] == request.parent_id) {
      return Errc::kInvalidArgument;
    }
    for (std::size_t j = 0; j < i; ++j) {
      if (request.fork_ids[i] == request.fork_ids[j]) return Errc::kInvalidArgument;
    }
  }
  std::lock_guard lk(mu_);
  AgentRow* parent = find_locked(request.parent_id);
  if (parent == nullptr) return Errc::kNotFound;
  const CheckpointRecord* existing = nullptr;
  if (!request.checkpoint_id.empty()) {
    const auto it = checkpoints_.find(request.checkpoint_id);
    if (it == checkpoints_.end() || it->second != parent) return Errc::kNotFound;
    for (const auto& cp : parent->log->checkpoints) {
      if (cp.id == request.checkpoint_id) existing = &cp;
    }
    require(existing != nullptr, "checkpoint index names a dropped checkpoint");
  }
  for (const auto& id : request.fork_ids) {
    if (find_locked(id) != nullptr) return Errc::kAlreadyExists;
  }
  if (fork_depth_locked(*parent) + 1 > limits_.max_fork_depth ||
      agents_.size() + request.fork_ids.size() > limits_.max_agents) {
    ++stats_.limit_rejections;
    return Errc::kLimitExceeded;
  }
  // Validated: from here on nothing fails.
  ForkResult out;
  out.checkpoint = existing != nullptr ? *existing : checkpoint_locked(*parent, "{}", {"fork"});
  const bool paused = paused_users_.contains(parent->record.user_id);
  for (const auto& id : request.fork_ids) {
    AgentRecord rec;
    rec.id = id;
    rec.user_id = parent->record.user_id;
    rec.name = parent->record.name;
    rec.template_id = parent->record.template_id;
    rec.state = paused ? AgentState::kMembershipPaused : AgentState::kReady;
    rec.message_count = out.checkpoint.message_count;
    rec.fork = ForkBase{parent->record.id, out.checkpoint.id, out.checkpoint.message_count};
    out.forks.push_back(insert_locked(std::move(rec)).record);
  }
  return out;
}

// ---- MessageStore -------------------------------------------------------------------------

Result<CommitResult> MemoryStore::commit_turn(const TurnWrite& turn) {
  if (turn.task_id.empty() || turn.fence == 0) return Errc::kInvalidArgument;
  std::lock_guard lk(mu_);
  AgentRow* row = find_locked(turn.agent_id);
  if (row == nullptr) return Errc::kNotFound;
  if (row->log) {
    for (const auto& t : row->log->turns) {
      if (t.task_id == turn.task_id) {
        ++stats_.duplicate_commits;
        return CommitResult{false, t.first_seq, t.last_seq};
      }
    }
  }
  AgentRecord& rec = row->record;
  if (turn.fence < rec.fence) {
    ++stats_.stale_fence_rejections;
    return Errc::kStaleFence;
  }
  std::size_t bytes = 0;
  for (const auto& m : turn.messages) bytes += m.content.size();
  if (stats_.message_bytes + bytes > limits_.max_message_bytes) {
    ++stats_.limit_rejections;
    return Errc::kLimitExceeded;
  }
  AgentLog& log = log_of_locked(*row);
  rec.fence = turn.fence;
  const std::uint64_t first = rec.message_count + 1;
  for (const auto& m : turn.messages) {
    log.messages.push_back(Message{++rec.message_count, m.role, m.content});
  }
  stats_.message_bytes += bytes;
  while (log.messages.size() > limits_.max_messages_per_agent) {
    stats_.message_bytes -= log.messages.front().content.size();
    log.messages.pop_front();
    ++stats_.dropped_messages;
  }
  log.turns.push_back(StoredTurn{turn.task_id, first, rec.message_count, turn.stats, turn.tool_calls});
  while (log.turns.size() > limits_.max_turns_per_agent) {
    log.turns.pop_front();
    ++stats_.dropped_turns;
  }
  add_turn(log.totals, turn.stats, turn.tool_calls.size());
  add_turn(system_totals_, turn.stats, turn.tool_calls.size());
  ++stats_.commits;
  return CommitResult{true, first, rec.message_count};
}

Result<History> MemoryStore::load_history(std::string_view agent_id, std::size_t max_messages) {
  std::lock_guard lk(mu_);
  const AgentRow* row = find_locked(agent_id);
  if (row == nullptr) return Errc::kNotFound;
  History h;
  h.total = row->record.message_count;
  // Walk from the newest message back: own log, then the fork base's log up to the fork point,
  // and so on. A log trimmed below what is wanted ends the walk (the older history is gone).
  std::uint64_t upto = row->record.message_count;  // highest seq still visible at this level
  std::vector<const Message*> newest_first;
  for (const AgentRow* cur = row; cur != nullptr && newest_first.size() < max_messages;) {
    const std::uint64_t base = cur->record.fork.message_count;
    if (cur->log) {
      const auto& msgs = cur->log->messages;
      for (auto it = msgs.rbegin(); it != msgs.rend() && newest_first.size() < max_messages; ++it) {
        if (it->seq <= upto) newest_first.push_back(&*it);
      }
      const std::uint64_t oldest_kept = msgs.empty() ? cur->record.message_count + 1 : msgs.front().seq;
      if (oldest_kept > base + 1 && upto > base) break;  // own messages were dropped: gap
    } else if (upto > base) {
      break;  // (no log means no own messages, so upto <= base; kept for safety)
    }
    if (!cur->record.fork.is_fork()) break;
    upto = std::min(upto, base);
    cur = find_locked(cur->record.fork.parent_agent_id);
  }
  h.messages.reserve(newest_first.size());
  for (auto it = newest_first.rbegin(); it != newest_first.rend(); ++it) h.messages.push_back(**it);
  return h;
}

Result<bool> MemoryStore::turn_committed(std::string_view agent_id, std::string_view task_id) {
  std::lock_guard lk(mu_);
  const AgentRow* row = find_locked(agent_id);
  if (row == nullptr) return Errc::kNotFound;
  if (!row->log) return false;
  for (const auto& t : row->log->turns) {
    if (t.task_id == task_id) return true;
  }
  return false;
}

// ---- TurnStatsStore / ToolCallStore -------------------------------------------------------

Result<StatsTotals> MemoryStore::turn_totals(std::string_view agent_id) {
  std::lock_guard lk(mu_);
  const AgentRow* row = find_locked(agent_id);
  if (row == nullptr) return Errc::kNotFound;
  return row->log ? row->log->totals : StatsTotals{};
}

Result<StatsTotals> MemoryStore::system_turn_totals() {
  std::lock_guard lk(mu_);
  return system_totals_;
}

Result<std::vector<TurnStatsRecord>> MemoryStore::recent_turns(std::string_view agent_id,
                                                               std::size_t limit) {
  std::lock_guard lk(mu_);
  const AgentRow* row = find_locked(agent_id);
  if (row == nullptr) return Errc::kNotFound;
  std::vector<TurnStatsRecord> out;
  if (!row->log) return out;
  const auto& turns = row->log->turns;
  const std::size_t n = std::min(limit, turns.size());
  for (std::size_t i = turns.size() - n; i < turns.size(); ++i) {
    out.push_back(TurnStatsRecord{turns[i].task_id, turns[i].stats});
  }
  return out;
}

Result<TaskAudit> MemoryStore::audit_tasks(std::span<const std::string> task_ids) {
  if (task_ids.size() > kMaxAuditTasks) return Errc::kInvalidArgument;
  TaskAudit audit;
  audit.tasks.resize(task_ids.size());
  std::unordered_map<std::string_view, std::size_t> wanted;
  wanted.reserve(task_ids.size());
  for (std::size_t i = 0; i < task_ids.size(); ++i) {
    audit.tasks[i].task_id = task_ids[i];
    wanted.emplace(task_ids[i], i);
  }
  std::lock_guard lk(mu_);
  audit.complete = stats_.dropped_turns == 0 && stats_.dropped_messages == 0;
  for (const auto& [id, row] : agents_) {
    if (!row->log) continue;
    const auto& messages = row->log->messages;
    for (const StoredTurn& t : row->log->turns) {
      const auto it = wanted.find(t.task_id);
      if (it == wanted.end()) continue;
      TaskEffects& e = audit.tasks[it->second];
      ++e.turns;
      e.expected_messages += t.last_seq - t.first_seq + 1;
      // The messages in the turn's range (own messages are in seq order).
      const auto first = std::lower_bound(messages.begin(), messages.end(), t.first_seq,
                                          [](const Message& m, std::uint64_t seq) { return m.seq < seq; });
      for (auto m = first; m != messages.end() && m->seq <= t.last_seq; ++m) ++e.messages;
    }
  }
  return audit;
}

Result<std::vector<ToolCallRecord>> MemoryStore::recent_tool_calls(std::string_view agent_id,
                                                                   std::size_t limit) {
  std::lock_guard lk(mu_);
  const AgentRow* row = find_locked(agent_id);
  if (row == nullptr) return Errc::kNotFound;
  std::vector<ToolCallRecord> newest_first;
  if (row->log) {
    for (auto t = row->log->turns.rbegin(); t != row->log->turns.rend(); ++t) {
      for (auto c = t->tool_calls.rbegin(); c != t->tool_calls.rend(); ++c) {
        if (newest_first.size() >= limit) break;
        newest_first.push_back(*c);
      }
    }
  }
  return std::vector<ToolCallRecord>(newest_first.rbegin(), newest_first.rend());
}

MemoryStoreStats MemoryStore::stats() const {
  std::lock_guard lk(mu_);
  MemoryStoreStats s = stats_;
  s.agents = agents_.size();
  return s;
}

}  // namespace lab::runtime
