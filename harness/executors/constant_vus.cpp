#include "harness/executors/constant_vus.hpp"

namespace lab::harness {

std::unique_ptr<Executor> ConstantVus::from_yaml(Fields& f) {
  f.reject_unknown({"name", "executor", "flow", "graceful_stop", "vus", "duration"});
  auto vus = f.integer("vus", true, 1);
  auto duration = f.duration("duration", true, true);
  if (!vus || !duration) return nullptr;
  return std::make_unique<ConstantVus>(*vus, *duration);
}

}  // namespace lab::harness
