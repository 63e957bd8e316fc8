#include "runtime/resilience/degradation.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace lab::resilience {
namespace {

using namespace std::chrono_literals;

ComponentHealth healthy() { return {}; }

ComponentHealth down(std::initializer_list<bool ComponentHealth::*> components) {
  ComponentHealth health;
  for (auto component : components) health.*component = false;
  return health;
}

constexpr auto kPrimary = &ComponentHealth::llm_primary;
constexpr auto kBackup = &ComponentHealth::llm_backup;
constexpr auto kMemory = &ComponentHealth::memory;
constexpr auto kTools = &ComponentHealth::tools;
constexpr auto kCheckpoint = &ComponentHealth::checkpoint;

// ---------------------------------------------------------------- the seed's rules

TEST(SeedLevel, FollowsTheSeedsDecisionChain) {
  struct Case {
    ComponentHealth health;
    int level;
  };
  const Case cases[] = {
      {healthy(), 0},
      {down({kCheckpoint}), 4},  // critical: can't persist
      {down({kCheckpoint, kPrimary, kBackup, kMemory, kTools}), 4},
      {down({kPrimary, kBackup}), 4},  // no LLM available
      {down({kPrimary}), 1},           // backup LLM
      {down({kMemory}), 2},            // no memory
      {down({kTools}), 3},             // core only
      {down({kBackup}), 0},            // a spare gone: nothing changes
      {down({kBackup, kMemory}), 2},
      {down({kBackup, kTools}), 3},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(seed_level(c.health).level, c.level) << seed_level(c.health).reason;
    EXPECT_EQ(seed_level(c.health, false).level, c.level);  // single failures: both readings agree
  }
}

TEST(SeedLevel, MultipleComponentFailuresMeanCoreOnly) {
  // The seed's prose: "Level 3: CORE ONLY — Trigger: Multiple component failures".
  EXPECT_EQ(seed_level(down({kPrimary, kMemory})).level, 3);
  EXPECT_EQ(seed_level(down({kPrimary, kTools})).level, 3);
  EXPECT_EQ(seed_level(down({kMemory, kTools})).level, 3);
  EXPECT_EQ(seed_level(down({kPrimary, kMemory, kTools})).level, 3);
  EXPECT_EQ(seed_level(down({kPrimary, kMemory})).reason,
            "multiple component failures: llm_primary, memory");
  // Its pseudo-code alone (first matching ELIF wins).
  EXPECT_EQ(seed_level(down({kPrimary, kMemory}), false).level, 1);
  EXPECT_EQ(seed_level(down({kPrimary, kTools}), false).level, 1);
  EXPECT_EQ(seed_level(down({kMemory, kTools}), false).level, 2);
  // Level 4 rules still come first.
  EXPECT_EQ(seed_level(down({kPrimary, kBackup, kMemory})).level, 4);
}

TEST(DegradationFeatures, EachLevelChangesWhatTheRuntimeDoes) {
  const ComponentHealth primary_up = healthy();
  const ComponentHealth primary_down = down({kPrimary, kTools});
  const DegradationFeatures level0 = features_for(0, primary_up);
  EXPECT_EQ(level0, (DegradationFeatures{false, true, true, true}));
  EXPECT_EQ(features_for(1, down({kPrimary})), (DegradationFeatures{true, true, true, true}));
  EXPECT_EQ(features_for(2, down({kMemory})), (DegradationFeatures{false, false, true, true}));
  EXPECT_EQ(features_for(3, down({kTools})), (DegradationFeatures{false, false, false, true}));
  EXPECT_EQ(features_for(3, primary_down), (DegradationFeatures{true, false, false, true}));
  EXPECT_EQ(features_for(4, down({kCheckpoint})),
            (DegradationFeatures{false, false, false, false}));
  EXPECT_FALSE(features_for(4, down({kPrimary, kBackup})).accept_new_work);
  EXPECT_EQ(level_name(0), "NORMAL");
  EXPECT_EQ(level_name(4), "MAINTENANCE");
}

TEST(HealthFromBreakers, OpenAndHalfOpenBreakersMeanDown) {
  std::map<std::string, CircuitState, std::less<>> states{
      {"llm_primary", CircuitState::kHalfOpen},
      {"llm_backup", CircuitState::kClosed},
      {"memory", CircuitState::kOpen},
      {"tools", CircuitState::kDisabled},
  };
  auto health = health_from_breakers(states, true);
  EXPECT_FALSE(health.llm_primary);
  EXPECT_TRUE(health.llm_backup);
  EXPECT_FALSE(health.memory);
  EXPECT_TRUE(health.tools);
  EXPECT_TRUE(health.checkpoint);
  states["memory"] = CircuitState::kForcedOpen;
  EXPECT_FALSE(health_from_breakers(states, true).memory);
  EXPECT_FALSE(health_from_breakers(states, false).checkpoint);
}

TEST(HealthFromBreakers, NoBackupBreakerMeansNoBackupProvider) {
  const std::map<std::string, CircuitState, std::less<>> states{
      {"llm_primary", CircuitState::kOpen}};
  auto health = health_from_breakers(states, true);
  EXPECT_FALSE(health.llm_backup);
  EXPECT_TRUE(health.memory);  // no breaker, no evidence of failure
  EXPECT_TRUE(health.tools);
  EXPECT_EQ(seed_level(health).level, 4);
}

TEST(DegradationConfig, ValidatesTheHold) {
  DegradationConfig config;
  EXPECT_TRUE(config.validate().empty());
  EXPECT_EQ(config.recovery_hold, 30s);
  config.recovery_hold = -1ms;
  EXPECT_EQ(config.validate().size(), 1u);
  SimulatedClock clock;
  EXPECT_DEATH(DegradationManager(clock, config), "recovery_hold");
}

// ---------------------------------------------------------------- the manager over time

struct Manager {
  explicit Manager(Millis hold = 30s)
      : manager(clock, DegradationConfig{hold, true}) {
    manager.add_listener([this](const DegradationChange& c) { changes.push_back(c); });
  }
  SimulatedClock clock;
  DegradationManager manager;
  std::vector<DegradationChange> changes;
};

TEST(DegradationManager, StartsNormal) {
  Manager m;
  EXPECT_EQ(m.manager.level(), 0);
  EXPECT_EQ(m.manager.features(), DegradationFeatures{});
  EXPECT_EQ(m.manager.update(healthy()), 0);
  EXPECT_TRUE(m.changes.empty());
}

TEST(DegradationManager, RisesAtOnce) {
  Manager m;
  EXPECT_EQ(m.manager.update(down({kPrimary})), 1);
  EXPECT_TRUE(m.manager.features().use_backup_model);
  ASSERT_EQ(m.changes.size(), 1u);
  EXPECT_EQ(m.changes[0].from, 0);
  EXPECT_EQ(m.changes[0].to, 1);
  EXPECT_EQ(m.changes[0].reason, "primary LLM unavailable: backup model");
  EXPECT_EQ(m.changes[0].at, m.clock.now());
  EXPECT_TRUE(m.changes[0].features.use_backup_model);
  m.clock.advance(1s);
  EXPECT_EQ(m.manager.update(down({kCheckpoint})), 4);
  EXPECT_FALSE(m.manager.features().accept_new_work);
  ASSERT_EQ(m.changes.size(), 2u);
  EXPECT_EQ(m.changes[1].from, 1);
  EXPECT_EQ(m.changes[1].to, 4);
}

TEST(DegradationManager, FallsOnlyAfterTheConditionHasBeenClearForTheHold) {
  Manager m;
  m.manager.update(down({kPrimary}));
  m.clock.advance(5s);
  const TimePoint recovered = m.clock.now();
  EXPECT_EQ(m.manager.update(healthy()), 1);  // held
  auto snap = m.manager.snapshot();
  EXPECT_EQ(snap.level, 1);
  EXPECT_EQ(snap.target_level, 0);
  ASSERT_TRUE(snap.falls_at.has_value());
  EXPECT_EQ(*snap.falls_at, recovered + 30s);
  m.clock.advance(30s - 1ns);
  EXPECT_EQ(m.manager.level(), 1);
  EXPECT_TRUE(m.manager.features().use_backup_model);
  m.clock.advance(1ns);
  EXPECT_EQ(m.manager.level(), 0);  // observing is enough, no update() needed
  EXPECT_FALSE(m.manager.features().use_backup_model);
  ASSERT_EQ(m.changes.size(), 2u);
  EXPECT_EQ(m.changes[1].from, 1);
  EXPECT_EQ(m.changes[1].to, 0);
  EXPECT_EQ(m.changes[1].at, recovered + 30s);
  EXPECT_EQ(m.changes[1].reason, "recovered: all components healthy");
  EXPECT_FALSE(m.manager.snapshot().falls_at.has_value());
}

TEST(DegradationManager, AFallIsStampedWhenDueEvenIfObservedLate) {
  Manager m;
  m.manager.update(down({kMemory}));
  const TimePoint recovered = m.clock.now() + 1s;
  m.clock.advance(1s);
  m.manager.update(healthy());
  m.clock.advance(10min);
  EXPECT_EQ(m.manager.update(healthy()), 0);
  ASSERT_EQ(m.changes.size(), 2u);
  EXPECT_EQ(m.changes[1].at, recovered + 30s);
  EXPECT_EQ(m.manager.snapshot().since, recovered + 30s);
}

TEST(DegradationManager, ARelapseDuringTheHoldRestartsIt) {
  Manager m;
  m.manager.update(down({kPrimary}));
  m.clock.advance(1s);
  m.manager.update(healthy());  // hold starts
  m.clock.advance(20s);
  m.manager.update(down({kPrimary}));  // relapse: back at target 1, hold cancelled
  EXPECT_FALSE(m.manager.snapshot().falls_at.has_value());
  m.clock.advance(5s);
  const TimePoint recovered = m.clock.now();
  m.manager.update(healthy());
  m.clock.advance(29s);
  EXPECT_EQ(m.manager.level(), 1);  // 55 s since the first recovery, 29 s since the last
  m.clock.advance(1s);
  EXPECT_EQ(m.manager.level(), 0);
  ASSERT_EQ(m.changes.size(), 2u);  // 0→1 and 1→0: the relapse at the same level is silent
  EXPECT_EQ(m.changes[1].at, recovered + 30s);
}

TEST(DegradationManager, FallsStraightToTheComputedLevel) {
  Manager m;
  m.manager.update(down({kCheckpoint, kMemory}));
  EXPECT_EQ(m.manager.level(), 4);
  m.clock.advance(1s);
  m.manager.update(down({kMemory}));  // checkpoint back; memory still down → target 2
  m.clock.advance(30s);
  EXPECT_EQ(m.manager.level(), 2);  // not 3: no step through CORE_ONLY
  EXPECT_EQ(m.manager.features(), (DegradationFeatures{false, false, true, true}));
  m.manager.update(healthy());
  m.clock.advance(30s);
  EXPECT_EQ(m.manager.level(), 0);
  ASSERT_EQ(m.changes.size(), 3u);
  EXPECT_EQ(m.changes[1].from, 4);
  EXPECT_EQ(m.changes[1].to, 2);
  EXPECT_EQ(m.changes[2].from, 2);
  EXPECT_EQ(m.changes[2].to, 0);
}

TEST(DegradationManager, ANewFailureDuringAHoldRaisesAtOnce) {
  Manager m;
  m.manager.update(down({kPrimary}));
  m.clock.advance(1s);
  m.manager.update(healthy());  // holding at 1
  m.clock.advance(10s);
  EXPECT_EQ(m.manager.update(down({kMemory})), 2);  // above the current level: immediate
  EXPECT_FALSE(m.manager.features().use_backup_model);
  EXPECT_FALSE(m.manager.features().history_retrieval_enabled);
}

TEST(DegradationManager, ATargetStillBelowTheLevelKeepsTheHoldRunning) {
  Manager m;
  m.manager.update(down({kCheckpoint}));
  const TimePoint recovered = m.clock.now() + 1s;
  m.clock.advance(1s);
  m.manager.update(down({kPrimary}));  // target 1 < 4: hold starts
  m.clock.advance(10s);
  m.manager.update(down({kMemory}));  // target 2, still below 4: same hold
  m.clock.advance(20s);
  EXPECT_EQ(m.manager.level(), 2);
  EXPECT_EQ(m.changes.back().at, recovered + 30s);
}

TEST(DegradationManager, FeaturesCanChangeWithinALevel) {
  Manager m;
  m.manager.update(down({kTools}));
  EXPECT_EQ(m.manager.level(), 3);
  EXPECT_FALSE(m.manager.features().use_backup_model);
  m.manager.update(down({kTools, kPrimary}));  // still 3, but now on the backup model
  EXPECT_EQ(m.manager.level(), 3);
  EXPECT_TRUE(m.manager.features().use_backup_model);
  ASSERT_EQ(m.changes.size(), 2u);
  EXPECT_EQ(m.changes[1].from, 3);
  EXPECT_EQ(m.changes[1].to, 3);
  EXPECT_TRUE(m.changes[1].features.use_backup_model);
}

TEST(DegradationManager, ZeroHoldIsTheSeedsImmediateSetLevel) {
  Manager m(0ms);
  m.manager.update(down({kMemory}));
  EXPECT_EQ(m.manager.update(healthy()), 0);
  ASSERT_EQ(m.changes.size(), 2u);
  EXPECT_EQ(m.changes[1].at, m.clock.now());
}

// ---------------------------------------------------------------- wired to breakers

TEST(DegradationManager, FollowsTheLlmBreakerThroughAnOutage) {
  SimulatedClock clock;
  CircuitBreakerRegistry registry(clock);
  DegradationManager manager(clock, DegradationConfig{30s, true});
  std::vector<int> levels;
  manager.add_listener([&](const DegradationChange& c) { levels.push_back(c.to); });
  registry.add_listener([&](const CircuitTransition&) {
    manager.update(health_from_breakers(registry.states(), /*checkpoint_available=*/true));
  });
  auto& primary = registry.get_or_create(kLlmPrimaryBreaker, CircuitBreakerConfig::seed_llm_api());
  registry.get_or_create(kLlmBackupBreaker, CircuitBreakerConfig::seed_llm_api());
  manager.update(health_from_breakers(registry.states(), true));
  EXPECT_EQ(manager.level(), 0);

  for (int i = 0; i < 5; ++i) primary.on_error(primary.try_acquire(), 1s);  // outage
  EXPECT_EQ(primary.state(), CircuitState::kOpen);
  EXPECT_EQ(manager.level(), 1);
  EXPECT_TRUE(manager.features().use_backup_model);

  clock.advance(60s);  // wait in OPEN → HALF_OPEN: not yet proven, still level 1
  EXPECT_EQ(primary.state(), CircuitState::kHalfOpen);
  EXPECT_EQ(manager.level(), 1);
  auto trial = primary.try_acquire();
  primary.on_success(trial, 1s);  // provider is back
  EXPECT_EQ(primary.state(), CircuitState::kClosed);
  EXPECT_EQ(manager.level(), 1);  // held for 30 s
  clock.advance(30s);
  EXPECT_EQ(manager.level(), 0);
  EXPECT_EQ(levels, (std::vector<int>{1, 0}));
}

}  // namespace
}  // namespace lab::resilience
