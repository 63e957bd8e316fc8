#pragma once
// Seeded, repeatable fault injection. Rules arrive through POST /admin/faults (or
// MockLlm::add_fault, or the profile); each request asks decide() what to do to it.
//
// Repeatability: rule r's n-th matching request draws from Rng(seed, r.id, n), so the same
// seed and the same sequence of requests give the same faults. fail_first counts per rule.

#include <atomic>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <boost/json/value.hpp>

#include "common/clock/clock.hpp"
#include "mocks/llm/request.hpp"

namespace lab::mocks::llm {

struct FaultRule {
  double error_rate = 0.0;          ///< probability of answering `status` instead
  int status = 503;                 ///< for error_rate and fail_first
  int fail_first = 0;               ///< the first N requests after activation get `status`
  double latency_multiplier = 1.0;  ///< TTFT and ITL × this
  double hang_rate = 0.0;           ///< accept the request, never answer
  int disconnect_after_tokens = -1; ///< drop the connection after this many tokens…
  double disconnect_rate = 0.0;     ///< …with this probability (1.0 if only the count is given)
  int stall_after_tokens = -1;      ///< stop sending after this many tokens, keep the socket…
  double stall_rate = 0.0;          ///< …with this probability (1.0 if only the count is given)
  double malformed_rate = 0.0;      ///< probability that one event / the body is broken JSON
  Nanos delay{0};                   ///< activation delay after the rule is added
  std::optional<Nanos> duration;    ///< active for this long, then removed (none: until cleared)
  std::optional<Api> api;           ///< only requests of this API (none: all)
};

/// Parses an admin API body. Lists every problem (unknown field, wrong type, out of range).
std::variant<FaultRule, std::vector<std::string>> parse_fault_rule(const boost::json::value& json);
boost::json::object fault_rule_to_json(const FaultRule& rule);

/// A duration: a number of seconds, or a string "250ms", "30s", "2m", "1h".
std::optional<Nanos> parse_duration(const boost::json::value& value);
std::optional<Nanos> parse_duration_text(std::string_view text);

/// What to do to one request.
struct FaultDecision {
  int error_status = 0;             ///< non-zero: answer this status now
  bool hang = false;
  int disconnect_after = -1;        ///< >= 0: abort after that many tokens
  int stall_after = -1;             ///< >= 0: stop sending after that many tokens
  double malformed_at = -1.0;       ///< >= 0: break the event at this fraction of the tokens
  double latency_multiplier = 1.0;

  bool any() const {
    return error_status != 0 || hang || disconnect_after >= 0 || stall_after >= 0 ||
           malformed_at >= 0.0 || latency_multiplier != 1.0;
  }
  /// Combines another decision into this one (errors: first wins; multipliers multiply).
  void merge(const FaultDecision& other);
};

/// Parses the per-request header, e.g. "error=503", "hang", "disconnect=5", "stall=3",
/// "malformed", "latency=10", several separated by commas. Returns a message on a bad value.
std::optional<std::string> parse_fault_header(std::string_view header, FaultDecision& decision);

class FaultInjector {
 public:
  FaultInjector(Clock& clock, std::uint64_t seed) : clock_(clock), seed_(seed) {}

  /// At most this many rules at once (pending or active).
  static constexpr std::size_t kMaxRules = 1024;

  /// Adds a rule, active from now + rule.delay. Returns its id (1, 2, …), or 0 when kMaxRules
  /// rules are already there. Thread-safe.
  std::uint64_t add(FaultRule rule);
  /// Removes one rule; false if there is no such id.
  bool remove(std::uint64_t id);
  void clear();
  /// {"faults":[{id, …rule fields, matched, state: "pending"|"active", starts_in_s?,
  /// remaining_s?}]}; expired rules are gone.
  boost::json::object to_json() const;
  /// Number of rules (pending or active, possibly expired but not yet pruned).
  std::size_t size() const { return count_.load(std::memory_order_relaxed); }

  /// The faults for the next request of `api`. Lock-free when there are no rules.
  FaultDecision decide(Api api);

 private:
  struct Active {
    std::uint64_t id;
    FaultRule rule;
    TimePoint start;
    std::optional<TimePoint> end;
    std::uint64_t matched = 0;
  };
  void prune_locked(TimePoint now);

  Clock& clock_;
  std::uint64_t seed_;
  mutable std::mutex mutex_;
  std::vector<Active> rules_;
  std::uint64_t next_id_ = 1;
  std::atomic<std::size_t> count_{0};
};

}  // namespace lab::mocks::llm
