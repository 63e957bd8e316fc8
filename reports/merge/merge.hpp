#pragma once
// `agentlab merge SHARD.json… --out F`: merges the results of sharded runs exactly (histograms
// are decoded from their `hdr` encodings and added bucket by bucket), sums the counters and the
// per-second series, and evaluates the thresholds on the merged totals, as one run would have.

#include <optional>
#include <string>
#include <vector>

#include <boost/json/value.hpp>

namespace lab::reports {

/// Merges parsed results documents. On a problem (wrong schema, different scenarios, a broken
/// histogram) returns nullopt with every problem in `errors`, naming the file.
std::optional<boost::json::value> merge_results(const std::vector<std::pair<std::string, boost::json::value>>& shards,
                                                std::vector<std::string>& errors);

int merge_command(int argc, char** argv);

}  // namespace lab::reports
