#include "runtime/scheduler/scheduler.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <limits>

namespace lab::runtime {
namespace {

void require(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "lab::runtime::Scheduler invariant broken: %s\n", what);
    std::abort();
  }
}

}  // namespace

Scheduler::Scheduler(SchedulerConfig config, const Clock& clock, AgentStore& agents,
                     MessageStore& messages, LockService& locks)
    : config_(std::move(config)), clock_(clock), agents_(agents), messages_(messages), locks_(locks) {}

Scheduler::~Scheduler() = default;

// ---- slot bookkeeping (mu_ held) ----------------------------------------------------------

void Scheduler::lru_remove_locked(Slot& s) {
  if (!s.in_lru) return;
  lru_.erase(s.lru_pos);
  s.in_lru = false;
}

void Scheduler::lru_push_locked(Slot& s) {
  lru_remove_locked(s);
  s.last_used = clock_.now();
  s.lru_pos = lru_.insert(lru_.end(), &s);
  s.in_lru = true;
}

void Scheduler::set_context_locked(Slot& s, std::shared_ptr<AgentContext> ctx) {
  if (s.context && !ctx) --resident_;
  if (!s.context && ctx) ++resident_;
  s.context = std::move(ctx);
  if (!s.context) s.fence = 0;
}

std::string Scheduler::detach_locked(Slot& s) {
  require(!s.busy && s.pending.empty(), "detaching a slot with work");
  lru_remove_locked(s);
  set_context_locked(s, nullptr);
  std::string id = s.agent_id;
  slots_.erase(id);  // s is gone from here on
  ++counters_.hibernations;
  return id;
}

std::optional<std::string> Scheduler::settle_locked(Slot& s) {
  require(!s.busy && s.pending.empty(), "settling a slot with work");
  if (!s.context) {
    const std::string id = s.agent_id;
    slots_.erase(id);
    return std::nullopt;
  }
  if (s.paused) {  // the store already says MEMBERSHIP_PAUSED: just free the memory
    lru_remove_locked(s);
    set_context_locked(s, nullptr);
    const std::string id = s.agent_id;
    slots_.erase(id);
    ++counters_.hibernations;
    return std::nullopt;
  }
  if (s.hibernate_requested) return detach_locked(s);
  lru_push_locked(s);
  return std::nullopt;
}

void Scheduler::hibernate_in_store(const std::vector<std::string>& agent_ids) {
  for (const auto& id : agent_ids) {
    // Compare-and-set: only if it is still ours and idle. Another worker may have taken it, or
    // the membership paused it; then there is nothing to do.
    (void)agents_.transition(id, Transition{.to = AgentState::kHibernated,
                                            .expected_state = AgentState::kActive,
                                            .expected_owner = std::string_view(config_.worker_id)});
  }
}

// ---- the turn protocol --------------------------------------------------------------------

Result<Admission> Scheduler::submit(std::string_view agent_id, std::string_view task_id) {
  if (agent_id.empty() || task_id.empty()) return Errc::kInvalidArgument;
  std::lock_guard lk(mu_);
  auto it = slots_.find(agent_id);
  if (it == slots_.end()) {
    auto slot = std::make_unique<Slot>();
    slot->agent_id = agent_id;
    it = slots_.emplace(std::string(agent_id), std::move(slot)).first;
  }
  Slot& s = *it->second;
  if (s.paused) {
    ++counters_.paused_rejections;
    return Errc::kMembershipPaused;
  }
  if (s.pending.size() >= config_.max_pending_per_agent) return Errc::kLimitExceeded;
  s.pending.emplace_back(task_id);
  lru_remove_locked(s);  // an agent with work is never evicted
  const std::size_t position = s.pending.size() - 1;
  return Admission{position == 0 && !s.busy, position};
}

void Scheduler::undo_begin(Slot& s) {
  std::lock_guard lk(mu_);
  s.busy = false;
}

