#pragma once
// ramping-vus {start_vus, stages: [{target, duration}]}: the VU count moves linearly from each
// stage's start to its target (rounded down, like k6).

#include <vector>

#include "harness/executors/executor.hpp"

namespace lab::harness {

class RampingVus final : public Executor {
 public:
  RampingVus(std::int64_t start_vus, std::vector<Stage> stages);
  static std::unique_ptr<Executor> from_yaml(Fields& fields);

  LoadModel model() const override { return LoadModel::kClosed; }
  Nanos duration() const override { return duration_; }
  std::int64_t vus_at(Nanos t) const override;
  std::int64_t max_vus() const override { return max_vus_; }

 private:
  std::int64_t start_vus_;
  std::vector<Stage> stages_;
  Nanos duration_{0};
  std::int64_t max_vus_ = 0;
};

}  // namespace lab::harness
