#include "reports/merge/merge.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>

#include <boost/json.hpp>

#include "common/hdr/histogram.hpp"
#include "common/text/json_util.hpp"
#include "harness/results/results.hpp"
#include "harness/run/runner.hpp"
#include "harness/scenario/scenario.hpp"

namespace lab::reports {

namespace bj = boost::json;
using harness::MetricIndex;
using harness::MetricSet;

namespace {

// Adds every metric of `metrics` (a results "metrics" object) into `set`, registering names.
bool add_metrics(const bj::object& metrics, MetricIndex& index, MetricSet& set, const std::string& file,
                 std::vector<std::string>& errors) {
  bool ok = true;
  for (const auto& [name, m] : metrics) {
    const std::size_t id = index.add(std::string(name));
    if (set.corrected.size() <= id) {
      set.corrected.resize(id + 1);
      set.uncorrected.resize(id + 1);
    }
    auto decode = [&](const bj::value& v, Histogram& into) {
      const auto* hdr = v.is_object() ? v.as_object().if_contains("hdr") : nullptr;
      auto h = hdr && hdr->is_string() ? Histogram::decode(std::string(hdr->get_string())) : std::nullopt;
      if (!h) {
        errors.push_back(file + ": metrics." + std::string(name) + ".hdr is missing or not a valid histogram");
        ok = false;
        return;
      }
      into.merge(*h);
    };
    decode(m, set.corrected[id]);
    const auto* unc = m.as_object().if_contains("uncorrected");
    decode(unc ? *unc : m, set.uncorrected[id]);
  }
  return ok;
}

std::int64_t num(const bj::value& v, const char* key) {
  const auto* f = v.as_object().if_contains(key);
  return f && f->is_number() ? f->to_number<std::int64_t>() : 0;
}

void add_counters(const bj::value& c, harness::Counters& into) {
  into.requests += num(c, "requests");
  into.errors += num(c, "errors");
  if (const auto* by = c.as_object().if_contains("errors_by_class"))
    for (std::size_t i = 0; i < into.errors_by_class.size(); ++i)
      into.errors_by_class[i] += num(*by, std::string(harness::to_string(static_cast<harness::ErrorKind>(i))).c_str());
  into.iterations += num(c, "iterations");
  into.failed_iterations += num(c, "failed_iterations");
  into.dropped_iterations += num(c, "dropped_iterations");
  into.interrupted_iterations += num(c, "interrupted_iterations");
  into.bytes_received += num(c, "bytes_received");
}

}  // namespace

std::optional<bj::value> merge_results(const std::vector<std::pair<std::string, bj::value>>& shards,
                                       std::vector<std::string>& errors) {
  if (shards.empty()) {
    errors.push_back("nothing to merge");
    return std::nullopt;
  }
  std::string scenario;
  for (const auto& [file, doc] : shards) {
    if (!doc.is_object() || doc.as_object().if_contains("schema") == nullptr ||
        doc.at("schema") != harness::kResultsSchema) {
      errors.push_back(file + ": not an " + std::string(harness::kResultsSchema) + " results file");
      continue;
    }
    const std::string name(doc.at("scenario").at("name").as_string());
    if (scenario.empty()) scenario = name;
    else if (name != scenario) errors.push_back(file + ": scenario '" + name + "' differs from '" + scenario + "'");
  }
  if (!errors.empty()) return std::nullopt;

  MetricIndex index;
  MetricSet total;
  std::map<std::string, std::pair<MetricSet, harness::Counters>> phases;
  std::vector<std::string> phase_order;
  std::map<std::int64_t, bj::object> series;
  bj::array events;
  double duration = 0;
  std::string verdict = "pass";
  std::vector<std::string> threshold_exprs;
  for (const auto& [file, doc] : shards) {
    add_metrics(doc.at("metrics").as_object(), index, total, file, errors);
    add_counters(doc.at("counters"), total.counters);
    duration = std::max(duration, doc.at("duration_s").to_number<double>());
    if (doc.at("verdict") == "aborted") verdict = "aborted";
    for (const auto& p : doc.at("phases").as_array()) {
      const std::string name(p.at("name").as_string());
      if (!phases.count(name)) phase_order.push_back(name);
      auto& [set, counters] = phases[name];
      add_metrics(p.at("metrics").as_object(), index, set, file, errors);
      add_counters(p.at("counters"), counters);
    }
    for (const auto& row : doc.at("timeseries").as_array()) {
      auto& out = series[row.at("t").to_number<std::int64_t>()];
      out["t"] = row.at("t");
      for (const char* k : {"rps", "errors", "in_flight"}) out[k] = num(out, k) + num(row, k);
      // Percentiles of a second cannot be added; keep the worst shard's, and say so in the name.
      for (const char* k : {"p50_ms", "p99_ms"}) {
        const double v = row.at(k).to_number<double>();
        const auto* cur = out.if_contains(std::string("max_") + k);
        out[std::string("max_") + k] = cur ? std::max(cur->to_number<double>(), v) : v;
      }
    }
    for (const auto& e : doc.at("events").as_array()) {
      bj::object ev = e.as_object();
      ev["shard"] = file;
      events.push_back(std::move(ev));
    }
    if (threshold_exprs.empty())
      for (const auto& t : doc.at("thresholds").as_array()) threshold_exprs.emplace_back(t.at("expr").as_string());
  }
  if (!errors.empty()) return std::nullopt;

  bj::array thresholds;
  bool passed = true;
  for (const auto& expr : threshold_exprs) {
    std::string err;
    auto th = harness::parse_threshold(expr, &err);
    if (!th) {
      thresholds.push_back(bj::object{{"expr", expr}, {"observed", nullptr}, {"passed", false}, {"note", err}});
      passed = false;
      continue;
    }
    auto o = harness::evaluate_threshold(*th, total, index, duration, {});
    thresholds.push_back(harness::threshold_json(*th, o));
    passed = passed && o.passed;
  }
  if (verdict != "aborted") verdict = passed ? "pass" : "fail";

  bj::object out;
  out["schema"] = harness::kResultsSchema;
  out["scenario"] = shards.front().second.at("scenario");
  out["target"] = shards.front().second.at("target");
  out["merged_from"] = [&] {
    bj::array a;
    for (const auto& [file, doc] : shards) a.push_back(bj::string(file));
    return a;
  }();
  out["duration_s"] = duration;
  out["verdict"] = verdict;
  out["shard"] = bj::object{{"index", 0}, {"count", 1}};
  out["metrics"] = harness::metrics_json(total, index);
  out["counters"] = harness::counters_json(total.counters);
  bj::array phase_rows;
  for (const auto& name : phase_order) {
    const auto& [set, counters] = phases[name];
    bj::object row;
    row["name"] = name;
    row["metrics"] = harness::metrics_json(set, index);
    row["counters"] = harness::counters_json(counters);
    phase_rows.push_back(std::move(row));
  }
  out["phases"] = std::move(phase_rows);
  bj::array rows;
  for (auto& [t, row] : series) rows.push_back(std::move(row));
  out["timeseries"] = std::move(rows);
  out["events"] = std::move(events);
  out["thresholds"] = std::move(thresholds);
  return bj::value(std::move(out));
}

int merge_command(int argc, char** argv) {
  std::vector<std::string> files;
  std::string out;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--out" && i + 1 < argc) out = argv[++i];
    else if (a == "-h" || a == "--help") {
      std::puts("usage: agentlab merge SHARD.json... --out MERGED.json");
      return 0;
    } else if (!a.empty() && a[0] == '-') {
      std::fprintf(stderr, "agentlab merge: unknown flag '%s'\n", a.c_str());
      return 2;
    } else files.push_back(a);
  }
  if (files.empty() || out.empty()) {
    std::fputs("usage: agentlab merge SHARD.json... --out MERGED.json\n", stderr);
    return 2;
  }
  std::vector<std::pair<std::string, bj::value>> shards;
  std::vector<std::string> errors;
  for (const auto& f : files) {
    std::ifstream in(f);
    if (!in) {
      errors.push_back(f + ": cannot read");
      continue;
    }
    std::stringstream ss;
    ss << in.rdbuf();
    std::string err;
    auto doc = json::parse(ss.str(), &err);
    if (!doc) errors.push_back(f + ": not JSON (" + err + ")");
    else shards.emplace_back(f, std::move(*doc));
  }
  std::optional<bj::value> merged;
  if (errors.empty()) merged = merge_results(shards, errors);
  if (!merged) {
    for (const auto& e : errors) std::fprintf(stderr, "agentlab merge: %s\n", e.c_str());
    return 2;
  }
  if (auto err = harness::write_json_file(out, *merged)) {
    std::fprintf(stderr, "agentlab merge: %s\n", err->c_str());
    return 2;
  }
  const auto& c = merged->at("counters");
  std::printf("merged %zu shards → %s: verdict %s, %lld requests, %lld errors\n", shards.size(), out.c_str(),
              std::string(merged->at("verdict").as_string()).c_str(), static_cast<long long>(num(c, "requests")),
              static_cast<long long>(num(c, "errors")));
  for (const auto& t : merged->at("thresholds").as_array())
    std::printf("  %s %s\n", t.at("passed").as_bool() ? "✓" : "✗", std::string(t.at("expr").as_string()).c_str());
  const auto& v = merged->at("verdict");
  return v == "pass" ? 0 : v == "fail" ? 1 : 3;
}

}  // namespace lab::reports
