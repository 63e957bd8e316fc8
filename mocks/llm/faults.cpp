#include "mocks/llm/faults.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>

#include "mocks/llm/rng.hpp"

namespace lab::mocks::llm {

namespace json = boost::json;

namespace {

std::optional<double> as_number(const json::value& v) {
  if (v.is_number()) return v.to_number<double>();
  return std::nullopt;
}

std::optional<std::int64_t> as_integer(const json::value& v) {
  if (v.is_int64()) return v.get_int64();
  if (v.is_uint64() && v.get_uint64() <= static_cast<std::uint64_t>(INT64_MAX)) {
    return static_cast<std::int64_t>(v.get_uint64());
  }
  if (v.is_double() && std::floor(v.get_double()) == v.get_double()) {
    return static_cast<std::int64_t>(v.get_double());
  }
  return std::nullopt;
}

double seconds(Nanos d) { return std::chrono::duration<double>(d).count(); }

}  // namespace

std::optional<Nanos> parse_duration_text(std::string_view text) {
  double value = 0.0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || value < 0.0) return std::nullopt;
  const std::string_view unit(end, static_cast<std::size_t>(text.data() + text.size() - end));
  double scale = 0.0;
  if (unit.empty() || unit == "s") scale = 1e9;
  else if (unit == "ms") scale = 1e6;
  else if (unit == "us") scale = 1e3;
  else if (unit == "m") scale = 60e9;
  else if (unit == "h") scale = 3600e9;
  else return std::nullopt;
  return Nanos(static_cast<Nanos::rep>(std::llround(value * scale)));
}

std::optional<Nanos> parse_duration(const json::value& value) {
  if (value.is_number()) {
    const double s = value.to_number<double>();
    if (s < 0.0) return std::nullopt;
    return Nanos(static_cast<Nanos::rep>(std::llround(s * 1e9)));
  }
  if (value.is_string()) return parse_duration_text(value.get_string());
  return std::nullopt;
}

