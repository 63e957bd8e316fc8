#pragma once
// Per-thread measurement. Each worker thread owns one Recorder, so recording never takes a lock
// (wrk2's lesson); the control thread collects copies (totals, per phase, per interval) by posting
// to the worker and merges them exactly (HDR histograms).

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/hdr/histogram.hpp"

namespace lab::harness {

/// Why an iteration step failed. Order is the results file's order.
enum class ErrorKind : std::uint8_t { kConnect, kTimeout, kStatus, kProtocol, kExpectation, kCount };
std::string_view to_string(ErrorKind k);

struct Counters {
  std::int64_t requests = 0;
  std::int64_t errors = 0;
  std::array<std::int64_t, static_cast<std::size_t>(ErrorKind::kCount)> errors_by_class{};
  std::int64_t iterations = 0;          ///< iterations that ran to their end
  std::int64_t failed_iterations = 0;   ///< iterations that stopped at a failed step
  std::int64_t dropped_iterations = 0;  ///< open model: could not start before the phase ended
  std::int64_t interrupted_iterations = 0;  ///< still running when the run had to stop
  std::int64_t bytes_received = 0;
  void merge(const Counters& o);
};

/// A set of histograms indexed by metric id, plus counters. Mergeable.
struct MetricSet {
  explicit MetricSet(std::size_t metrics = 0);
  std::vector<Histogram> corrected;    ///< µs, from the intended start (open model)
  std::vector<Histogram> uncorrected;  ///< µs, from the actual start
  Counters counters;
  void merge(const MetricSet& o);
  void reset();
};

/// Names ↔ ids, fixed when the run starts.
class MetricIndex {
 public:
  std::size_t add(std::string name);
  std::size_t size() const { return names_.size(); }
  const std::string& name(std::size_t id) const { return names_[id]; }
  /// SIZE_MAX when absent.
  std::size_t find(std::string_view name) const;

 private:
  std::vector<std::string> names_;
};

/// What one second looks like, for the time series.
struct IntervalStats {
  Histogram latency;  ///< every step's latency (corrected) completed in the interval, µs
  std::int64_t requests = 0;
  std::int64_t errors = 0;
  void merge(const IntervalStats& o) {
    latency.merge(o.latency);
    requests += o.requests;
    errors += o.errors;
  }
};

class Recorder {
 public:
  /// `phases` run phases, plus one more slot at index `phases` for setup, which is kept apart
  /// from the run totals and the time series.
  Recorder(std::size_t metrics, std::size_t phases);
  std::size_t setup_phase() const { return setup_phase_; }

  /// Records one measurement of metric `id` in phase `phase`.
  void record(std::size_t id, std::size_t phase, std::int64_t corrected_us, std::int64_t uncorrected_us);
  /// One request finished (ok or not); feeds counters and the interval series.
  void request_done(std::size_t phase, std::int64_t latency_us, bool failed, ErrorKind kind);
  Counters& counters(std::size_t phase) { return phases_[phase].counters; }

  /// The run total (setup excluded): histograms kept as recorded, counters summed over the
  /// phases. A copy, for the control thread.
  MetricSet total() const;
  const MetricSet& phase(std::size_t i) const { return phases_[i]; }
  std::size_t phase_count() const { return setup_phase_; }
  /// Returns the interval since the last call and starts a new one.
  IntervalStats take_interval();

  std::int64_t in_flight = 0;  ///< iterations running now (worker thread only)

 private:
  std::size_t setup_phase_;
  MetricSet total_;
  std::vector<MetricSet> phases_;
  IntervalStats interval_;
};

}  // namespace lab::harness
