#include "mocks/llm/latency.hpp"

#include <algorithm>
#include <cmath>

namespace lab::mocks::llm {

std::string_view to_string(DistKind kind) {
  switch (kind) {
    case DistKind::kConstant: return "constant";
    case DistKind::kNormal: return "normal";
    case DistKind::kLogNormal: return "lognormal";
  }
  return "constant";
}

std::optional<DistKind> dist_kind_from(std::string_view name) {
  if (name == "constant") return DistKind::kConstant;
  if (name == "normal") return DistKind::kNormal;
  if (name == "lognormal" || name == "log-normal" || name == "log_normal") {
    return DistKind::kLogNormal;
  }
  return std::nullopt;
}

double Distribution::sample(Rng& rng) const {
  double value = mean;
  switch (kind) {
    case DistKind::kConstant:
      break;
    case DistKind::kNormal:
      value = mean + stddev * rng.normal();
      break;
    case DistKind::kLogNormal: {
      if (mean <= 0.0) {
        value = 0.0;
        break;
      }
      // Parameters of the underlying normal from the mean and stddev of the value itself.
      const double sigma2 = std::log1p((stddev * stddev) / (mean * mean));
      const double mu = std::log(mean) - sigma2 / 2.0;
      value = std::exp(mu + std::sqrt(sigma2) * rng.normal());
      break;
    }
  }
  return std::clamp(value, std::max(min, 0.0), max);
}

double Distribution::median() const {
  if (kind == DistKind::kLogNormal && mean > 0.0) {
    const double sigma2 = std::log1p((stddev * stddev) / (mean * mean));
    return std::exp(std::log(mean) - sigma2 / 2.0);
  }
  return mean;
}

double load_factor(const LoadProfile& load, int running) {
  if (running <= 1 || load.max_num_seqs <= 1) return 1.0;
  const double fill = std::min(1.0, static_cast<double>(running - 1) / (load.max_num_seqs - 1));
  return std::max(1.0, 1.0 + (load.time_factor_under_load - 1.0) * fill);
}

namespace {
Nanos from_ms(double ms) { return Nanos(static_cast<Nanos::rep>(std::llround(ms * 1e6))); }
}  // namespace

Nanos LatencyPlan::ttft(Rng& rng, int input_tokens, const LoadProfile& load, int running) const {
  const double base = ttft_ms.sample(rng);
  const double prefill = prefill_ms_per_token * std::max(0, input_tokens);
  return from_ms((base + prefill) * load_factor(load, running) * multiplier);
}

Nanos LatencyPlan::itl(Rng& rng, const LoadProfile& load, int running) const {
  return from_ms(itl_ms.sample(rng) * load_factor(load, running) * multiplier);
}

OutputLength output_length(const OutputProfile& profile, Rng& rng, std::optional<int> max_tokens,
                           bool ignore_eos, std::optional<int> pinned) {
  if (max_tokens && !pinned && (profile.use_max_tokens || ignore_eos)) {
    return {std::max(1, *max_tokens), FinishReason::kLength};
  }
  const int drawn =
      pinned ? std::max(1, *pinned)
             : std::max(1, static_cast<int>(std::lround(profile.tokens.sample(rng))));
  if (max_tokens && drawn >= *max_tokens) return {std::max(1, *max_tokens), FinishReason::kLength};
  return {drawn, FinishReason::kStop};
}

}  // namespace lab::mocks::llm