Result<Turn> Scheduler::begin_turn(std::string_view agent_id, std::string_view task_id) {
  Slot* slot = nullptr;
  std::shared_ptr<AgentContext> cached;
  std::uint64_t cached_fence = 0;
  {
    std::lock_guard lk(mu_);
    const auto it = slots_.find(agent_id);
    if (it == slots_.end()) return Errc::kNotFound;
    Slot& s = *it->second;
    if (s.busy) return Errc::kBusy;
    if (s.pending.empty() || s.pending.front() != task_id) return Errc::kInvalidArgument;
    if (s.paused) {
      ++counters_.paused_rejections;
      return Errc::kMembershipPaused;
    }
    s.busy = true;  // from here the slot cannot be detached or erased
    lru_remove_locked(s);
    slot = &s;
    cached = s.context;
    cached_fence = s.fence;
  }

  auto grant = locks_.try_acquire(agent_id, config_.worker_id, config_.lock_ttl);
  if (!grant.ok()) {
    {
      std::lock_guard lk(mu_);
      if (grant.error() == Errc::kLockHeld) ++counters_.lock_conflicts;
    }
    undo_begin(*slot);
    return grant.error();
  }
  const std::uint64_t fence = grant->fence;
  const auto fail = [&](std::error_code ec) -> Result<Turn> {
    (void)locks_.release(agent_id, config_.worker_id, fence);
    {
      std::lock_guard lk(mu_);
      if (ec == Errc::kMembershipPaused) ++counters_.paused_rejections;
    }
    undo_begin(*slot);
    return ec;
  };

  const bool reload = !cached || fence != cached_fence + 1;
  std::shared_ptr<AgentContext> ctx = cached;
  if (reload) {
    auto rec = agents_.get_agent(agent_id);
    if (!rec.ok()) return fail(rec.error());
    auto history = messages_.load_history(agent_id, config_.history_limit);
    if (!history.ok()) return fail(history.error());
    ctx = std::make_shared<AgentContext>();
    ctx->agent_id = rec->id;
    ctx->user_id = rec->user_id;
    ctx->template_id = rec->template_id;
    ctx->history = std::move(history->messages);
    ctx->history_total = history->total;
  }
  auto processing = agents_.transition(
      agent_id, Transition{.to = AgentState::kProcessing, .fence = fence, .owner = config_.worker_id});
  if (!processing.ok()) return fail(processing.error());

  std::vector<std::string> victims;
  {
    std::lock_guard lk(mu_);
    Slot& s = *slot;
    if (reload) {
      set_context_locked(s, ctx);
      s.user_id = ctx->user_id;
      ++counters_.resumes;
    }
    s.fence = fence;
    ++counters_.turns;
    while (resident_ > config_.max_active_agents && !lru_.empty()) {
      victims.push_back(detach_locked(*lru_.front()));
      ++counters_.evictions;
    }
    if (resident_ > config_.max_active_agents) ++counters_.over_capacity;
  }
  hibernate_in_store(victims);
  return Turn{std::string(agent_id), std::string(task_id), fence, std::move(ctx), reload};
}

Result<LockGrant> Scheduler::renew(const Turn& turn) {
  return locks_.renew(turn.agent_id, config_.worker_id, turn.fence, config_.lock_ttl);
}

std::optional<std::string> Scheduler::end_turn(Turn&& turn, TurnEnd end) {
  // Fenced, not compare-and-set: the fence already shuts out a stale worker, and a pause that
  // came during the turn must show as kMembershipPaused.
  auto active = agents_.transition(
      turn.agent_id, Transition{.to = AgentState::kActive, .fence = turn.fence, .owner = config_.worker_id});
  (void)locks_.release(turn.agent_id, config_.worker_id, turn.fence);

  std::optional<std::string> victim;
  std::optional<std::string> next;
  {
    std::lock_guard lk(mu_);
    const auto it = slots_.find(turn.agent_id);
    require(it != slots_.end(), "end_turn for an agent the scheduler does not hold");
    Slot& s = *it->second;
    require(s.busy && !s.pending.empty() && s.pending.front() == turn.task_id,
            "end_turn for a task that is not the running one");
    s.pending.pop_front();
    s.busy = false;
    if (active.error() == Errc::kMembershipPaused) s.paused = true;
    bool valid = end.context_valid && active.ok() && s.context && s.context == turn.context;
    if (valid && !end.committed.empty()) {
      AgentContext& ctx = *s.context;
      if (end.committed.front().seq != ctx.history_total + 1) {
        valid = false;  // someone else wrote in between: the cache is not the store's history
      } else {
        ctx.history_total = end.committed.back().seq;
        for (auto& m : end.committed) ctx.history.push_back(std::move(m));
        if (ctx.history.size() > config_.history_limit) {
          const auto excess = static_cast<std::ptrdiff_t>(ctx.history.size() - config_.history_limit);
          ctx.history.erase(ctx.history.begin(), ctx.history.begin() + excess);
        }
      }
    }
    if (!valid) set_context_locked(s, nullptr);
    s.last_used = clock_.now();
    if (!s.pending.empty()) {
      next = s.pending.front();
    } else {
      victim = settle_locked(s);
    }
  }
  if (victim) hibernate_in_store({*victim});
  return next;
}

