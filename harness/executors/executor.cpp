#include "harness/executors/executor.hpp"

#include "harness/executors/constant_arrival_rate.hpp"
#include "harness/executors/constant_vus.hpp"
#include "harness/executors/ramping_arrival_rate.hpp"
#include "harness/executors/ramping_vus.hpp"

namespace lab::harness {

void ExecutorRegistry::add(std::string name, ExecutorFactory factory) {
  factories_[std::move(name)] = std::move(factory);
}

const ExecutorFactory* ExecutorRegistry::find(const std::string& name) const {
  auto it = factories_.find(name);
  return it == factories_.end() ? nullptr : &it->second;
}

std::string ExecutorRegistry::names() const {
  std::string out;
  for (const auto& [name, f] : factories_) out += (out.empty() ? "" : ", ") + name;
  return out;
}

void register_builtin_executors(ExecutorRegistry& registry) {
  registry.add("constant-arrival-rate", &ConstantArrivalRate::from_yaml);
  registry.add("ramping-arrival-rate", &RampingArrivalRate::from_yaml);
  registry.add("constant-vus", &ConstantVus::from_yaml);
  registry.add("ramping-vus", &RampingVus::from_yaml);
}

std::optional<std::vector<Stage>> parse_stages(Fields& fields, const char* key) {
  const YAML::Node list = fields.node()[key];
  if (!list.IsDefined() || list.IsNull()) {
    fields.diag().error(fields.node(), fields.path(key), "missing (a list of {target, duration} required)");
    return std::nullopt;
  }
  if (!list.IsSequence() || list.size() == 0) {
    fields.diag().error(list, fields.path(key), "expected a non-empty list of {target, duration}");
    return std::nullopt;
  }
  std::vector<Stage> stages;
  bool ok = true;
  for (std::size_t i = 0; i < list.size(); ++i) {
    Fields f(list[i], fields.path(key) + "[" + std::to_string(i) + "]", fields.diag(), fields.time_scale());
    f.reject_unknown({"target", "duration"});
    auto target = f.number("target", true, 0);
    auto duration = f.duration("duration", true, true);
    if (!target || !duration) {
      ok = false;
      continue;
    }
    stages.push_back(Stage{*duration, *target});
  }
  if (!ok) return std::nullopt;
  return stages;
}

}  // namespace lab::harness
