#pragma once
// Per-API-key rate limits (requests and tokens per minute) as the providers enforce them: token
// buckets that refill continuously, a 429 with Retry-After when either runs dry, and the
// x-ratelimit-* (OpenAI) / anthropic-ratelimit-* (Anthropic) headers on every response.

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/clock/clock.hpp"

namespace lab::mocks::llm {

struct RateLimit {
  std::int64_t rpm = 0;  ///< requests per minute; 0 = unlimited
  std::int64_t tpm = 0;  ///< tokens per minute (input + planned output); 0 = unlimited
  bool any() const { return rpm > 0 || tpm > 0; }
};

struct RateLimitStatus {
  bool limited = false;    ///< the key has a limit (send the headers)
  bool allowed = true;
  bool too_large = false;  ///< the request alone exceeds the token limit: never admissible
  std::string_view reason; ///< "requests" or "tokens" when refused
  Nanos retry_after{0};    ///< when refused: until enough budget is back
  std::int64_t limit_requests = 0;
  std::int64_t remaining_requests = 0;
  Nanos reset_requests{0};  ///< until the request bucket is full again
  std::int64_t limit_tokens = 0;
  std::int64_t remaining_tokens = 0;
  Nanos reset_tokens{0};
};

using HeaderList = std::vector<std::pair<std::string, std::string>>;

class RateLimiter {
 public:
  /// `keys` override `default_limit` per API key. At most `max_keys` keys get their own
  /// buckets; keys beyond that share one overflow bucket.
  RateLimiter(Clock& clock, RateLimit default_limit,
              std::unordered_map<std::string, RateLimit> keys, std::size_t max_keys = 100'000);

  /// Charges one request of `tokens` to `key` if both buckets allow it. Thread-safe.
  RateLimitStatus admit(std::string_view key, std::int64_t tokens);

 private:
  struct Bucket {
    double requests;
    double tokens;
    TimePoint updated;
  };
  Clock& clock_;
  RateLimit default_;
  std::unordered_map<std::string, RateLimit> keys_;
  std::size_t max_keys_;
  std::mutex mutex_;
  std::unordered_map<std::string, Bucket> buckets_;
};

/// Go-style duration as OpenAI writes it: "20ms", "1s", "6m0s", "1.5s".
std::string go_duration(Nanos d);

/// x-ratelimit-limit-requests, …-remaining-…, …-reset-… (+ retry-after, retry-after-ms when
/// refused).
void add_openai_rate_headers(const RateLimitStatus& status, HeaderList& headers);
/// anthropic-ratelimit-requests-limit/-remaining/-reset (RFC 3339), the same for tokens
/// (+ retry-after when refused). `wall_now` converts the resets into timestamps.
void add_anthropic_rate_headers(const RateLimitStatus& status, HeaderList& headers,
                                std::chrono::system_clock::time_point wall_now);

/// Retry-After in whole seconds, at least 1.
std::string retry_after_seconds(Nanos d);

}  // namespace lab::mocks::llm
