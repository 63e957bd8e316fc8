// Micro-benchmarks for MemoryEventBus: appending a task's events, with and without a live
// subscriber, as a worker streaming tokens does.
// Run: build/<dir>/runtime/events/lab_runtime_events_bench [--benchmark_format=json]
#include "runtime/events/memory_event_bus.hpp"

#include <benchmark/benchmark.h>

#include <string>

namespace {

using lab::runtime::Event;
using lab::runtime::EventKind;
using lab::runtime::MemoryEventBus;

// One task stream of 100 text_chunk events + done per iteration batch; range(0) = subscribers.
void BM_AppendTaskStream(benchmark::State& state) {
  lab::SteadyClock clock;
  MemoryEventBus bus({}, clock);
  const std::string chunk = R"({"kind":"text_chunk","text":"hello "})";
  const auto subscribers = state.range(0);
  std::uint64_t task = 0;
  std::uint64_t delivered = 0;
  for (auto _ : state) {
    const std::string id = "task-" + std::to_string(task++);
    std::vector<lab::runtime::Subscription> subs;
    if (subscribers > 0) {
      (void)bus.open(id);
      for (int s = 0; s < subscribers; ++s) {
        subs.push_back(std::move(*bus.subscribe(id, 0, [&](const Event&) { ++delivered; })));
      }
    }
    for (int i = 0; i < 100; ++i) {
      if (!bus.append(id, EventKind::kTextChunk, chunk).ok()) {
        state.SkipWithError("append refused");
        return;
      }
    }
    (void)bus.append(id, EventKind::kDone, "{}");
  }
  state.SetItemsProcessed(state.iterations() * 101);
  state.counters["delivered"] = static_cast<double>(delivered);
}
BENCHMARK(BM_AppendTaskStream)->Arg(0)->Arg(1);

// Replay of a finished 100-event stream (an SSE reconnect with Last-Event-ID 0).
void BM_ReadReplay(benchmark::State& state) {
  lab::SteadyClock clock;
  MemoryEventBus bus({}, clock);
  for (int i = 0; i < 100; ++i) (void)bus.append("t", EventKind::kTextChunk, "{\"text\":\"hello \"}");
  (void)bus.append("t", EventKind::kDone, "{}");
  for (auto _ : state) {
    auto slice = bus.read("t", 0, 1000);
    benchmark::DoNotOptimize(slice);
  }
  state.SetItemsProcessed(state.iterations() * 101);
}
BENCHMARK(BM_ReadReplay);

}  // namespace
