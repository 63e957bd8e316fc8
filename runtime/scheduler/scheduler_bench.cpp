// Benchmarks for the scheduler over the in-memory store and locks: the cost of a turn's
// scheduling (warm and cold), and the memory of issue 4's 100,000 agents with 10,000 resident.
// Run: build/<dir>/runtime/scheduler/lab_runtime_scheduler_bench [--benchmark_format=json]
#include "runtime/scheduler/scheduler.hpp"

#include <benchmark/benchmark.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include "runtime/locks/memory_lock_service.hpp"
#include "runtime/stores/memory_store.hpp"

namespace {

using namespace lab::runtime;

// Resident set size of this process in bytes (Linux /proc/self/statm), 0 if unreadable.
double rss_bytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  long pages_total = 0;
  long pages_resident = 0;
  const int n = std::fscanf(f, "%ld %ld", &pages_total, &pages_resident);
  std::fclose(f);
  return n == 2 ? static_cast<double>(pages_resident) * static_cast<double>(sysconf(_SC_PAGESIZE)) : 0;
}

std::string agent_id(std::size_t i) {
  // UUID-sized ids, as the gateway makes them (36 characters).
  char buf[64];
  std::snprintf(buf, sizeof buf, "00000000-0000-4000-8000-%012zu", i);
  return buf;
}

// One turn of scheduling work around a commit of two short messages.
bool one_turn(Scheduler& sched, MemoryStore& store, const std::string& agent, const std::string& task) {
  auto adm = sched.submit(agent, task);
  if (!adm.ok() || !adm->run_now) return false;
  auto turn = sched.begin_turn(agent, task);
  if (!turn.ok()) return false;
  TurnWrite w{agent, task, turn->fence,
              {Message{0, Role::kUser, "What is 25 * 17?"}, Message{0, Role::kAssistant, "25 x 17 = 425"}},
              {}, {}};
  w.stats.input_tokens = 12;
  w.stats.output_tokens = 9;
  auto c = store.commit_turn(w);
  if (!c.ok()) return false;
  w.messages[0].seq = c->first_seq;
  w.messages[1].seq = c->first_seq + 1;
  sched.end_turn(std::move(*turn), TurnEnd{std::move(w.messages), true});
  return true;
}

// Issue 4: 100,000 agents created and 10,000 active in one process. Reports the resident
// memory the store, locks and scheduler add (the whole runtime must stay under 2 GiB).
void BM_HundredThousandAgentsTenThousandResident(benchmark::State& state) {
  constexpr std::size_t kAgents = 100'000;
  constexpr std::size_t kResident = 10'000;
  double added = 0;
  std::size_t resident = 0;
  for (auto _ : state) {
    const double before = rss_bytes();
    lab::SteadyClock clock;
    MemoryStore store;
    MemoryLockService locks(clock);
    Scheduler sched({.worker_id = "w1", .max_active_agents = kResident}, clock, store, store, locks);
    for (std::size_t i = 0; i < kAgents; ++i) {
      if (!store.create_agent({agent_id(i), "user-" + std::to_string(i / 10), "agent", "default"}).ok()) {
        state.SkipWithError("create_agent failed");
        return;
      }
    }
    for (std::size_t i = 0; i < kResident; ++i) {
      if (!one_turn(sched, store, agent_id(i), "task-" + std::to_string(i))) {
        state.SkipWithError("turn failed");
        return;
      }
    }
    added = rss_bytes() - before;
    resident = sched.counts().resident;
  }
  state.counters["rss_added_mib"] = added / (1 << 20);
  state.counters["bytes_per_agent"] = added / static_cast<double>(kAgents);
  state.counters["resident"] = static_cast<double>(resident);
}
BENCHMARK(BM_HundredThousandAgentsTenThousandResident)->Iterations(1)->Unit(benchmark::kMillisecond);

// A turn for a resident agent whose context is current (the common case).
void BM_WarmTurn(benchmark::State& state) {
  lab::SteadyClock clock;
  MemoryStore store({.max_messages_per_agent = 64, .max_turns_per_agent = 64});
  MemoryLockService locks(clock);
  const auto agents = static_cast<std::size_t>(state.range(0));
  Scheduler sched({.worker_id = "w1", .max_active_agents = agents}, clock, store, store, locks);
  for (std::size_t i = 0; i < agents; ++i) (void)store.create_agent({agent_id(i), "u", "a", "d"});
  std::uint64_t n = 0;
  for (auto _ : state) {
    if (!one_turn(sched, store, agent_id(n % agents), "t" + std::to_string(n))) {
      state.SkipWithError("turn failed");
      return;
    }
    ++n;
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["resumes"] = static_cast<double>(sched.counts().resumes);
}
BENCHMARK(BM_WarmTurn)->Arg(1'000);

// Every turn resumes from the store and evicts another agent (max_active_agents far below the
// agents in play): the hibernate/resume path.
void BM_ColdTurn(benchmark::State& state) {
  lab::SteadyClock clock;
  MemoryStore store({.max_messages_per_agent = 64, .max_turns_per_agent = 64});
  MemoryLockService locks(clock);
  constexpr std::size_t kAgents = 1'000;
  Scheduler sched({.worker_id = "w1", .max_active_agents = 10}, clock, store, store, locks);
  for (std::size_t i = 0; i < kAgents; ++i) (void)store.create_agent({agent_id(i), "u", "a", "d"});
  std::uint64_t n = 0;
  for (auto _ : state) {
    if (!one_turn(sched, store, agent_id(n % kAgents), "t" + std::to_string(n))) {
      state.SkipWithError("turn failed");
      return;
    }
    ++n;
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["evictions"] = static_cast<double>(sched.counts().evictions);
}
BENCHMARK(BM_ColdTurn);

}  // namespace
