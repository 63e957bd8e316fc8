#pragma once
// Graceful degradation, levels 0–4, after seed 002 ("Graceful Degradation"):
//
//   0 NORMAL            all features, full quality
//   1 REDUCED_QUALITY   primary LLM unavailable → use the smaller/backup model
//   2 LIMITED_FEATURES  memory service unavailable → no long-term memory (history) retrieval
//   3 CORE_ONLY         multiple component failures (or tools down) → simple Q&A, no tools
//   4 MAINTENANCE       critical failure (checkpoint down, or no LLM at all) → reject new work
//
// The level is computed from the seed's health dict {llm_primary, llm_backup, memory, tools,
// checkpoint} by its decision chain:
//
//   IF NOT checkpoint                       → 4   (critical: can't persist)
//   ELIF NOT llm_primary AND NOT llm_backup → 4   (no LLM available)
//   [ELIF two or more of llm_primary, memory, tools down → 3]   (see below)
//   ELIF NOT llm_primary                    → 1   (backup LLM)
//   ELIF NOT memory                         → 2   (no memory)
//   ELIF NOT tools                          → 3   (core only)
//   ELSE                                    → 0
//
// The bracketed rule is the seed's prose for level 3 ("Trigger: Multiple component failures");
// its pseudo-code alone would keep memory on at level 1 with memory down, and tools on at level
// 2 with tools down. DegradationConfig::multiple_failures_core_only = false gives the bare chain.
//
// The seed sets the level immediately in both directions. Added hysteresis: a rise is applied at
// once; a fall happens only after the computed level has stayed below the current one for
// `recovery_hold`, and then goes straight to the computed level (stepping through intermediate
// levels would switch features, such as the backup model, that no failure calls for).

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock/clock.hpp"
#include "runtime/resilience/circuit_breaker.hpp"

namespace lab::resilience {

inline constexpr int kMaxDegradationLevel = 4;

/// "NORMAL", "REDUCED_QUALITY", "LIMITED_FEATURES", "CORE_ONLY", "MAINTENANCE".
std::string_view level_name(int level);

/// The seed's health dict: true = available.
struct ComponentHealth {
  bool llm_primary = true;
  bool llm_backup = true;
  bool memory = true;
  bool tools = true;
  bool checkpoint = true;
  bool operator==(const ComponentHealth&) const = default;
};

/// What the runtime does at a level (seed get_capabilities + issue 4).
struct DegradationFeatures {
  /// Send LLM calls straight to the backup provider (level 1; level 3/4 when the primary is down).
  bool use_backup_model = false;
  /// Long-term memory / history retrieval for the prompt (off from level 2).
  bool history_retrieval_enabled = true;
  /// Tool calls (off from level 3: simple Q&A only).
  bool tools_enabled = true;
  /// New chat tasks accepted; false at level 4 → 503 with Retry-After.
  bool accept_new_work = true;
  bool operator==(const DegradationFeatures&) const = default;
};

/// The seed's level for `health`, and the rule that chose it.
struct LevelDecision {
  int level = 0;
  std::string reason;
};
LevelDecision seed_level(const ComponentHealth& health, bool multiple_failures_core_only = true);

/// Features at `level`, given the health that put the runtime there (only the LLM choice at
/// levels 3 and 4 depends on it).
DegradationFeatures features_for(int level, const ComponentHealth& cause);

/// Breaker names health_from_breakers() reads.
inline constexpr std::string_view kLlmPrimaryBreaker = "llm_primary";
inline constexpr std::string_view kLlmBackupBreaker = "llm_backup";
inline constexpr std::string_view kMemoryBreaker = "memory";
inline constexpr std::string_view kToolsBreaker = "tools";

/// A component behind a breaker is available when its breaker is CLOSED or DISABLED; OPEN,
/// FORCED_OPEN and HALF_OPEN (not yet proven healthy) count as down.
bool breaker_available(CircuitState state);

/// The health dict from a registry snapshot. Absent breakers count as available, except
/// llm_backup: no backup breaker means no backup provider. Checkpoint writes have no breaker
/// (seed: "N/A (critical)"), so the caller says whether they currently succeed.
ComponentHealth health_from_breakers(const std::map<std::string, CircuitState, std::less<>>& states,
                                     bool checkpoint_available);

struct DegradationConfig {
  /// How long the computed level must stay below the current one before the level falls.
  /// Not in the seed (0 = the seed's immediate set_level); 30 s chosen.
  Millis recovery_hold{30'000};
  /// Apply the seed's "multiple component failures → level 3" rule (see the file comment).
  bool multiple_failures_core_only = true;

  std::vector<std::string> validate() const;
};

/// A level or feature change, as handed to listeners (from == to when only the features
/// changed, e.g. level 3 switching to the backup model as the primary LLM fails too).
struct DegradationChange {
  int from = 0;
  int to = 0;
  std::string reason;
  TimePoint at;
  DegradationFeatures features;
};

using DegradationListener = std::function<void(const DegradationChange&)>;

/// Thread-safe (one mutex). A pending fall is applied by whichever call observes the manager
/// first at or after it becomes due, stamped with the due instant, so reading level() is
/// enough; update() with fresh health whenever a breaker transitions or a health probe runs.
/// Listeners run outside the mutex, one at a time, in change order (as CircuitBreaker's).
class DegradationManager {
 public:
  struct Snapshot {
    int level = 0;
    /// The seed's level for the latest health (below `level` while a fall is held back).
    int target_level = 0;
    DegradationFeatures features;
    std::string reason;
    TimePoint since;  // when `level` was entered
    /// When the held-back fall will happen, if one is pending.
    std::optional<TimePoint> falls_at;
    ComponentHealth health;  // the latest health
  };

  /// Aborts with the list of problems if config.validate() is not empty.
  explicit DegradationManager(Clock& clock, DegradationConfig config = {});
  DegradationManager(const DegradationManager&) = delete;
  DegradationManager& operator=(const DegradationManager&) = delete;
  ~DegradationManager();

  /// Takes the current health; returns the level in force afterwards.
  int update(const ComponentHealth& health);

  int level();
  DegradationFeatures features();
  Snapshot snapshot();

  void add_listener(DegradationListener listener);

 private:
  struct Impl;
  void flush_events();

  DegradationConfig config_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lab::resilience
