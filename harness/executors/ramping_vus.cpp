#include "harness/executors/ramping_vus.hpp"

#include <algorithm>
#include <cmath>

namespace lab::harness {

RampingVus::RampingVus(std::int64_t start_vus, std::vector<Stage> stages)
    : start_vus_(start_vus), stages_(std::move(stages)), max_vus_(start_vus) {
  for (const auto& s : stages_) {
    duration_ += s.duration;
    max_vus_ = std::max<std::int64_t>(max_vus_, static_cast<std::int64_t>(s.target));
  }
}

std::unique_ptr<Executor> RampingVus::from_yaml(Fields& f) {
  f.reject_unknown({"name", "executor", "flow", "graceful_stop", "start_vus", "stages"});
  auto start = f.has("start_vus") ? f.integer("start_vus", true, 0) : std::optional<std::int64_t>(0);
  auto stages = parse_stages(f, "stages");
  if (!start || !stages) return nullptr;
  return std::make_unique<RampingVus>(*start, std::move(*stages));
}

std::int64_t RampingVus::vus_at(Nanos t) const {
  if (t >= duration_) return 0;
  double from = static_cast<double>(start_vus_);
  Nanos begin{0};
  for (const auto& s : stages_) {
    if (t < begin + s.duration) {
      const double frac = s.duration.count() == 0
                              ? 1.0
                              : static_cast<double>((t - begin).count()) / static_cast<double>(s.duration.count());
      return static_cast<std::int64_t>(std::floor(from + (s.target - from) * frac + 1e-9));
    }
    begin += s.duration;
    from = s.target;
  }
  return static_cast<std::int64_t>(from);
}

}  // namespace lab::harness
