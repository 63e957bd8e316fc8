#include "harness/results/results.hpp"

#include <cmath>
#include <filesystem>
#include <fstream>

#include <boost/json/serialize.hpp>

namespace lab::harness {

namespace bj = boost::json;

namespace {

double ms(std::int64_t us) { return static_cast<double>(us) / 1000.0; }
double round3(double v) { return std::round(v * 1000.0) / 1000.0; }

bj::object summary(const Histogram& h) {
  bj::object o;
  o["unit"] = "ms";
  o["count"] = h.count();
  o["min"] = ms(h.min());
  o["mean"] = round3(h.mean() / 1000.0);
  o["p50"] = ms(h.value_at_percentile(50));
  o["p90"] = ms(h.value_at_percentile(90));
  o["p95"] = ms(h.value_at_percentile(95));
  o["p99"] = ms(h.value_at_percentile(99));
  o["p999"] = ms(h.value_at_percentile(99.9));
  o["max"] = ms(h.max());
  o["hdr"] = h.encode();
  return o;
}

bool same(const Histogram& a, const Histogram& b) {
  return a.count() == b.count() && a.min() == b.min() && a.max() == b.max() &&
         a.value_at_percentile(50) == b.value_at_percentile(50) &&
         a.value_at_percentile(99) == b.value_at_percentile(99);
}

}  // namespace

bj::object metric_json(const Histogram& corrected, const Histogram* uncorrected) {
  bj::object o = summary(corrected);
  if (uncorrected && !same(corrected, *uncorrected)) o["uncorrected"] = summary(*uncorrected);
  return o;
}

bj::object counters_json(const Counters& c) {
  bj::object o;
  o["requests"] = c.requests;
  o["errors"] = c.errors;
  bj::object by_class;
  for (std::size_t i = 0; i < c.errors_by_class.size(); ++i)
    by_class[std::string(to_string(static_cast<ErrorKind>(i)))] = c.errors_by_class[i];
  o["errors_by_class"] = std::move(by_class);
  o["iterations"] = c.iterations;
  o["failed_iterations"] = c.failed_iterations;
  o["dropped_iterations"] = c.dropped_iterations;
  o["interrupted_iterations"] = c.interrupted_iterations;
  o["bytes_received"] = c.bytes_received;
  return o;
}

bj::object metrics_json(const MetricSet& set, const MetricIndex& index) {
  bj::object o;
  for (std::size_t i = 0; i < index.size() && i < set.corrected.size(); ++i) {
    if (set.corrected[i].count() == 0) continue;
    o[index.name(i)] = metric_json(set.corrected[i], &set.uncorrected[i]);
  }
  return o;
}

ThresholdOutcome evaluate_threshold(const Threshold& t, const MetricSet& total, const MetricIndex& index,
                                    double duration_s, const ExtraValues& extra) {
  ThresholdOutcome out;
  const Counters& c = total.counters;
  std::optional<double> v;
  if (t.agg == Threshold::Agg::kValue) {
    const std::string& m = t.metric;
    if (m == "error_rate") v = c.requests ? static_cast<double>(c.errors) / static_cast<double>(c.requests) : 0.0;
    else if (m == "rate") v = duration_s > 0 ? static_cast<double>(c.requests) / duration_s : 0.0;
    else if (m == "requests") v = static_cast<double>(c.requests);
    else if (m == "errors") v = static_cast<double>(c.errors);
    else if (m == "iterations") v = static_cast<double>(c.iterations);
    else if (m == "dropped_iterations") v = static_cast<double>(c.dropped_iterations);
    else if (m == "interrupted_iterations") v = static_cast<double>(c.interrupted_iterations);
    else if (m.starts_with("errors_by_class.")) {
      const std::string cls = m.substr(16);
      for (std::size_t i = 0; i < c.errors_by_class.size(); ++i)
        if (to_string(static_cast<ErrorKind>(i)) == cls) v = static_cast<double>(c.errors_by_class[i]);
      if (!v) out.note = "no error class '" + cls + "'";
    } else {
      for (const auto& [name, value] : extra)
        if (name == m) v = value;
      if (!v) out.note = "'" + m + "' is not measured in this run";
    }
  } else {
    const std::size_t id = index.find(t.metric);
    if (id == SIZE_MAX || id >= total.corrected.size() || total.corrected[id].count() == 0) {
      out.note = "no samples of " + t.metric;
    } else {
      const Histogram& h = total.corrected[id];
      switch (t.agg) {
        case Threshold::Agg::kPercentile: v = static_cast<double>(h.value_at_percentile(t.percentile)); break;
        case Threshold::Agg::kMean: v = h.mean(); break;
        case Threshold::Agg::kMin: v = static_cast<double>(h.min()); break;
        case Threshold::Agg::kMax: v = static_cast<double>(h.max()); break;
        case Threshold::Agg::kCount: v = static_cast<double>(h.count()); break;
        case Threshold::Agg::kRate: v = duration_s > 0 ? static_cast<double>(h.count()) / duration_s : 0.0; break;
        case Threshold::Agg::kValue: break;
      }
    }
  }
  out.observed = v;
  if (!v) return out;
  switch (t.op) {
    case Threshold::Op::kLt: out.passed = *v < t.value; break;
    case Threshold::Op::kLe: out.passed = *v <= t.value; break;
    case Threshold::Op::kGt: out.passed = *v > t.value; break;
    case Threshold::Op::kGe: out.passed = *v >= t.value; break;
    case Threshold::Op::kEq: out.passed = std::abs(*v - t.value) < 1e-9; break;
  }
  return out;
}

bj::object threshold_json(const Threshold& th, const ThresholdOutcome& o) {
  bj::object t;
  t["expr"] = th.expr;
  const bool time_valued = th.agg == Threshold::Agg::kPercentile || th.agg == Threshold::Agg::kMean ||
                           th.agg == Threshold::Agg::kMin || th.agg == Threshold::Agg::kMax;
  if (o.observed) t["observed"] = time_valued ? *o.observed / 1000.0 : *o.observed;
  else t["observed"] = nullptr;
  if (time_valued) t["unit"] = "ms";
  t["passed"] = o.passed;
  if (!o.note.empty()) t["note"] = o.note;
  return t;
}

std::optional<std::string> write_json_file(const std::string& path, const bj::value& doc) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path p(path);
  if (p.has_parent_path()) fs::create_directories(p.parent_path(), ec);
  if (ec) return "cannot create " + p.parent_path().string() + ": " + ec.message();
  const fs::path tmp = p.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    if (!out) return "cannot write " + tmp.string();
    out << bj::serialize(doc) << '\n';
    out.flush();
    if (!out) return "write failed for " + tmp.string();
  }
  fs::rename(tmp, p, ec);
  if (ec) return "cannot rename " + tmp.string() + " to " + p.string() + ": " + ec.message();
  return std::nullopt;
}

}  // namespace lab::harness
