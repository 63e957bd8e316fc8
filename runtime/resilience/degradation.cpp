#include "runtime/resilience/degradation.hpp"
#include "runtime/resilience/ordered_delivery.hpp"

#include <cstdio>
#include <cstdlib>
#include <deque>
#include <utility>

namespace lab::resilience {

std::string_view level_name(int level) {
  switch (level) {
    case 0: return "NORMAL";
    case 1: return "REDUCED_QUALITY";
    case 2: return "LIMITED_FEATURES";
    case 3: return "CORE_ONLY";
    case 4: return "MAINTENANCE";
    default: return "UNKNOWN";
  }
}

LevelDecision seed_level(const ComponentHealth& health, bool multiple_failures_core_only) {
  if (!health.checkpoint) return {4, "checkpoint unavailable: cannot persist"};
  if (!health.llm_primary && !health.llm_backup) {
    return {4, "no LLM available: primary and backup down"};
  }
  if (multiple_failures_core_only) {
    std::string down;
    int count = 0;
    const auto note = [&](bool available, std::string_view name) {
      if (available) return;
      down += count++ == 0 ? "" : ", ";
      down += name;
    };
    note(health.llm_primary, "llm_primary");
    note(health.memory, "memory");
    note(health.tools, "tools");
    if (count >= 2) return {3, "multiple component failures: " + down};
  }
  if (!health.llm_primary) return {1, "primary LLM unavailable: backup model"};
  if (!health.memory) return {2, "memory service unavailable: no long-term memory"};
  if (!health.tools) return {3, "tool service unavailable: core only"};
  return {0, "all components healthy"};
}

DegradationFeatures features_for(int level, const ComponentHealth& cause) {
  DegradationFeatures f;  // level 0: everything on, primary model
  switch (level) {
    case 0:
      break;
    case 1:  // ALL_CAPABILITIES, lower quality
      f.use_backup_model = true;
      break;
    case 2:  // CAPABILITIES - {MEMORY}
      f.history_retrieval_enabled = false;
      break;
    case 3:  // {BASIC_QA}
      f.use_backup_model = !cause.llm_primary;
      f.history_retrieval_enabled = false;
      f.tools_enabled = false;
      break;
    default:  // 4: {} — reject new requests; work in flight finishes on whatever LLM is left
      f.use_backup_model = !cause.llm_primary;
      f.history_retrieval_enabled = false;
      f.tools_enabled = false;
      f.accept_new_work = false;
      break;
  }
  return f;
}

bool breaker_available(CircuitState state) {
  return state == CircuitState::kClosed || state == CircuitState::kDisabled;
}

ComponentHealth health_from_breakers(const std::map<std::string, CircuitState, std::less<>>& states,
                                     bool checkpoint_available) {
  const auto available = [&](std::string_view name, bool if_absent) {
    auto it = states.find(name);
    return it == states.end() ? if_absent : breaker_available(it->second);
  };
  ComponentHealth health;
  health.llm_primary = available(kLlmPrimaryBreaker, true);
  health.llm_backup = available(kLlmBackupBreaker, false);
  health.memory = available(kMemoryBreaker, true);
  health.tools = available(kToolsBreaker, true);
  health.checkpoint = checkpoint_available;
  return health;
}

std::vector<std::string> DegradationConfig::validate() const {
  std::vector<std::string> problems;
  if (recovery_hold < Millis::zero()) {
    problems.push_back("recovery_hold must be >= 0 (0 = fall at once), got " +
                       std::to_string(recovery_hold.count()) + " ms");
  }
  return problems;
}

struct DegradationManager::Impl {
  Impl(Clock& time_source, const DegradationConfig& cfg)
      : clock(time_source), config(cfg), since(time_source.now()) {}

  // --- everything below runs with `mutex` held ---

  // Applies a held-back fall once it is due.
  void advance(TimePoint now) {
    if (!clear_since || target.level >= level) return;
    const TimePoint due = *clear_since + config.recovery_hold;
    if (now >= due) enter(target.level, "recovered: " + target.reason, health, due);
  }

  void enter(int to, std::string why, const ComponentHealth& why_health, TimePoint at) {
    const int from = level;
    const DegradationFeatures before = features;
    level = to;
    cause = why_health;
    features = features_for(level, cause);
    reason = std::move(why);
    clear_since.reset();
    if (from != to) since = at;
    if (from != to || features != before) {
      events.push(DegradationChange{from, to, reason, at, features});
    }
  }

  void apply(const ComponentHealth& fresh, TimePoint now) {
    advance(now);  // the previous health was in force until now
    health = fresh;
    target = seed_level(fresh, config.multiple_failures_core_only);
    if (target.level >= level) {
      enter(target.level, target.reason, fresh, now);
      return;
    }
    if (!clear_since) clear_since = now;
    advance(now);  // recovery_hold == 0 falls at once
  }

  Clock& clock;
  const DegradationConfig& config;

  std::mutex mutex;
  int level = 0;
  std::string reason = "all components healthy";
  TimePoint since;
  ComponentHealth health;  // latest
  ComponentHealth cause;   // the health that set the current level
  LevelDecision target{0, "all components healthy"};
  DegradationFeatures features;
  std::optional<TimePoint> clear_since;  // since when target.level < level

  OrderedDelivery<DegradationChange> events;  // changes not yet handed to listeners
};

DegradationManager::DegradationManager(Clock& clock, DegradationConfig config)
    : config_(std::move(config)) {
  const auto problems = config_.validate();
  if (!problems.empty()) {
    std::fprintf(stderr, "invalid degradation config:\n");
    for (const auto& problem : problems) std::fprintf(stderr, "  %s\n", problem.c_str());
    std::abort();
  }
  impl_ = std::make_unique<Impl>(clock, config_);
}

DegradationManager::~DegradationManager() = default;

int DegradationManager::update(const ComponentHealth& health) {
  int level;
  {
    std::lock_guard lock(impl_->mutex);
    impl_->apply(health, impl_->clock.now());
    level = impl_->level;
  }
  flush_events();
  return level;
}

int DegradationManager::level() {
  int level;
  {
    std::lock_guard lock(impl_->mutex);
    impl_->advance(impl_->clock.now());
    level = impl_->level;
  }
  flush_events();
  return level;
}

DegradationFeatures DegradationManager::features() {
  DegradationFeatures features;
  {
    std::lock_guard lock(impl_->mutex);
    impl_->advance(impl_->clock.now());
    features = impl_->features;
  }
  flush_events();
  return features;
}

DegradationManager::Snapshot DegradationManager::snapshot() {
  Snapshot s;
  {
    std::lock_guard lock(impl_->mutex);
    impl_->advance(impl_->clock.now());
    s.level = impl_->level;
    s.target_level = impl_->target.level;
    s.features = impl_->features;
    s.reason = impl_->reason;
    s.since = impl_->since;
    if (impl_->clear_since && impl_->target.level < impl_->level) {
      s.falls_at = *impl_->clear_since + config_.recovery_hold;
    }
    s.health = impl_->health;
  }
  flush_events();
  return s;
}

void DegradationManager::add_listener(DegradationListener listener) {
  std::lock_guard lock(impl_->mutex);
  impl_->events.add_listener(std::move(listener));
}

// Ordered, one deliverer at a time: see ordered_delivery.hpp.
void DegradationManager::flush_events() { impl_->events.deliver(impl_->mutex); }

}  // namespace lab::resilience
