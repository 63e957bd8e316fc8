// Micro-benchmarks for lab::Histogram. Values come from pre-generated arrays so the RNG is not
// part of what is timed. Run: build/<dir>/common/lab_common_hdr_bench [--benchmark_format=json]
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "common/hdr/histogram.hpp"

namespace {

constexpr std::int64_t kHour = 3'600'000'000LL;

// Log-normal latencies in microseconds around 20 ms, clamped to 1 µs .. 1 h. The size is a
// power of two so the benchmark loop indexes with a mask.
std::vector<std::int64_t> latencies(std::size_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::lognormal_distribution<double> dist(std::log(20'000.0), 2.0);
  std::vector<std::int64_t> v(n);
  for (auto& x : v) x = std::clamp<std::int64_t>(static_cast<std::int64_t>(dist(rng)), 1, kHour);
  return v;
}

lab::Histogram filled(std::size_t n, std::uint64_t seed) {
  lab::Histogram h;
  for (const auto v : latencies(n, seed)) h.record(v);
  return h;
}

void BM_Record(benchmark::State& state) {
  const auto values = latencies(std::size_t{1} << 16, 1);
  const std::size_t mask = values.size() - 1;
  lab::Histogram h;
  std::size_t i = 0;
  for (auto _ : state) {
    h.record(values[i++ & mask]);
  }
  benchmark::DoNotOptimize(h.count());
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Record);

void BM_ValueAtPercentile(benchmark::State& state) {
  const lab::Histogram h = filled(1'000'000, 2);
  const double p = static_cast<double>(state.range(0)) / 10.0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(h.value_at_percentile(p));
  }
}
BENCHMARK(BM_ValueAtPercentile)->Arg(500)->Arg(990)->Arg(999);

void BM_Merge(benchmark::State& state) {
  const lab::Histogram shard = filled(100'000, 3);
  lab::Histogram total;
  for (auto _ : state) {
    total.merge(shard);
    benchmark::ClobberMemory();
  }
  benchmark::DoNotOptimize(total.count());
}
BENCHMARK(BM_Merge);

void BM_Encode(benchmark::State& state) {
  const lab::Histogram h = filled(1'000'000, 4);
  std::size_t bytes = 0;
  for (auto _ : state) {
    const auto text = h.encode();
    bytes = text.size();
    benchmark::DoNotOptimize(text.data());
  }
  state.counters["encoded_bytes"] = static_cast<double>(bytes);
}
BENCHMARK(BM_Encode);

void BM_Decode(benchmark::State& state) {
  const std::string text = filled(1'000'000, 4).encode();
  for (auto _ : state) {
    auto h = lab::Histogram::decode(text);
    benchmark::DoNotOptimize(h);
  }
}
BENCHMARK(BM_Decode);

}  // namespace
