#pragma once
// The results file (schema agentlab.results/v1, documented in reports/RESULTS.md): building its
// JSON pieces, evaluating thresholds on merged metrics, and writing it without ever losing it.

#include <optional>
#include <string>

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include "common/hdr/histogram.hpp"
#include "harness/run/recorder.hpp"
#include "harness/scenario/scenario.hpp"

namespace lab::harness {

inline constexpr const char* kResultsSchema = "agentlab.results/v1";

/// {unit:"ms", count, min, mean, p50, p90, p95, p99, p999, max, hdr} from a µs histogram, with
/// an "uncorrected" object of the same shape when `uncorrected` differs from `corrected`.
boost::json::object metric_json(const Histogram& corrected, const Histogram* uncorrected);
/// {requests, errors, errors_by_class{...}, iterations, ...}
boost::json::object counters_json(const Counters& c);
/// {"<name>": metric_json, ...} for every metric with data.
boost::json::object metrics_json(const MetricSet& set, const MetricIndex& index);

/// What a threshold saw and whether it passed. observed is nullopt when the value does not exist
/// in this run (e.g. a ledger value without an embedded runtime): that fails the threshold.
struct ThresholdOutcome {
  std::optional<double> observed;
  bool passed = false;
  std::string note;
};
/// Values threshold expressions may read besides metrics (ledger.*, from the embedded stack).
using ExtraValues = std::vector<std::pair<std::string, double>>;
ThresholdOutcome evaluate_threshold(const Threshold& t, const MetricSet& total, const MetricIndex& index,
                                    double duration_s, const ExtraValues& extra);

/// {expr, observed, unit?, passed, note?}: one row of results.json "thresholds"; time-valued
/// observations are converted from µs to ms.
boost::json::object threshold_json(const Threshold& t, const ThresholdOutcome& o);

/// Writes `doc` to `path` through a temporary file and rename, so a reader never sees a partial
/// file. Creates the parent directory. Returns an error message on failure.
std::optional<std::string> write_json_file(const std::string& path, const boost::json::value& doc);

}  // namespace lab::harness
