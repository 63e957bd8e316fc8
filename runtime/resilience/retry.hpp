#pragma once
// Retry policies from seed 002's "Retry Strategies" table, with jitter from an injected RNG.
//
//   | Component        | Strategy    | Max Retries | Backoff                | (policy here)
//   | LLM API          | Exponential | 3           | 1s, 2s, 4s             | seed_llm_api()
//   | Tool calls       | Linear      | 2           | 500ms                  | seed_tool_calls()
//   | Checkpoint write | Exponential | 5           | 100ms, 200ms, 400ms... | seed_checkpoint_write()
//   | Memory query     | Fixed       | 2           | 100ms                  | seed_memory_query()
//   | Database         | Exponential | 3           | 500ms, 1s, 2s          | seed_database()
//
// "Max Retries" counts retries after the first attempt, so LLM calls make at most 4 attempts.
// Pure functions and a small per-operation state; no I/O, no sleeping: the caller waits the
// returned delay on its own timer.

#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "common/clock/clock.hpp"

namespace lab::resilience {

/// What went wrong with one attempt, as far as retrying is concerned.
enum class ErrorClass : std::uint8_t {
  kTimeout,          // the attempt outlived its deadline; HTTP 408
  kConnection,       // refused, reset, aborted, unreachable, broken pipe
  kServerError,      // HTTP 5xx (502/503/504 included)
  kRateLimited,      // HTTP 429
  kCircuitOpen,      // our own breaker rejected the call: fail fast (or fail over), never retry
  kClientError,      // HTTP 4xx other than 408/429: the request is wrong, retrying repeats it
  kInvalidResponse,  // malformed body, protocol violation, an unexpected non-error status
  kCancelled,        // the caller gave up (shutdown, client went away)
  kOther,            // anything unrecognised
};
inline constexpr int kErrorClassCount = 9;

/// "timeout", "connection", "server_error", "rate_limited", "circuit_open", "client_error",
/// "invalid_response", "cancelled", "other" (metric label values).
std::string_view to_string(ErrorClass error);

/// HTTP status → class: 408 timeout, 429 rate limited, 5xx server error, other 4xx client error;
/// any status below 400 is an invalid response (the caller only asks about failed attempts).
ErrorClass classify_http_status(int status);
/// Transport error → class, for codes comparable with std::errc (system/generic category;
/// Boost.System codes convert to std::error_code): timed_out → timeout; connection_refused,
/// connection_reset, connection_aborted, network_unreachable, network_down, host_unreachable,
/// broken_pipe, not_connected → connection; operation_canceled → cancelled; everything else,
/// including other categories such as asio's misc eof, → other (callers map those themselves).
ErrorClass classify_error(std::error_code error);

/// The seed's table does not say which errors are retryable; its failure-mode chart retries
/// tool timeouts and checkpoint write failures. Default: transient classes only (timeout,
/// connection, server error, rate limited).
inline constexpr std::uint32_t kDefaultRetryableMask =
    (1u << static_cast<int>(ErrorClass::kTimeout)) |
    (1u << static_cast<int>(ErrorClass::kConnection)) |
    (1u << static_cast<int>(ErrorClass::kServerError)) |
    (1u << static_cast<int>(ErrorClass::kRateLimited));

struct RetryPolicy {
  enum class Backoff { kExponential, kLinear, kFixed };

  /// Exponential: base × multiplier^(n−1); linear: base × n; fixed: base; for the n-th retry
  /// (n = 1 .. max_retries), then capped at max_delay.
  Backoff backoff = Backoff::kExponential;
  int max_retries = 3;
  Millis base_delay{1000};
  double multiplier = 2.0;
  Millis max_delay{4000};
  /// The delay actually returned is nominal × (1 + jitter_ratio × u), u uniform in [−1, 1), so
  /// the table's value is the mean. The seed gives no jitter; ±20 % chosen. 0 turns it off.
  double jitter_ratio = 0.2;
  /// Bit (1 << ErrorClass) set = that class is retried.
  std::uint32_t retryable_mask = kDefaultRetryableMask;
  /// If > 0, a Retry-After hint (e.g. from a 429 or 503) longer than the jittered delay is
  /// honoured up to this bound; 0 ignores hints.
  Millis max_retry_after{0};

  bool is_retryable(ErrorClass error) const {
    return (retryable_mask >> static_cast<int>(error)) & 1u;
  }

  /// The table's delay before retry n (1-based), without jitter. n outside 1..max_retries is
  /// clamped into it.
  Nanos nominal_delay(int retry) const;
  /// The delay before retry n with jitter drawn from rng: within
  /// [nominal × (1 − jitter_ratio), nominal × (1 + jitter_ratio)].
  Nanos next_delay(int retry, std::mt19937_64& rng) const;

  /// Every problem, one sentence each; empty when valid.
  std::vector<std::string> validate() const;

  static RetryPolicy seed_llm_api();           // exponential, 3 retries: 1 s, 2 s, 4 s
  static RetryPolicy seed_tool_calls();        // linear, 2 retries: 500 ms, 1000 ms
  static RetryPolicy seed_checkpoint_write();  // exponential, 5 retries: 100 ms … 1600 ms
  static RetryPolicy seed_memory_query();      // fixed, 2 retries: 100 ms, 100 ms
  static RetryPolicy seed_database();          // exponential, 3 retries: 500 ms, 1 s, 2 s
};

/// The verdict after a failed attempt.
struct RetryDecision {
  enum class Verdict { kRetry, kNotRetryable, kExhausted };
  Verdict verdict = Verdict::kNotRetryable;
  /// How long to wait before the next attempt (kRetry only).
  Nanos delay{0};
  /// The retry this decision schedules, 1-based (kRetry only).
  int retry = 0;
  bool should_retry() const { return verdict == Verdict::kRetry; }
};

/// The retry bookkeeping of one operation. Not thread-safe: one per operation, owned by the
/// code running it. The policy must outlive it.
class RetryState {
 public:
  explicit RetryState(const RetryPolicy& policy) : policy_(policy) {}

  /// Call after a failed attempt. `retry_after` is the server's hint, if any.
  RetryDecision on_failure(ErrorClass error, std::mt19937_64& rng,
                           std::optional<Nanos> retry_after = std::nullopt);

  /// Attempts made so far, counting the first (1 + retries scheduled).
  int attempts() const { return retries_ + 1; }
  int retries() const { return retries_; }
  /// Sum of the delays handed out.
  Nanos total_delay() const { return total_delay_; }

 private:
  const RetryPolicy& policy_;
  int retries_ = 0;
  Nanos total_delay_{0};
};

}  // namespace lab::resilience
