#pragma once
// Typed units in configuration text: durations ("250ms", "1.5s", "2m", "1h", "500us"), ranges
// ("1s..3s", "50..200"), rates ("500", "500/s", "30/m") and sizes ("64KiB", "1MB").
// Parsers return std::nullopt on bad input; callers name the file/line/field in their message.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace lab::units {

/// "250ms", "1.5s", "2m", "1h", "500us", "100ns", "0"; a bare number means seconds.
/// Negative values are rejected.
std::optional<std::chrono::nanoseconds> parse_duration(std::string_view text);

/// Formats a duration compactly for messages ("1.5s", "250ms", "20us").
std::string format_duration(std::chrono::nanoseconds d);

/// An inclusive range "lo..hi" of durations; a single value is lo == hi.
struct DurationRange {
  std::chrono::nanoseconds lo{0};
  std::chrono::nanoseconds hi{0};
};
std::optional<DurationRange> parse_duration_range(std::string_view text);

/// An inclusive integer range "lo..hi"; a single integer is lo == hi. lo <= hi, both >= 0.
struct IntRange {
  std::int64_t lo = 0;
  std::int64_t hi = 0;
};
std::optional<IntRange> parse_int_range(std::string_view text);

/// Events per second: "500", "500/s", "30/m", "2/h", "0.5/s". Must be > 0.
std::optional<double> parse_rate_per_second(std::string_view text);

/// Bytes: "1024", "64KiB", "1MiB", "1KB" (1000), "1MB", "1GiB".
std::optional<std::uint64_t> parse_bytes(std::string_view text);

/// A number with an optional trailing '%' ("1%" → 0.01, "0.5" → 0.5 as a ratio).
std::optional<double> parse_ratio(std::string_view text);

}  // namespace lab::units