std::variant<FaultRule, std::vector<std::string>> parse_fault_rule(const json::value& body) {
  std::vector<std::string> errors;
  FaultRule rule;
  const json::object* obj = body.if_object();
  if (!obj) return std::vector<std::string>{"body: expected a JSON object"};

  auto rate = [&](std::string_view key, const json::value& v, double& out) {
    const std::optional<double> x = as_number(v);
    if (!x || *x < 0.0 || *x > 1.0) {
      errors.push_back(std::string(key) + ": expected a number in [0, 1]");
    } else {
      out = *x;
    }
  };
  auto count = [&](std::string_view key, const json::value& v, int& out) {
    const std::optional<std::int64_t> x = as_integer(v);
    if (!x || *x < 0 || *x > 1'000'000'000) {
      errors.push_back(std::string(key) + ": expected a non-negative integer");
    } else {
      out = static_cast<int>(*x);
    }
  };
  bool disconnect_rate_given = false;
  bool stall_rate_given = false;
  for (const auto& [key, value] : *obj) {
    if (key == "error_rate") rate(key, value, rule.error_rate);
    else if (key == "hang_rate") rate(key, value, rule.hang_rate);
    else if (key == "malformed_rate") rate(key, value, rule.malformed_rate);
    else if (key == "disconnect_rate") { rate(key, value, rule.disconnect_rate); disconnect_rate_given = true; }
    else if (key == "stall_rate") { rate(key, value, rule.stall_rate); stall_rate_given = true; }
    else if (key == "disconnect_after_tokens") count(key, value, rule.disconnect_after_tokens);
    else if (key == "stall_after_tokens") count(key, value, rule.stall_after_tokens);
    else if (key == "fail_first") count(key, value, rule.fail_first);
    else if (key == "status") {
      const std::optional<std::int64_t> x = as_integer(value);
      if (!x || *x < 400 || *x > 599) errors.push_back("status: expected an HTTP error status in [400, 599]");
      else rule.status = static_cast<int>(*x);
    } else if (key == "latency_multiplier") {
      const std::optional<double> x = as_number(value);
      if (!x || *x <= 0.0 || *x > 10'000.0) errors.push_back("latency_multiplier: expected a number in (0, 10000]");
      else rule.latency_multiplier = *x;
    } else if (key == "duration") {
      const std::optional<Nanos> d = parse_duration(value);
      if (!d || *d <= Nanos(0)) errors.push_back("duration: expected seconds > 0 or a string like \"30s\"");
      else rule.duration = *d;
    } else if (key == "delay") {
      const std::optional<Nanos> d = parse_duration(value);
      if (!d) errors.push_back("delay: expected seconds >= 0 or a string like \"30s\"");
      else rule.delay = *d;
    } else if (key == "api") {
      if (value.is_string() && value.get_string() == "openai") rule.api = Api::kOpenAi;
      else if (value.is_string() && value.get_string() == "anthropic") rule.api = Api::kAnthropic;
      else errors.push_back("api: expected \"openai\" or \"anthropic\"");
    } else {
      errors.push_back(std::string(key) + ": unknown field (expected error_rate, status, fail_first, "
                       "latency_multiplier, hang_rate, disconnect_after_tokens, disconnect_rate, "
                       "stall_after_tokens, stall_rate, malformed_rate, delay, duration, api)");
    }
  }
  if (rule.disconnect_after_tokens >= 0 && !disconnect_rate_given) rule.disconnect_rate = 1.0;
  if (rule.stall_after_tokens >= 0 && !stall_rate_given) rule.stall_rate = 1.0;
  if (disconnect_rate_given && rule.disconnect_after_tokens < 0) rule.disconnect_after_tokens = 0;
  if (stall_rate_given && rule.stall_after_tokens < 0) rule.stall_after_tokens = 0;
  if (errors.empty() && rule.error_rate == 0.0 && rule.fail_first == 0 &&
      rule.latency_multiplier == 1.0 && rule.hang_rate == 0.0 && rule.disconnect_rate == 0.0 &&
      rule.stall_rate == 0.0 && rule.malformed_rate == 0.0) {
    errors.push_back("body: the rule has no effect (set error_rate, fail_first, latency_multiplier, "
                     "hang_rate, disconnect_after_tokens, stall_after_tokens or malformed_rate)");
  }
  if (!errors.empty()) return errors;
  return rule;
}

json::object fault_rule_to_json(const FaultRule& rule) {
  json::object o;
  if (rule.error_rate > 0.0) o["error_rate"] = rule.error_rate;
  if (rule.fail_first > 0) o["fail_first"] = rule.fail_first;
  if (rule.error_rate > 0.0 || rule.fail_first > 0) o["status"] = rule.status;
  if (rule.latency_multiplier != 1.0) o["latency_multiplier"] = rule.latency_multiplier;
  if (rule.hang_rate > 0.0) o["hang_rate"] = rule.hang_rate;
  if (rule.disconnect_rate > 0.0) {
    o["disconnect_after_tokens"] = rule.disconnect_after_tokens;
    o["disconnect_rate"] = rule.disconnect_rate;
  }
  if (rule.stall_rate > 0.0) {
    o["stall_after_tokens"] = rule.stall_after_tokens;
    o["stall_rate"] = rule.stall_rate;
  }
  if (rule.malformed_rate > 0.0) o["malformed_rate"] = rule.malformed_rate;
  if (rule.delay > Nanos(0)) o["delay"] = seconds(rule.delay);
  if (rule.duration) o["duration"] = seconds(*rule.duration);
  if (rule.api) o["api"] = to_string(*rule.api);
  return o;
}

void FaultDecision::merge(const FaultDecision& other) {
  if (error_status == 0) error_status = other.error_status;
  hang = hang || other.hang;
  if (disconnect_after < 0 || (other.disconnect_after >= 0 && other.disconnect_after < disconnect_after)) {
    disconnect_after = other.disconnect_after;
  }
  if (stall_after < 0 || (other.stall_after >= 0 && other.stall_after < stall_after)) {
    stall_after = other.stall_after;
  }
  if (malformed_at < 0.0) malformed_at = other.malformed_at;
  latency_multiplier *= other.latency_multiplier;
}

std::optional<std::string> parse_fault_header(std::string_view header, FaultDecision& decision) {
  while (!header.empty()) {
    const std::size_t comma = header.find(',');
    std::string_view item = header.substr(0, comma);
    header = comma == std::string_view::npos ? std::string_view() : header.substr(comma + 1);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    if (item.empty()) continue;
    const std::size_t eq = item.find('=');
    const std::string_view name = item.substr(0, eq);
    const std::string_view arg = eq == std::string_view::npos ? std::string_view() : item.substr(eq + 1);
    auto integer = [&](int lo, int hi, int fallback) -> std::optional<int> {
      if (arg.empty()) return fallback;
      int v = 0;
      const auto [end, ec] = std::from_chars(arg.data(), arg.data() + arg.size(), v);
      if (ec != std::errc() || end != arg.data() + arg.size() || v < lo || v > hi) return std::nullopt;
      return v;
    };
    if (name == "error") {
      const std::optional<int> s = integer(400, 599, 503);
      if (!s) return "x-mock-fault: error=" + std::string(arg) + ": expected a status in [400, 599]";
      if (decision.error_status == 0) decision.error_status = *s;
    } else if (name == "hang") {
      decision.hang = true;
    } else if (name == "disconnect") {
      const std::optional<int> n = integer(0, 1'000'000, 0);
      if (!n) return "x-mock-fault: disconnect=" + std::string(arg) + ": expected a token count";
      decision.disconnect_after = *n;
    } else if (name == "stall") {
      const std::optional<int> n = integer(0, 1'000'000, 0);
      if (!n) return "x-mock-fault: stall=" + std::string(arg) + ": expected a token count";
      decision.stall_after = *n;
    } else if (name == "malformed") {
      decision.malformed_at = 0.5;
    } else if (name == "latency") {
      double m = 0.0;
      const auto [end, ec] = std::from_chars(arg.data(), arg.data() + arg.size(), m);
      if (arg.empty() || ec != std::errc() || m <= 0.0 || m > 10'000.0) {
        return "x-mock-fault: latency=" + std::string(arg) + ": expected a multiplier in (0, 10000]";
      }
      decision.latency_multiplier *= m;
    } else {
      return "x-mock-fault: unknown fault '" + std::string(name) +
             "' (expected error[=STATUS], hang, disconnect[=N], stall[=N], malformed, latency=X)";
    }
  }
  return std::nullopt;
}

std::uint64_t FaultInjector::add(FaultRule rule) {
  const TimePoint now = clock_.now();
  std::lock_guard lock(mutex_);
  prune_locked(now);
  if (rules_.size() >= kMaxRules) return 0;
  Active active{next_id_++, rule, now + rule.delay, std::nullopt, 0};
  if (rule.duration) active.end = active.start + *rule.duration;
  rules_.push_back(std::move(active));
  count_.store(rules_.size(), std::memory_order_relaxed);
  return rules_.back().id;
}

bool FaultInjector::remove(std::uint64_t id) {
  std::lock_guard lock(mutex_);
  const auto it = std::find_if(rules_.begin(), rules_.end(), [&](const Active& a) { return a.id == id; });
  if (it == rules_.end()) return false;
  rules_.erase(it);
  count_.store(rules_.size(), std::memory_order_relaxed);
  return true;
}

void FaultInjector::clear() {
  std::lock_guard lock(mutex_);
  rules_.clear();
  count_.store(0, std::memory_order_relaxed);
}

void FaultInjector::prune_locked(TimePoint now) {
  std::erase_if(rules_, [&](const Active& a) { return a.end && *a.end <= now; });
  count_.store(rules_.size(), std::memory_order_relaxed);
}

json::object FaultInjector::to_json() const {
  const TimePoint now = clock_.now();
  json::array list;
  {
    std::lock_guard lock(mutex_);
    for (const Active& a : rules_) {
      if (a.end && *a.end <= now) continue;
      json::object o = fault_rule_to_json(a.rule);
      o["id"] = a.id;
      o["matched"] = a.matched;
      if (now < a.start) {
        o["state"] = "pending";
        o["starts_in_s"] = seconds(a.start - now);
      } else {
        o["state"] = "active";
      }
      if (a.end) o["remaining_s"] = seconds(*a.end - now);
      list.push_back(std::move(o));
    }
  }
  json::object out;
  out["faults"] = std::move(list);
  return out;
}

FaultDecision FaultInjector::decide(Api api) {
  FaultDecision decision;
  if (count_.load(std::memory_order_relaxed) == 0) return decision;
  const TimePoint now = clock_.now();
  std::lock_guard lock(mutex_);
  prune_locked(now);
  for (Active& a : rules_) {
    if (now < a.start || (a.rule.api && *a.rule.api != api)) continue;
    const std::uint64_t n = a.matched++;
    Rng rng(mix64(seed_ ^ mix64(a.id * 0x9e3779b97f4a7c15ULL + n)));
    FaultDecision d;
    d.latency_multiplier = a.rule.latency_multiplier;
    // Draw every probability in a fixed order so one rule's outcome sequence is stable.
    const bool error = rng.chance(a.rule.error_rate);
    const bool hang = rng.chance(a.rule.hang_rate);
    const bool disconnect = rng.chance(a.rule.disconnect_rate);
    const bool stall = rng.chance(a.rule.stall_rate);
    const bool malformed = rng.chance(a.rule.malformed_rate);
    const double malformed_at = rng.uniform();
    if (n < static_cast<std::uint64_t>(a.rule.fail_first) || error) d.error_status = a.rule.status;
    d.hang = hang;
    if (disconnect) d.disconnect_after = a.rule.disconnect_after_tokens;
    if (stall) d.stall_after = a.rule.stall_after_tokens;
    if (malformed) d.malformed_at = malformed_at;
    decision.merge(d);
  }
  return decision;
}

}  // namespace lab::mocks::llm
