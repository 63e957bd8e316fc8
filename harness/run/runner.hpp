#pragma once
// Runs a validated scenario against a target and writes results.json.

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <boost/json/value.hpp>

#include "harness/results/results.hpp"
#include "harness/scenario/scenario.hpp"

namespace lab::harness {

enum ExitCode : int { kExitPass = 0, kExitFailed = 1, kExitUsage = 2, kExitAborted = 3 };

/// What the embedded stack did for a Fault::Kind::kStack fault (process.kill, service.restart).
struct StackActionResult {
  bool ok = false;
  std::string detail;  ///< what was done: pids, signal, restart times; or why it failed
};

/// One task's effects in the store, as the embedded stack's TurnStatsStore reports them.
struct TaskEffects {
  std::uint64_t turns = 0;                  ///< committed turns with this task id
  std::uint64_t message_rows = 0;           ///< message rows those turns wrote
  std::uint64_t expected_message_rows = 0;  ///< what one commit of the turn writes
};

/// The store's answer for a set of task ids; `error` non-empty when it could not answer.
struct StoreEffects {
  std::unordered_map<std::string, TaskEffects> tasks;  ///< ids with no effects may be absent
  /// false when the store may have forgotten effects (retention bounds of the in-memory store):
  /// then a done task without a turn is reported but not counted as lost.
  bool complete = true;
  std::string error;
};

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
  /// Performs a Fault::Kind::kStack fault's start (true) or end (false). Called on a thread of
  /// its own (it may block for seconds: a restart waits for the process or server to come
  /// back). Without it such faults fail with "needs the embedded stack".
  std::function<StackActionResult(const Fault&, bool start)> stack_action;
  /// The store's record of the tasks' effects (embedded stack only): after the stream replay the
  /// ledger is reconciled against it too (`ledger.store`). Called on the control thread.
  std::function<StoreEffects(const std::vector<std::string>& task_ids)> store_effects;
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
