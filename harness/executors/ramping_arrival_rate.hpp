#pragma once
// ramping-arrival-rate {start_rate, stages: [{target, duration}], max_in_flight}: the arrival
// rate moves linearly from one stage's start to its target; iteration i starts when the
// integral of the rate reaches i.

#include <vector>

#include "harness/executors/executor.hpp"

namespace lab::harness {

class RampingArrivalRate final : public Executor {
 public:
  RampingArrivalRate(double start_rate, std::vector<Stage> stages, std::int64_t max_in_flight);
  static std::unique_ptr<Executor> from_yaml(Fields& fields);

  LoadModel model() const override { return LoadModel::kOpen; }
  Nanos duration() const override { return duration_; }
  std::optional<Nanos> arrival(std::int64_t i) const override;
  std::int64_t max_in_flight() const override { return max_in_flight_; }
  /// The planned arrival rate at offset t (for tests and reports).
  double rate_at(Nanos t) const;

 private:
  struct Segment {
    double start_s, length_s, r0, r1, count_before;
  };
  std::vector<Segment> segments_;
  Nanos duration_{0};
  std::int64_t max_in_flight_;
};

}  // namespace lab::harness
