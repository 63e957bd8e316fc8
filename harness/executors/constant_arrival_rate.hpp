#pragma once
// constant-arrival-rate {rate, duration, max_in_flight}: iteration i starts at i / rate.

#include "harness/executors/executor.hpp"

namespace lab::harness {

class ConstantArrivalRate final : public Executor {
 public:
  ConstantArrivalRate(double rate_per_s, Nanos duration, std::int64_t max_in_flight);
  static std::unique_ptr<Executor> from_yaml(Fields& fields);

  LoadModel model() const override { return LoadModel::kOpen; }
  Nanos duration() const override { return duration_; }
  std::optional<Nanos> arrival(std::int64_t i) const override;
  std::int64_t max_in_flight() const override { return max_in_flight_; }

 private:
  double rate_per_s_;
  Nanos duration_;
  std::int64_t max_in_flight_;
};

}  // namespace lab::harness
