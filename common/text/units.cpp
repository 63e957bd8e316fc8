#include "common/text/units.hpp"

#include <charconv>
#include <cmath>
#include <cstdio>

namespace lab::units {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Parses a leading non-negative decimal number; returns it and the rest of the text.
std::optional<std::pair<double, std::string_view>> leading_number(std::string_view s) {
  s = trim(s);
  double value = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec != std::errc() || ptr == s.data() || !std::isfinite(value) || value < 0) return std::nullopt;
  return std::pair{value, trim(s.substr(static_cast<std::size_t>(ptr - s.data())))};
}

}  // namespace

std::optional<std::chrono::nanoseconds> parse_duration(std::string_view text) {
  auto parsed = leading_number(text);
  if (!parsed) return std::nullopt;
  auto [value, unit] = *parsed;
  double ns_per_unit = 0;
  if (unit.empty() || unit == "s") ns_per_unit = 1e9;
  else if (unit == "ms") ns_per_unit = 1e6;
  else if (unit == "us" || unit == "µs") ns_per_unit = 1e3;
  else if (unit == "ns") ns_per_unit = 1;
  else if (unit == "m" || unit == "min") ns_per_unit = 60e9;
  else if (unit == "h") ns_per_unit = 3600e9;
  else return std::nullopt;
  double ns = value * ns_per_unit;
  if (ns > 1e18) return std::nullopt;  // beyond ~31 years: certainly a typo
  return std::chrono::nanoseconds(static_cast<std::int64_t>(std::llround(ns)));
}

std::string format_duration(std::chrono::nanoseconds d) {
  const double ns = static_cast<double>(d.count());
  char buf[48];
  if (ns >= 3600e9 && std::fmod(ns, 3600e9) == 0) std::snprintf(buf, sizeof buf, "%.0fh", ns / 3600e9);
  else if (ns >= 60e9 && std::fmod(ns, 60e9) == 0) std::snprintf(buf, sizeof buf, "%.0fm", ns / 60e9);
  else if (ns >= 1e9) std::snprintf(buf, sizeof buf, "%gs", ns / 1e9);
  else if (ns >= 1e6) std::snprintf(buf, sizeof buf, "%gms", ns / 1e6);
  else if (ns >= 1e3) std::snprintf(buf, sizeof buf, "%gus", ns / 1e3);
  else std::snprintf(buf, sizeof buf, "%.0fns", ns);
  return buf;
}

std::optional<DurationRange> parse_duration_range(std::string_view text) {
  auto sep = text.find("..");
  if (sep == std::string_view::npos) {
    auto d = parse_duration(text);
    if (!d) return std::nullopt;
    return DurationRange{*d, *d};
  }
  auto lo = parse_duration(text.substr(0, sep));
  auto hi = parse_duration(text.substr(sep + 2));
  if (!lo || !hi || *lo > *hi) return std::nullopt;
  return DurationRange{*lo, *hi};
}

std::optional<IntRange> parse_int_range(std::string_view text) {
  auto parse_int = [](std::string_view s) -> std::optional<std::int64_t> {
    s = trim(s);
    std::int64_t v = 0;
    auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || ptr != s.data() + s.size() || v < 0) return std::nullopt;
    return v;
  };
  auto sep = text.find("..");
  if (sep == std::string_view::npos) {
    auto v = parse_int(text);
    if (!v) return std::nullopt;
    return IntRange{*v, *v};
  }
  auto lo = parse_int(text.substr(0, sep));
  auto hi = parse_int(text.substr(sep + 2));
  if (!lo || !hi || *lo > *hi) return std::nullopt;
  return IntRange{*lo, *hi};
}

std::optional<double> parse_rate_per_second(std::string_view text) {
  auto parsed = leading_number(text);
  if (!parsed) return std::nullopt;
  auto [value, rest] = *parsed;
  if (value <= 0) return std::nullopt;
  if (rest.empty()) return value;
  if (rest.front() != '/') return std::nullopt;
  rest = trim(rest.substr(1));
  if (rest == "s") return value;
  if (rest == "m" || rest == "min") return value / 60.0;
  if (rest == "h") return value / 3600.0;
  // "/100ms" and the like: a per-duration rate.
  auto d = parse_duration(rest);
  if (!d || d->count() == 0) return std::nullopt;
  return value * 1e9 / static_cast<double>(d->count());
}

std::optional<std::uint64_t> parse_bytes(std::string_view text) {
  auto parsed = leading_number(text);
  if (!parsed) return std::nullopt;
  auto [value, unit] = *parsed;
  double mult = 0;
  if (unit.empty() || unit == "B") mult = 1;
  else if (unit == "KB" || unit == "kB") mult = 1e3;
  else if (unit == "MB") mult = 1e6;
  else if (unit == "GB") mult = 1e9;
  else if (unit == "KiB") mult = 1024.0;
  else if (unit == "MiB") mult = 1024.0 * 1024;
  else if (unit == "GiB") mult = 1024.0 * 1024 * 1024;
  else return std::nullopt;
  return static_cast<std::uint64_t>(std::llround(value * mult));
}

std::optional<double> parse_ratio(std::string_view text) {
  text = trim(text);
  bool percent = !text.empty() && text.back() == '%';
  if (percent) text.remove_suffix(1);
  auto parsed = leading_number(text);
  if (!parsed || !parsed->second.empty()) return std::nullopt;
  return percent ? parsed->first / 100.0 : parsed->first;
}

}  // namespace lab::units
