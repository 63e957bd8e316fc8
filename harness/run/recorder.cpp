#include "harness/run/recorder.hpp"

namespace lab::harness {

std::string_view to_string(ErrorKind k) {
  switch (k) {
    case ErrorKind::kConnect: return "connect";
    case ErrorKind::kTimeout: return "timeout";
    case ErrorKind::kStatus: return "status";
    case ErrorKind::kProtocol: return "protocol";
    case ErrorKind::kExpectation: return "expectation";
    case ErrorKind::kCount: break;
  }
  return "unknown";
}

void Counters::merge(const Counters& o) {
  requests += o.requests;
  errors += o.errors;
  for (std::size_t i = 0; i < errors_by_class.size(); ++i) errors_by_class[i] += o.errors_by_class[i];
  iterations += o.iterations;
  failed_iterations += o.failed_iterations;
  dropped_iterations += o.dropped_iterations;
  interrupted_iterations += o.interrupted_iterations;
  bytes_received += o.bytes_received;
}

MetricSet::MetricSet(std::size_t metrics) : corrected(metrics), uncorrected(metrics) {}

void MetricSet::merge(const MetricSet& o) {
  if (corrected.size() < o.corrected.size()) {
    corrected.resize(o.corrected.size());
    uncorrected.resize(o.uncorrected.size());
  }
  for (std::size_t i = 0; i < o.corrected.size(); ++i) {
    if (o.corrected[i].count()) corrected[i].merge(o.corrected[i]);
    if (o.uncorrected[i].count()) uncorrected[i].merge(o.uncorrected[i]);
  }
  counters.merge(o.counters);
}

void MetricSet::reset() {
  for (auto& h : corrected) h.reset();
  for (auto& h : uncorrected) h.reset();
  counters = Counters{};
}

std::size_t MetricIndex::add(std::string name) {
  auto id = find(name);
  if (id != SIZE_MAX) return id;
  names_.push_back(std::move(name));
  return names_.size() - 1;
}

std::size_t MetricIndex::find(std::string_view name) const {
  for (std::size_t i = 0; i < names_.size(); ++i)
    if (names_[i] == name) return i;
  return SIZE_MAX;
}

Recorder::Recorder(std::size_t metrics, std::size_t phases)
    : setup_phase_(phases), total_(metrics), phases_(phases + 1, MetricSet(metrics)) {}

void Recorder::record(std::size_t id, std::size_t phase, std::int64_t corrected_us, std::int64_t uncorrected_us) {
  phases_[phase].corrected[id].record(corrected_us);
  phases_[phase].uncorrected[id].record(uncorrected_us);
  if (phase == setup_phase_) return;
  total_.corrected[id].record(corrected_us);
  total_.uncorrected[id].record(uncorrected_us);
}

void Recorder::request_done(std::size_t phase, std::int64_t latency_us, bool failed, ErrorKind kind) {
  auto bump = [&](Counters& c) {
    ++c.requests;
    if (failed) {
      ++c.errors;
      ++c.errors_by_class[static_cast<std::size_t>(kind)];
    }
  };
  bump(phases_[phase].counters);
  if (phase == setup_phase_) return;
  ++interval_.requests;
  if (failed) ++interval_.errors;
  else interval_.latency.record(latency_us);
}

MetricSet Recorder::total() const {
  MetricSet out = total_;
  for (std::size_t p = 0; p < setup_phase_; ++p) out.counters.merge(phases_[p].counters);
  return out;
}

IntervalStats Recorder::take_interval() {
  IntervalStats out = std::move(interval_);
  interval_.latency = Histogram();
  interval_.requests = 0;
  interval_.errors = 0;
  return out;
}

}  // namespace lab::harness
