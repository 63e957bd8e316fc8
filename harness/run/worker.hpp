#pragma once
// One load-generating thread: its io_context, its connection pool to the target, its recorder.
// Everything here is touched only from the worker's own thread, except where noted.

#include <atomic>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>

#include "common/clock/clock.hpp"
#include "common/http/client.hpp"
#include "harness/run/recorder.hpp"
#include "harness/scenario/scenario.hpp"

namespace lab::harness {

/// A cheap, seedable RNG (SplitMix64): one per iteration, seeded from (run seed, iteration).
struct FastRng {
  using result_type = std::uint64_t;
  std::uint64_t state;
  explicit FastRng(std::uint64_t seed) : state(seed) {}
  static constexpr result_type min() { return 0; }
  static constexpr result_type max() { return ~0ULL; }
  result_type operator()() {
    std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  /// Uniform in [lo, hi].
  std::int64_t between(std::int64_t lo, std::int64_t hi) {
    if (hi <= lo) return lo;
    return lo + static_cast<std::int64_t>((*this)() % static_cast<std::uint64_t>(hi - lo + 1));
  }
};

/// A population slot: one (user, agent) pair with what its setup captured. Written only during
/// setup, by the worker that owns the slot; read-only afterwards.
struct UserSlot {
  std::string user_id;
  std::string token;
  std::vector<std::pair<std::string, std::string>> vars;
  bool setup_ok = true;
};

/// What the ledger knows of one accepted task, from this worker's point of view.
struct LedgerEntry {
  std::uint32_t slot = 0;
  std::uint16_t done = 0;   ///< terminal success events seen for it
  std::uint16_t error = 0;  ///< terminal failure events seen for it
};

/// Ids of the metrics one step records.
struct StepMetrics {
  std::size_t latency, ttfb, ttft = SIZE_MAX, itl = SIZE_MAX, e2e = SIZE_MAX;
};

/// What a run shares with its workers (read-only while workers run).
struct RunShared {
  const Scenario* scenario = nullptr;
  http::Url target;
  std::uint64_t seed = 1;
  std::vector<UserSlot> slots;
  MetricIndex metrics;
  std::vector<std::vector<StepMetrics>> flow_metrics;  ///< [flow][step]
  std::vector<StepMetrics> setup_metrics;
  std::vector<std::size_t> iteration_metric;  ///< [flow]
  std::size_t lateness_metric = 0, queue_wait_metric = 0;
  std::vector<double> flow_weights_cumulative;
  std::atomic<bool> stopping{false};
  /// The ledger's task variable (empty: no ledger) and, per flow and step, whether the step
  /// accepts tasks (captures the variable) or streams one (its path uses the variable).
  std::string ledger_var;
  const Step* ledger_stream = nullptr;
  const Clock* clock = &SteadyClock::instance();
};

/// Where an iteration comes from and how late it is.
struct IterationInfo {
  std::size_t slot = 0;
  std::int64_t vu = 0;
  std::int64_t iter = 0;
  std::size_t phase = 0;
  std::size_t flow = 0;
  TimePoint intended{};
  TimePoint started{};
};

class Worker {
 public:
  Worker(int index, RunShared& shared, std::size_t phases);
  int index() const { return index_; }
  boost::asio::io_context& io() { return io_; }
  Recorder& recorder() { return recorder_; }
  http::ConnectionPool& pool() { return *pool_; }
  /// Accepted tasks this worker saw (worker thread only while running; read after join).
  std::unordered_map<std::string, LedgerEntry>& ledger() { return ledger_; }
  RunShared& shared() { return shared_; }

  /// Runs one flow iteration to its end (or its first failed step). Records everything.
  boost::asio::awaitable<void> run_iteration(IterationInfo info);
  /// Runs the setup steps for one slot, capturing into slots[slot].vars.
  boost::asio::awaitable<void> run_setup(std::size_t slot);

  void start_thread();
  void join();

 private:
  /// Runs the steps; returns false on the first failure (already counted).
  boost::asio::awaitable<bool> run_steps(const std::vector<Step>& steps,
                                         const std::vector<StepMetrics>& metrics,
                                         const IterationInfo& info, FastRng& rng,
                                         std::vector<std::pair<std::string, std::string>>& vars,
                                         const std::vector<std::pair<std::string, std::string>>* user_vars);

  int index_;
  RunShared& shared_;
  boost::asio::io_context io_{1};
  std::unique_ptr<http::ConnectionPool> pool_;
  Recorder recorder_;
  std::unordered_map<std::string, LedgerEntry> ledger_;
  std::thread thread_;
};

}  // namespace lab::harness
