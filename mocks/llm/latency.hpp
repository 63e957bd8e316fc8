#pragma once
// The mock LLM's latency model: how long until the first token, how long between tokens, and
// how many tokens, as seeded draws from configured distributions, slowed down by load.
//
//   TTFT  = (base ~ ttft distribution + prefill_ms_per_token × input tokens) × load × multiplier
//   ITL_k = (itl distribution) × load(running sequences when token k is scheduled) × multiplier
//   load(n) = 1 + (time_factor_under_load − 1) × (n − 1) / (max_num_seqs − 1), clamped to ≥ 1
//
// (the load factor is llm-d-inference-sim's `time-factor-under-load`, linear between one
// running sequence and a full batch). Queueing for a batch slot adds to TTFT on top of this.
//
// Token deadlines are absolute: deadline_k = deadline_{k-1} + ITL_k, starting from the first
// token's deadline, never "now + ITL" — so a late wake-up does not push later tokens back.

#include <chrono>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>

#include "common/clock/clock.hpp"
#include "mocks/llm/rng.hpp"

namespace lab::mocks::llm {

enum class DistKind { kConstant, kNormal, kLogNormal };

std::string_view to_string(DistKind kind);
std::optional<DistKind> dist_kind_from(std::string_view name);

/// A distribution of non-negative values (milliseconds or token counts, by context).
/// Normal and log-normal are parameterised by the mean and standard deviation of the value
/// itself; draws are clamped to [min, max].
struct Distribution {
  DistKind kind = DistKind::kConstant;
  double mean = 0.0;
  double stddev = 0.0;
  double min = 0.0;
  double max = std::numeric_limits<double>::infinity();

  static Distribution constant(double value) { return {DistKind::kConstant, value, 0.0}; }
  static Distribution normal(double mean, double stddev) {
    return {DistKind::kNormal, mean, stddev};
  }
  static Distribution log_normal(double mean, double stddev) {
    return {DistKind::kLogNormal, mean, stddev};
  }

  /// One draw. Constant distributions consume no randomness.
  double sample(Rng& rng) const;
  /// The distribution's median (before clamping): what a long run's p50 converges to.
  double median() const;
};

struct LatencyProfile {
  Distribution ttft_ms = Distribution::normal(30.0, 3.0);   ///< base TTFT (prefill overhead)
  double prefill_ms_per_token = 0.2;                         ///< added per input token
  Distribution itl_ms = Distribution::normal(12.0, 1.2);   ///< inter-token latency
  /// Token wake-ups are rounded up to a multiple of this (0: exact). Streams due within one
  /// quantum are sent as one burst, which cuts timer re-arms and client wake-ups; each token
  /// is then at most this much late by design.
  Nanos pacing_quantum = Micros(250);
};

struct OutputProfile {
  /// Output length when the request does not pin it; clamped by the request's max_tokens.
  Distribution tokens = [] {
    Distribution d = Distribution::log_normal(150.0, 75.0);
    d.min = 1.0;
    d.max = 4096.0;
    return d;
  }();
  /// true: every request generates exactly max_tokens (vLLM's ignore_eos), when it gives one.
  bool use_max_tokens = false;
};

struct LoadProfile {
  int max_num_seqs = 256;               ///< batch slots: sequences generated concurrently
  int max_waiting = 1024;               ///< queue beyond the slots; more → 429
  double time_factor_under_load = 2.0;  ///< latency multiplier at a full batch
  std::chrono::seconds retry_after{1};  ///< Retry-After on a full queue
};

/// load(n) as above; 1.0 for n <= 1 or a single-slot batch.
double load_factor(const LoadProfile& load, int running);

/// How a request is timed: the profile's latencies, optionally pinned per request
/// (x-mock-ttft-ms / x-mock-itl-ms headers), times a fault's latency multiplier.
struct LatencyPlan {
  Distribution ttft_ms;
  double prefill_ms_per_token = 0.0;
  Distribution itl_ms;
  double multiplier = 1.0;

  static LatencyPlan from(const LatencyProfile& profile) {
    return {profile.ttft_ms, profile.prefill_ms_per_token, profile.itl_ms, 1.0};
  }
  /// TTFT for `input_tokens` with `running` sequences in the batch. Consumes rng draws.
  Nanos ttft(Rng& rng, int input_tokens, const LoadProfile& load, int running) const;
  /// The gap before the next token with `running` sequences in the batch. Consumes rng draws.
  Nanos itl(Rng& rng, const LoadProfile& load, int running) const;
};

enum class FinishReason { kStop, kLength, kToolCalls };

struct OutputLength {
  int tokens = 0;
  FinishReason finish = FinishReason::kStop;
};

/// The number of tokens to generate: `pinned` (x-mock-output-tokens) if given; else exactly
/// max_tokens when the profile or the request (ignore_eos) asks for that; else a draw from the
/// profile. Cut at max_tokens, with finish_reason "length" when it reaches it. Always >= 1.
OutputLength output_length(const OutputProfile& profile, Rng& rng, std::optional<int> max_tokens,
                           bool ignore_eos, std::optional<int> pinned);

/// Absolute token deadlines for one stream.
class TokenPacer {
 public:
  /// `first` is the deadline of token 0 (request admission + TTFT).
  explicit TokenPacer(TimePoint first) : deadline_(first) {}
  /// When the current token is due.
  TimePoint deadline() const { return deadline_; }
  /// Moves to the next token, due `gap` after the current one's deadline (not after now).
  void advance(Nanos gap) { deadline_ += gap; }
  /// How late `sent` is for the current token (0 if on time or early).
  Nanos lateness(TimePoint sent) const { return sent > deadline_ ? sent - deadline_ : Nanos(0); }

 private:
  TimePoint deadline_;
};

}  // namespace lab::mocks::llm
