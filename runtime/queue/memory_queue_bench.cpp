// Micro-benchmarks for MemoryTaskQueue: the cost of one task's trip through the queue.
// Run: build/<dir>/runtime/queue/lab_runtime_queue_bench [--benchmark_format=json]
#include "runtime/queue/memory_queue.hpp"

#include <benchmark/benchmark.h>

#include <string>

namespace {

using lab::runtime::MemoryTaskQueue;
using lab::runtime::Priority;
using lab::runtime::Task;

constexpr lab::Nanos kLease = lab::Seconds(30);

// enqueue + lease + ack of one task on an otherwise empty queue.
void BM_EnqueueLeaseAck(benchmark::State& state) {
  lab::SteadyClock clock;
  MemoryTaskQueue q({.max_depth = 1'000'000}, clock);
  const std::string payload(static_cast<std::size_t>(state.range(0)), 'x');
  std::uint64_t i = 0;
  for (auto _ : state) {
    auto r = q.enqueue(Task{std::to_string(i++), "agent-1", Priority::kNormal, payload});
    auto l = q.lease("w1", kLease, lab::Nanos::zero());
    if (!r.accepted() || !l.ok() || !q.ack(l->receipt).ok()) {
      state.SkipWithError("queue refused a step");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_EnqueueLeaseAck)->Arg(64)->Arg(1024);

// The same trip with a standing backlog spread over the three priorities.
void BM_EnqueueLeaseAckWithBacklog(benchmark::State& state) {
  lab::SteadyClock clock;
  MemoryTaskQueue q({.max_depth = 1'000'000}, clock);
  const auto backlog = static_cast<std::uint64_t>(state.range(0));
  std::uint64_t i = 0;
  for (; i < backlog; ++i) {
    (void)q.enqueue(Task{std::to_string(i), "a", static_cast<Priority>(i % 3), "{}"});
  }
  for (auto _ : state) {
    auto r = q.enqueue(Task{std::to_string(i), "a", static_cast<Priority>(i % 3), "{}"});
    ++i;
    auto l = q.lease("w1", kLease, lab::Nanos::zero());
    if (!r.accepted() || !l.ok() || !q.ack(l->receipt).ok()) {
      state.SkipWithError("queue refused a step");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_EnqueueLeaseAckWithBacklog)->Arg(1'000)->Arg(100'000);

}  // namespace
