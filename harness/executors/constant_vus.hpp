#pragma once
// constant-vus {vus, duration}: a fixed number of virtual users loop the flow (closed model).

#include "harness/executors/executor.hpp"

namespace lab::harness {

class ConstantVus final : public Executor {
 public:
  ConstantVus(std::int64_t vus, Nanos duration) : vus_(vus), duration_(duration) {}
  static std::unique_ptr<Executor> from_yaml(Fields& fields);

  LoadModel model() const override { return LoadModel::kClosed; }
  Nanos duration() const override { return duration_; }
  std::int64_t vus_at(Nanos t) const override { return t < duration_ ? vus_ : 0; }
  std::int64_t max_vus() const override { return vus_; }

 private:
  std::int64_t vus_;
  Nanos duration_;
};

}  // namespace lab::harness