std::optional<std::string> Scheduler::abandon(std::string_view agent_id, std::string_view task_id) {
  std::optional<std::string> victim;
  std::optional<std::string> next;
  {
    std::lock_guard lk(mu_);
    const auto it = slots_.find(agent_id);
    if (it == slots_.end()) return std::nullopt;
    Slot& s = *it->second;
    const auto pos = std::find(s.pending.begin(), s.pending.end(), task_id);
    if (pos == s.pending.end()) return std::nullopt;
    const bool head = pos == s.pending.begin();
    if (head && s.busy) return std::nullopt;  // a running turn ends with end_turn, not here
    s.pending.erase(pos);
    if (!s.pending.empty()) {
      if (head) next = s.pending.front();
    } else if (!s.busy) {
      victim = settle_locked(s);
    }
  }
  if (victim) hibernate_in_store({*victim});
  return next;
}

// ---- hibernation and membership -----------------------------------------------------------

HibernateOutcome Scheduler::hibernate(std::string_view agent_id) {
  std::string victim;
  {
    std::lock_guard lk(mu_);
    const auto it = slots_.find(agent_id);
    if (it == slots_.end()) return HibernateOutcome::kNotResident;
    Slot& s = *it->second;
    if (s.busy || !s.pending.empty()) {
      s.hibernate_requested = true;
      return HibernateOutcome::kDeferred;
    }
    if (!s.context) return HibernateOutcome::kNotResident;
    victim = detach_locked(s);
  }
  hibernate_in_store({victim});
  return HibernateOutcome::kHibernated;
}

std::size_t Scheduler::tick() {
  std::vector<std::string> victims;
  {
    std::lock_guard lk(mu_);
    const TimePoint now = clock_.now();
    while (!lru_.empty() && lru_.front()->last_used + config_.idle_timeout <= now) {
      victims.push_back(detach_locked(*lru_.front()));
    }
  }
  hibernate_in_store(victims);
  return victims.size();
}

Result<std::vector<std::string>> Scheduler::pause_user(std::string_view user_id) {
  auto changed = agents_.set_membership_paused(user_id, true);
  if (!changed.ok()) return changed.error();
  std::vector<std::string> rejected;
  std::lock_guard lk(mu_);
  for (auto it = slots_.begin(); it != slots_.end();) {
    Slot& s = *it->second;
    if (s.user_id != user_id || s.user_id.empty()) {
      ++it;
      continue;
    }
    s.paused = true;
    if (s.pending.size() > 1) {
      rejected.insert(rejected.end(), std::make_move_iterator(s.pending.begin() + 1),
                      std::make_move_iterator(s.pending.end()));
      s.pending.erase(s.pending.begin() + 1, s.pending.end());
    }
    if (!s.busy && s.pending.empty()) {  // idle resident: free it (the store says paused)
      lru_remove_locked(s);
      set_context_locked(s, nullptr);
      ++counters_.hibernations;
      it = slots_.erase(it);
      continue;
    }
    ++it;
  }
  return rejected;
}

Result<std::size_t> Scheduler::renew_user(std::string_view user_id) {
  auto changed = agents_.set_membership_paused(user_id, false);
  if (!changed.ok()) return changed.error();
  std::lock_guard lk(mu_);
  for (auto& [id, slot] : slots_) {
    if (slot->user_id == user_id) slot->paused = false;
  }
  return *changed;
}

Result<std::vector<std::string>> Scheduler::recover() {
  std::vector<std::string> recovered;
  for (const AgentState state : {AgentState::kProcessing, AgentState::kActive}) {
    auto owned = agents_.list_owned(state, config_.worker_id, std::numeric_limits<std::size_t>::max());
    if (!owned.ok()) return owned.error();
    for (auto& id : *owned) {
      auto r = agents_.transition(id, Transition{.to = AgentState::kHibernated,
                                                 .expected_state = state,
                                                 .expected_owner = std::string_view(config_.worker_id)});
      if (r.ok()) recovered.push_back(std::move(id));
    }
  }
  return recovered;
}

// ---- introspection ------------------------------------------------------------------------

SchedulerCounts Scheduler::counts() const {
  std::lock_guard lk(mu_);
  SchedulerCounts c = counters_;
  c.resident = resident_;
  for (const auto& [id, slot] : slots_) {
    if (slot->busy) ++c.busy;
    // The head runs or is about to begin; the rest are parked.
    if (!slot->pending.empty()) c.parked_tasks += slot->pending.size() - 1;
  }
  return c;
}

std::vector<std::string> Scheduler::idle_lru() const {
  std::lock_guard lk(mu_);
  std::vector<std::string> out;
  for (const Slot* s : lru_) out.push_back(s->agent_id);
  return out;
}

bool Scheduler::is_resident(std::string_view agent_id) const {
  std::lock_guard lk(mu_);
  const auto it = slots_.find(agent_id);
  return it != slots_.end() && it->second->context != nullptr;
}

}  // namespace lab::runtime
