#include "runtime/resilience/retry.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace lab::resilience {
namespace {

constexpr int kMaxRetriesLimit = 100;
constexpr std::uint32_t kAllClassesMask = (1u << kErrorClassCount) - 1;

// Uniform in [0, 1) from the top 53 bits: the same sequence on every standard library, unlike
// std::uniform_real_distribution whose algorithm is unspecified.
double unit_interval(std::mt19937_64& rng) {
  return static_cast<double>(rng() >> 11) * 0x1.0p-53;
}

std::string format_double(double value) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%g", value);
  return buffer;
}

RetryPolicy make(RetryPolicy::Backoff backoff, int max_retries, Millis base, Millis max) {
  RetryPolicy policy;
  policy.backoff = backoff;
  policy.max_retries = max_retries;
  policy.base_delay = base;
  policy.multiplier = 2.0;
  policy.max_delay = max;
  return policy;
}

}  // namespace

std::string_view to_string(ErrorClass error) {
  switch (error) {
    case ErrorClass::kTimeout: return "timeout";
    case ErrorClass::kConnection: return "connection";
    case ErrorClass::kServerError: return "server_error";
    case ErrorClass::kRateLimited: return "rate_limited";
    case ErrorClass::kCircuitOpen: return "circuit_open";
    case ErrorClass::kClientError: return "client_error";
    case ErrorClass::kInvalidResponse: return "invalid_response";
    case ErrorClass::kCancelled: return "cancelled";
    case ErrorClass::kOther: return "other";
  }
  return "other";
}

ErrorClass classify_http_status(int status) {
  if (status == 408) return ErrorClass::kTimeout;
  if (status == 429) return ErrorClass::kRateLimited;
  if (status >= 500 && status <= 599) return ErrorClass::kServerError;
  if (status >= 400 && status <= 499) return ErrorClass::kClientError;
  return ErrorClass::kInvalidResponse;
}

ErrorClass classify_error(std::error_code error) {
  if (error == std::errc::timed_out) return ErrorClass::kTimeout;
  if (error == std::errc::operation_canceled) return ErrorClass::kCancelled;
  for (std::errc transient :
       {std::errc::connection_refused, std::errc::connection_reset,
        std::errc::connection_aborted, std::errc::network_unreachable, std::errc::network_down,
        std::errc::host_unreachable, std::errc::broken_pipe, std::errc::not_connected}) {
    if (error == transient) return ErrorClass::kConnection;
  }
  return ErrorClass::kOther;
}

Nanos RetryPolicy::nominal_delay(int retry) const {
  const int n = std::clamp(retry, 1, std::max(1, max_retries));
  const double base_ns = static_cast<double>(Nanos(base_delay).count());
  double ns = base_ns;
  switch (backoff) {
    case Backoff::kExponential: ns = base_ns * std::pow(multiplier, n - 1); break;
    case Backoff::kLinear: ns = base_ns * n; break;
    case Backoff::kFixed: break;
  }
  ns = std::min(ns, static_cast<double>(Nanos(max_delay).count()));
  return Nanos(static_cast<Nanos::rep>(std::llround(ns)));
}

Nanos RetryPolicy::next_delay(int retry, std::mt19937_64& rng) const {
  const Nanos nominal = nominal_delay(retry);
  if (jitter_ratio <= 0.0) return nominal;
  const double u = 2.0 * unit_interval(rng) - 1.0;  // [-1, 1)
  const double ns = static_cast<double>(nominal.count()) * (1.0 + jitter_ratio * u);
  return Nanos(static_cast<Nanos::rep>(std::llround(std::max(0.0, ns))));
}

std::vector<std::string> RetryPolicy::validate() const {
  std::vector<std::string> problems;
  if (max_retries < 0 || max_retries > kMaxRetriesLimit) {
    problems.push_back("max_retries must be in [0, " + std::to_string(kMaxRetriesLimit) +
                       "], got " + std::to_string(max_retries));
  }
  if (base_delay < Millis::zero()) {
    problems.push_back("base_delay must be >= 0, got " + std::to_string(base_delay.count()) +
                       " ms");
  }
  if (backoff == Backoff::kExponential && !(multiplier >= 1.0)) {
    problems.push_back("multiplier must be >= 1 for exponential backoff, got " +
                       format_double(multiplier));
  }
  if (max_delay < base_delay) {
    problems.push_back("max_delay (" + std::to_string(max_delay.count()) +
                       " ms) must be >= base_delay (" + std::to_string(base_delay.count()) +
                       " ms)");
  }
  if (!(jitter_ratio >= 0.0 && jitter_ratio < 1.0)) {
    problems.push_back("jitter_ratio must be in [0, 1), got " + format_double(jitter_ratio));
  }
  if (max_retry_after < Millis::zero()) {
    problems.push_back("max_retry_after must be >= 0 (0 ignores hints), got " +
                       std::to_string(max_retry_after.count()) + " ms");
  }
  if ((retryable_mask & ~kAllClassesMask) != 0) {
    problems.push_back("retryable_mask has bits beyond the " + std::to_string(kErrorClassCount) +
                       " error classes");
  }
  return problems;
}

RetryPolicy RetryPolicy::seed_llm_api() {
  return make(Backoff::kExponential, 3, Millis(1000), Millis(4000));
}
RetryPolicy RetryPolicy::seed_tool_calls() {
  return make(Backoff::kLinear, 2, Millis(500), Millis(1000));
}
RetryPolicy RetryPolicy::seed_checkpoint_write() {
  return make(Backoff::kExponential, 5, Millis(100), Millis(1600));
}
RetryPolicy RetryPolicy::seed_memory_query() {
  return make(Backoff::kFixed, 2, Millis(100), Millis(100));
}
RetryPolicy RetryPolicy::seed_database() {
  return make(Backoff::kExponential, 3, Millis(500), Millis(2000));
}

RetryDecision RetryState::on_failure(ErrorClass error, std::mt19937_64& rng,
                                     std::optional<Nanos> retry_after) {
  RetryDecision decision;
  if (!policy_.is_retryable(error)) {
    decision.verdict = RetryDecision::Verdict::kNotRetryable;
    return decision;
  }
  if (retries_ >= policy_.max_retries) {
    decision.verdict = RetryDecision::Verdict::kExhausted;
    return decision;
  }
  ++retries_;
  Nanos delay = policy_.next_delay(retries_, rng);
  if (retry_after && policy_.max_retry_after > Millis::zero()) {
    delay = std::max(delay, std::min<Nanos>(*retry_after, policy_.max_retry_after));
  }
  decision.verdict = RetryDecision::Verdict::kRetry;
  decision.delay = delay;
  decision.retry = retries_;
  total_delay_ += delay;
  return decision;
}

}  // namespace lab::resilience
