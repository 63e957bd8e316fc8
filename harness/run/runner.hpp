#pragma once
// Runs a validated scenario against a target and writes results.json.

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include <boost/json/value.hpp>

#include "harness/results/results.hpp"
#include "harness/scenario/scenario.hpp"

namespace lab::harness {

enum ExitCode : int { kExitPass = 0, kExitFailed = 1, kExitUsage = 2, kExitAborted = 3 };

struct RunOptions {
  std::string target;          ///< http://host:port[/base]
  std::uint64_t seed = 1;
  int threads = 1;
  int shard_index = 0;
  int shard_count = 1;
  std::string out_dir = ".";   ///< results.json goes here
  bool live_progress = true;   ///< refresh one line on a terminal, else print every 5 s
  /// Extra content for results.json "system" entries and values for ledger thresholds, supplied
  /// by an embedded stack. Called on the control thread.
  std::function<boost::json::value()> system_snapshot;
  std::function<ExtraValues()> final_values;
  std::function<boost::json::value()> final_ledger;
  /// Base URLs of the embedded mock LLM's admin API etc. for relative fault URLs.
  std::string fault_base_url;
};

struct RunOutcome {
  int exit_code = kExitPass;
  std::string verdict;  ///< "pass", "fail", "aborted"
  std::string results_path;
  std::string summary;  ///< human summary for stdout
};

/// Runs the scenario to its end (or an abort), writes <out_dir>/results.json and returns.
/// Handles SIGINT/SIGTERM: stops, drains, still writes results (exit code 3).
RunOutcome run_scenario(const Scenario& scenario, const RunOptions& options);

}  // namespace lab::harness
