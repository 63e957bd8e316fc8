#include "mocks/llm/rate_limiter.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>

namespace lab::mocks::llm {

namespace {

constexpr double kSecondsPerMinute = 60.0;

Nanos seconds_to_nanos(double s) {
  return Nanos(static_cast<Nanos::rep>(std::ceil(std::max(0.0, s) * 1e9)));
}

}  // namespace

RateLimiter::RateLimiter(Clock& clock, RateLimit default_limit,
                         std::unordered_map<std::string, RateLimit> keys, std::size_t max_keys)
    : clock_(clock), default_(default_limit), keys_(std::move(keys)), max_keys_(max_keys) {}

RateLimitStatus RateLimiter::admit(std::string_view key, std::int64_t tokens) {
  RateLimitStatus status;
  const auto configured = keys_.find(std::string(key));
  const RateLimit limit = configured != keys_.end() ? configured->second : default_;
  if (!limit.any()) return status;
  status.limited = true;

  const TimePoint now = clock_.now();
  std::lock_guard lock(mutex_);
  auto it = buckets_.find(std::string(key));
  if (it == buckets_.end()) {
    const std::string bucket_key = buckets_.size() < max_keys_ ? std::string(key) : std::string("\x01overflow");
    it = buckets_
             .try_emplace(bucket_key, Bucket{static_cast<double>(limit.rpm),
                                             static_cast<double>(limit.tpm), now})
             .first;
  }
  Bucket& b = it->second;
  const double elapsed = std::chrono::duration<double>(now - b.updated).count();
  b.updated = now;
  const double request_rate = static_cast<double>(limit.rpm) / kSecondsPerMinute;  // per second
  const double token_rate = static_cast<double>(limit.tpm) / kSecondsPerMinute;
  if (limit.rpm > 0) b.requests = std::min<double>(limit.rpm, b.requests + elapsed * request_rate);
  if (limit.tpm > 0) b.tokens = std::min<double>(limit.tpm, b.tokens + elapsed * token_rate);

  const bool requests_ok = limit.rpm == 0 || b.requests >= 1.0;
  const bool tokens_ok = limit.tpm == 0 || b.tokens >= static_cast<double>(tokens);
  status.too_large = limit.tpm > 0 && tokens > limit.tpm;
  if (requests_ok && tokens_ok) {
    if (limit.rpm > 0) b.requests -= 1.0;
    if (limit.tpm > 0) b.tokens -= static_cast<double>(tokens);
  } else {
    status.allowed = false;
    status.reason = requests_ok ? "tokens" : "requests";
    double wait = 0.0;
    if (!requests_ok) wait = std::max(wait, (1.0 - b.requests) / request_rate);
    if (!tokens_ok && !status.too_large) {
      wait = std::max(wait, (static_cast<double>(tokens) - b.tokens) / token_rate);
    }
    if (status.too_large) wait = std::max(wait, kSecondsPerMinute);
    status.retry_after = seconds_to_nanos(wait);
  }
  if (limit.rpm > 0) {
    status.limit_requests = limit.rpm;
    status.remaining_requests = static_cast<std::int64_t>(std::floor(b.requests));
    status.reset_requests = seconds_to_nanos((limit.rpm - b.requests) / request_rate);
  }
  if (limit.tpm > 0) {
    status.limit_tokens = limit.tpm;
    status.remaining_tokens = static_cast<std::int64_t>(std::floor(b.tokens));
    status.reset_tokens = seconds_to_nanos((limit.tpm - b.tokens) / token_rate);
  }
  return status;
}

std::string go_duration(Nanos d) {
  const std::int64_t ms = std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
  if (ms < 1000) return std::to_string(ms) + "ms";
  const std::int64_t hours = ms / 3'600'000;
  const std::int64_t minutes = (ms / 60'000) % 60;
  const std::int64_t millis = ms % 60'000;
  std::string out;
  if (hours > 0) out += std::to_string(hours) + "h";
  if (hours > 0 || minutes > 0) out += std::to_string(minutes) + "m";
  out += std::to_string(millis / 1000);
  if (millis % 1000 != 0) {
    char frac[8];
    std::snprintf(frac, sizeof(frac), ".%03d", static_cast<int>(millis % 1000));
    std::string f(frac);
    while (f.back() == '0') f.pop_back();
    out += f;
  }
  out += "s";
  return out;
}

std::string retry_after_seconds(Nanos d) {
  const auto s = std::chrono::ceil<std::chrono::seconds>(d).count();
  return std::to_string(std::max<std::int64_t>(1, s));
}

void add_openai_rate_headers(const RateLimitStatus& status, HeaderList& headers) {
  if (!status.limited) return;
  if (status.limit_requests > 0) {
    headers.emplace_back("x-ratelimit-limit-requests", std::to_string(status.limit_requests));
    headers.emplace_back("x-ratelimit-remaining-requests", std::to_string(status.remaining_requests));
    headers.emplace_back("x-ratelimit-reset-requests", go_duration(status.reset_requests));
  }
  if (status.limit_tokens > 0) {
    headers.emplace_back("x-ratelimit-limit-tokens", std::to_string(status.limit_tokens));
    headers.emplace_back("x-ratelimit-remaining-tokens", std::to_string(status.remaining_tokens));
    headers.emplace_back("x-ratelimit-reset-tokens", go_duration(status.reset_tokens));
  }
  if (!status.allowed) {
    headers.emplace_back("retry-after", retry_after_seconds(status.retry_after));
    headers.emplace_back(
        "retry-after-ms",
        std::to_string(std::chrono::ceil<std::chrono::milliseconds>(status.retry_after).count()));
  }
}

namespace {

std::string rfc3339(std::chrono::system_clock::time_point t) {
  const std::time_t secs = std::chrono::system_clock::to_time_t(
      std::chrono::ceil<std::chrono::seconds>(t));
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace

void add_anthropic_rate_headers(const RateLimitStatus& status, HeaderList& headers,
                                std::chrono::system_clock::time_point wall_now) {
  if (!status.limited) return;
  const auto wall = [&](Nanos d) {
    return rfc3339(wall_now + std::chrono::duration_cast<std::chrono::system_clock::duration>(d));
  };
  if (status.limit_requests > 0) {
    headers.emplace_back("anthropic-ratelimit-requests-limit", std::to_string(status.limit_requests));
    headers.emplace_back("anthropic-ratelimit-requests-remaining", std::to_string(status.remaining_requests));
    headers.emplace_back("anthropic-ratelimit-requests-reset", wall(status.reset_requests));
  }
  if (status.limit_tokens > 0) {
    headers.emplace_back("anthropic-ratelimit-tokens-limit", std::to_string(status.limit_tokens));
    headers.emplace_back("anthropic-ratelimit-tokens-remaining", std::to_string(status.remaining_tokens));
    headers.emplace_back("anthropic-ratelimit-tokens-reset", wall(status.reset_tokens));
  }
  if (!status.allowed) headers.emplace_back("retry-after", retry_after_seconds(status.retry_after));
}

}  // namespace lab::mocks::llm
