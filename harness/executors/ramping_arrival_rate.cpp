#include "harness/executors/ramping_arrival_rate.hpp"

#include <cmath>

namespace lab::harness {

RampingArrivalRate::RampingArrivalRate(double start_rate, std::vector<Stage> stages,
                                       std::int64_t max_in_flight)
    : max_in_flight_(max_in_flight) {
  double t = 0, count = 0, rate = start_rate;
  for (const auto& s : stages) {
    const double len = static_cast<double>(s.duration.count()) / 1e9;
    segments_.push_back(Segment{t, len, rate, s.target, count});
    count += (rate + s.target) / 2 * len;
    t += len;
    rate = s.target;
    duration_ += s.duration;
  }
}

std::unique_ptr<Executor> RampingArrivalRate::from_yaml(Fields& f) {
  f.reject_unknown({"name", "executor", "flow", "graceful_stop", "start_rate", "stages", "max_in_flight"});
  auto start = f.has("start_rate") ? f.number("start_rate", true, 0) : std::optional<double>(0.0);
  auto stages = parse_stages(f, "stages");
  auto max_in_flight = f.has("max_in_flight") ? f.integer("max_in_flight", true, 1)
                                               : std::optional<std::int64_t>(10'000);
  if (!start || !stages || !max_in_flight) return nullptr;
  return std::make_unique<RampingArrivalRate>(*start, std::move(*stages), *max_in_flight);
}

double RampingArrivalRate::rate_at(Nanos t) const {
  const double ts = static_cast<double>(t.count()) / 1e9;
  for (const auto& s : segments_)
    if (ts < s.start_s + s.length_s)
      return s.length_s == 0 ? s.r1 : s.r0 + (s.r1 - s.r0) * (ts - s.start_s) / s.length_s;
  return segments_.empty() ? 0 : segments_.back().r1;
}

std::optional<Nanos> RampingArrivalRate::arrival(std::int64_t i) const {
  const double n = static_cast<double>(i);
  for (const auto& s : segments_) {
    const double in_segment = (s.r0 + s.r1) / 2 * s.length_s;
    if (n >= s.count_before + in_segment) continue;
    // Solve r0*x + (r1-r0)/(2L)*x^2 = n - count_before for x in [0, L].
    const double need = n - s.count_before;
    const double a = (s.r1 - s.r0) / (2 * s.length_s);
    double x;
    if (std::abs(a) < 1e-12) {
      x = need / s.r0;
    } else {
      const double disc = s.r0 * s.r0 + 4 * a * need;
      x = (-s.r0 + std::sqrt(std::max(0.0, disc))) / (2 * a);
    }
    x = std::clamp(x, 0.0, s.length_s);
    const double at_ns = (s.start_s + x) * 1e9;
    if (at_ns >= static_cast<double>(duration_.count())) return std::nullopt;
    return Nanos(static_cast<std::int64_t>(std::llround(at_ns)));
  }
  return std::nullopt;
}

}  // namespace lab::harness
