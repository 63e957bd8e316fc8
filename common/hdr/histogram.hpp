#pragma once
// An HDR-style histogram (after Gil Tene's HdrHistogram): log-linear buckets that keep a fixed
// number of significant digits over a wide dynamic range, O(1) recording, exact merge.
//
// Values are non-negative integers in whatever unit the caller picks; the harness records
// microseconds, so the default range 1 .. 3,600,000,000 is 1 µs to 1 h at 3 significant digits.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lab {

class Histogram {
 public:
  /// lowest >= 1, highest >= 2 * lowest, significant_digits in [1, 5].
  /// Aborts (LAB_CHECK-style) on invalid arguments: a bad histogram shape is a programming error.
  explicit Histogram(std::int64_t lowest = 1, std::int64_t highest = 3'600'000'000LL,
                     int significant_digits = 3);

  /// Records one value. Negative values record as 0; values above highest() are clamped to
  /// highest() and counted in saturated(). Not thread-safe: one histogram per thread, merge later.
  void record(std::int64_t value) { record_n(value, 1); }
  /// Records `count` occurrences of value (count >= 0).
  void record_n(std::int64_t value, std::int64_t count);

  /// Adds every count of `other` into this one. Exact when both have the same shape
  /// (lowest, highest, significant digits); otherwise each bucket of other is re-recorded at its
  /// representative value. Also merges min, max, saturated.
  void merge(const Histogram& other);
  /// Clears all counts, keeping the shape.
  void reset();

  std::int64_t count() const { return total_count_; }
  /// Values recorded above highest() (clamped).
  std::int64_t saturated() const { return saturated_; }
  /// Exact minimum and maximum recorded values (0 when empty).
  std::int64_t min() const;
  std::int64_t max() const;
  /// Mean and standard deviation computed from bucket midpoints (0 when empty).
  double mean() const;
  double stddev() const;
  /// The value at percentile p (0..100): the highest-equivalent value of the bucket that holds
  /// the ceil(p/100 * count)-th value, clamped to [min(), max()]. p=100 gives max(), p=0 min().
  /// 0 when empty.
  std::int64_t value_at_percentile(double p) const;
  /// Number of recorded values <= value.
  std::int64_t count_at_or_below(std::int64_t value) const;

  std::int64_t lowest() const { return lowest_; }
  std::int64_t highest() const { return highest_; }
  int significant_digits() const { return significant_digits_; }

  /// Whether two values fall into the same bucket (are equivalent at this resolution).
  bool equivalent(std::int64_t a, std::int64_t b) const;

  /// Compact, portable text encoding (base64 of a varint, run-length-of-zeros encoding of the
  /// counts plus the shape, min, max and saturated). decode(encode()) reproduces the histogram
  /// exactly. Safe to embed in JSON.
  std::string encode() const;
  /// Parses an encode() string; std::nullopt on malformed input (never throws, never aborts).
  static std::optional<Histogram> decode(std::string_view text);

  /// Non-empty buckets in ascending order, for reports: {value (highest-equivalent), count}.
  struct Bucket {
    std::int64_t value;
    std::int64_t count;
  };
  std::vector<Bucket> buckets() const;

 private:
  // Index arithmetic (see histogram.cpp for the layout).
  int bucket_index_of(std::int64_t value) const;
  std::size_t index_of(std::int64_t value) const;
  std::int64_t lowest_equivalent_at(std::size_t index) const;
  std::int64_t width_at(std::size_t index) const;
  std::int64_t highest_equivalent_at(std::size_t index) const;
  std::int64_t median_equivalent_at(std::size_t index) const;
  static std::int64_t rank_at_percentile(double p, std::int64_t count);

  std::int64_t lowest_;
  std::int64_t highest_;
  int significant_digits_;
  // Internal layout (sub-bucket/bucket arithmetic) is the implementation's; see histogram.cpp.
  int sub_bucket_half_count_magnitude_ = 0;
  std::int64_t sub_bucket_count_ = 0;
  std::int64_t sub_bucket_half_count_ = 0;
  std::int64_t sub_bucket_mask_ = 0;
  int unit_magnitude_ = 0;
  int bucket_count_ = 0;
  std::vector<std::int64_t> counts_;
  std::int64_t total_count_ = 0;
  std::int64_t saturated_ = 0;
  std::int64_t min_ = INT64_MAX;
  std::int64_t max_ = 0;
};

}  // namespace lab
