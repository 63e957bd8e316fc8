#include "harness/executors/constant_arrival_rate.hpp"

#include <cmath>

namespace lab::harness {

ConstantArrivalRate::ConstantArrivalRate(double rate_per_s, Nanos duration, std::int64_t max_in_flight)
    : rate_per_s_(rate_per_s), duration_(duration), max_in_flight_(max_in_flight) {}

std::unique_ptr<Executor> ConstantArrivalRate::from_yaml(Fields& f) {
  std::initializer_list<std::string_view> keys = {"name", "executor", "flow", "graceful_stop",
                                                  "rate", "duration", "max_in_flight"};
  f.reject_unknown(keys);
  auto rate = f.rate("rate", true);
  auto duration = f.duration("duration", true, true);
  auto max_in_flight = f.has("max_in_flight") ? f.integer("max_in_flight", true, 1)
                                               : std::optional<std::int64_t>(10'000);
  if (!rate || !duration || !max_in_flight) return nullptr;
  return std::make_unique<ConstantArrivalRate>(*rate, *duration, *max_in_flight);
}

std::optional<Nanos> ConstantArrivalRate::arrival(std::int64_t i) const {
  // Computed from i (not accumulated) so rounding never drifts over long phases.
  const double at_ns = static_cast<double>(i) * 1e9 / rate_per_s_;
  if (at_ns >= static_cast<double>(duration_.count())) return std::nullopt;
  return Nanos(static_cast<std::int64_t>(std::llround(at_ns)));
}

}  // namespace lab::harness
