// Histogram layout
// ----------------
// Values are grouped into buckets whose width doubles from one bucket to the next; each bucket is
// split into sub-buckets of equal width. With S = 2^ceil(log2(2 * 10^digits)) sub-buckets per
// bucket, the first bucket covers [0, S << unit) at a resolution of 1 << unit (unit =
// floor(log2(lowest))), and every further bucket b covers [S/2 << (b + unit), S << (b + unit)) in
// S/2 sub-buckets of width 1 << (b + unit). The lower half of every bucket but the first would
// overlap the bucket before it, so only the upper half is stored: the flat counts array holds
// (bucket_count + 1) * S/2 slots. Any value is then within one part in S/2 >= 10^digits of the
// bottom of its sub-bucket, which is what "digits significant digits" means.
//
// The bucket of a value is found with one count-leading-zeros: forcing the sub-bucket mask bits
// on makes every value below S << unit land in bucket 0, and above that the position of the top
// bit gives the bucket directly.
//
// Encoding (format version 1)
// ---------------------------
// base64url (RFC 4648 §5, alphabet A-Z a-z 0-9 - _), without padding, of these bytes:
//   header: unsigned LEB128 varints, in order:
//     version (= 1), lowest, highest, significant_digits, min, max, saturated, total_count
//   counts: zig-zag LEB128 varints, one per token, walking the counts array from index 0:
//     a positive value n is the count of the next slot;
//     a negative value -k skips k slots whose count is zero (always followed by a count).
//   Zero slots at the end are not written. A zero token is not allowed.
// decode() rejects anything else: bad base64 (including non-zero padding bits), unknown version,
// an invalid shape, overlong varints, counts that overflow or run past the array, a total that
// differs from the sum of the counts, min/max that are not in the first/last non-empty bucket,
// saturated values without max == highest, and bytes left over.

#include "common/hdr/histogram.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>

namespace lab {
namespace {

constexpr std::int64_t kInt64Max = std::numeric_limits<std::int64_t>::max();
constexpr std::uint64_t kEncodingVersion = 1;

[[noreturn]] void check_failed(const char* what) {
  std::fprintf(stderr, "lab::Histogram: check failed: %s\n", what);
  std::abort();
}

// floor(log2(v)) for v >= 1.
int floor_log2(std::uint64_t v) { return 63 - std::countl_zero(v); }

// log2 of the sub-bucket count: ceil(log2(2 * 10^digits)).
int sub_bucket_count_magnitude(int digits) {
  std::uint64_t largest_single_unit = 2;
  for (int i = 0; i < digits; ++i) largest_single_unit *= 10;
  return floor_log2(largest_single_unit - 1) + 1;
}

// The shape rules of the constructor, shared with decode() so that decode never aborts.
// Beyond the header's rules, (S << unit) must fit in 62 bits so the bucket arithmetic cannot
// overflow; that only excludes a lowest above 2^44 or so.
bool shape_is_valid(std::int64_t lowest, std::int64_t highest, int digits) {
  if (lowest < 1 || digits < 1 || digits > 5) return false;
  if (lowest > kInt64Max / 2 || highest < 2 * lowest) return false;
  const int unit = floor_log2(static_cast<std::uint64_t>(lowest));
  return unit + sub_bucket_count_magnitude(digits) <= 62;
}

// ---- base64url without padding ------------------------------------------------------------

constexpr char kBase64UrlAlphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::string base64url_encode(const std::vector<std::uint8_t>& bytes) {
  std::string out;
  out.reserve((bytes.size() * 4 + 2) / 3);
  std::size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    const std::uint32_t n = (std::uint32_t{bytes[i]} << 16) | (std::uint32_t{bytes[i + 1]} << 8) |
                            std::uint32_t{bytes[i + 2]};
    out.push_back(kBase64UrlAlphabet[(n >> 18) & 63]);
    out.push_back(kBase64UrlAlphabet[(n >> 12) & 63]);
    out.push_back(kBase64UrlAlphabet[(n >> 6) & 63]);
    out.push_back(kBase64UrlAlphabet[n & 63]);
  }
  const std::size_t rest = bytes.size() - i;
  if (rest == 1) {
    const std::uint32_t n = std::uint32_t{bytes[i]} << 16;
    out.push_back(kBase64UrlAlphabet[(n >> 18) & 63]);
    out.push_back(kBase64UrlAlphabet[(n >> 12) & 63]);
  } else if (rest == 2) {
    const std::uint32_t n = (std::uint32_t{bytes[i]} << 16) | (std::uint32_t{bytes[i + 1]} << 8);
    out.push_back(kBase64UrlAlphabet[(n >> 18) & 63]);
    out.push_back(kBase64UrlAlphabet[(n >> 12) & 63]);
    out.push_back(kBase64UrlAlphabet[(n >> 6) & 63]);
  }
  return out;
}

int base64url_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '-') return 62;
  if (c == '_') return 63;
  return -1;
}

std::optional<std::vector<std::uint8_t>> base64url_decode(std::string_view text) {
  if (text.size() % 4 == 1) return std::nullopt;
  std::vector<std::uint8_t> out;
  out.reserve(text.size() * 3 / 4);
  std::uint32_t acc = 0;
  int bits = 0;
  for (const char c : text) {
    const int v = base64url_value(c);
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<std::uint8_t>(acc >> bits));
      acc &= (1u << bits) - 1;
    }
  }
  if (acc != 0) return std::nullopt;  // non-canonical: padding bits must be zero
  return out;
}

// ---- varints ------------------------------------------------------------------------------

void put_uvarint(std::vector<std::uint8_t>& out, std::uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<std::uint8_t>(v | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<std::uint8_t>(v));
}

void put_svarint(std::vector<std::uint8_t>& out, std::int64_t v) {
  const auto u = static_cast<std::uint64_t>(v);
  put_uvarint(out, (u << 1) ^ (v < 0 ? ~std::uint64_t{0} : 0));
}

class Reader {
 public:
  explicit Reader(const std::vector<std::uint8_t>& bytes) : bytes_(bytes) {}

  bool at_end() const { return pos_ == bytes_.size(); }

  std::optional<std::uint64_t> uvarint() {
    std::uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ == bytes_.size()) return std::nullopt;
      const std::uint8_t b = bytes_[pos_++];
      const std::uint64_t payload = b & 0x7f;
      if (shift == 63 && payload > 1) return std::nullopt;  // more than 64 bits
      v |= payload << shift;
      if ((b & 0x80) == 0) return v;
    }
    return std::nullopt;  // more than 10 bytes
  }

  // A non-negative int64 written as an unsigned varint.
  std::optional<std::int64_t> non_negative() {
    const auto v = uvarint();
    if (!v || *v > static_cast<std::uint64_t>(kInt64Max)) return std::nullopt;
    return static_cast<std::int64_t>(*v);
  }

  std::optional<std::int64_t> svarint() {
    const auto v = uvarint();
    if (!v) return std::nullopt;
    return static_cast<std::int64_t>((*v >> 1) ^ (~(*v & 1) + 1));
  }

 private:
  const std::vector<std::uint8_t>& bytes_;
  std::size_t pos_ = 0;
};

}  // namespace

// ---- shape and index arithmetic -------------------------------------------------------------

Histogram::Histogram(std::int64_t lowest, std::int64_t highest, int significant_digits)
    : lowest_(lowest), highest_(highest), significant_digits_(significant_digits) {
  if (!shape_is_valid(lowest, highest, significant_digits)) {
    check_failed("lowest >= 1, highest >= 2 * lowest, significant_digits in [1, 5]");
  }
  const int count_magnitude = sub_bucket_count_magnitude(significant_digits);
  sub_bucket_half_count_magnitude_ = count_magnitude - 1;
  sub_bucket_count_ = std::int64_t{1} << count_magnitude;
  sub_bucket_half_count_ = sub_bucket_count_ / 2;
  unit_magnitude_ = floor_log2(static_cast<std::uint64_t>(lowest));
  sub_bucket_mask_ = (sub_bucket_count_ - 1) << unit_magnitude_;

  // Buckets needed so that highest falls inside the last one.
  std::int64_t smallest_untrackable = sub_bucket_count_ << unit_magnitude_;
  bucket_count_ = 1;
  while (smallest_untrackable <= highest) {
    ++bucket_count_;
    if (smallest_untrackable > kInt64Max / 2) break;  // the next bucket reaches INT64_MAX
    smallest_untrackable <<= 1;
  }
  counts_.assign(static_cast<std::size_t>(bucket_count_ + 1) * sub_bucket_half_count_, 0);
}

int Histogram::bucket_index_of(std::int64_t value) const {
  // Position of the top bit, counting the sub-bucket mask so small values land in bucket 0.
  const int top = 64 - std::countl_zero(static_cast<std::uint64_t>(value | sub_bucket_mask_));
  return top - unit_magnitude_ - (sub_bucket_half_count_magnitude_ + 1);
}

std::size_t Histogram::index_of(std::int64_t value) const {
  const int bucket = bucket_index_of(value);
  const std::int64_t sub_bucket = value >> (bucket + unit_magnitude_);
  return static_cast<std::size_t>(((std::int64_t{bucket} + 1) << sub_bucket_half_count_magnitude_) +
                                  (sub_bucket - sub_bucket_half_count_));
}

std::int64_t Histogram::lowest_equivalent_at(std::size_t index) const {
  int bucket = static_cast<int>(index >> sub_bucket_half_count_magnitude_) - 1;
  std::int64_t sub_bucket =
      static_cast<std::int64_t>(index & static_cast<std::size_t>(sub_bucket_half_count_ - 1)) +
      sub_bucket_half_count_;
  if (bucket < 0) {  // the lower half of bucket 0
    sub_bucket -= sub_bucket_half_count_;
    bucket = 0;
  }
  return sub_bucket << (bucket + unit_magnitude_);
}

std::int64_t Histogram::width_at(std::size_t index) const {
  const int bucket = std::max(0, static_cast<int>(index >> sub_bucket_half_count_magnitude_) - 1);
  return std::int64_t{1} << (bucket + unit_magnitude_);
}

std::int64_t Histogram::highest_equivalent_at(std::size_t index) const {
  return lowest_equivalent_at(index) + (width_at(index) - 1);
}

std::int64_t Histogram::median_equivalent_at(std::size_t index) const {
  return lowest_equivalent_at(index) + width_at(index) / 2;
}

// ---- recording ----------------------------------------------------------------------------

void Histogram::record_n(std::int64_t value, std::int64_t count) {
  if (count <= 0) {
    if (count < 0) check_failed("record_n: count >= 0");
    return;
  }
  if (value < 0) value = 0;
  if (value > highest_) {
    value = highest_;
    saturated_ += count;
  }
  counts_[index_of(value)] += count;
  total_count_ += count;
  if (value < min_) min_ = value;
  if (value > max_) max_ = value;
}

void Histogram::merge(const Histogram& other) {
  if (other.total_count_ == 0) return;
  const bool same_shape = lowest_ == other.lowest_ && highest_ == other.highest_ &&
                          significant_digits_ == other.significant_digits_;
  if (same_shape) {
    for (std::size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
    total_count_ += other.total_count_;
    saturated_ += other.saturated_;
    min_ = std::min(min_, other.min_);
    max_ = std::max(max_, other.max_);
    return;
  }

  // Different shapes: re-record other's buckets here. The exact min and max are recorded as
  // themselves (taking one count from the first and last non-empty bucket, where they live), the
  // rest at their bucket's midpoint kept within [other.min, other.max]. That keeps min and max
  // exact and in the first and last non-empty buckets here too.
  const std::int64_t saturated_before = saturated_;
  std::size_t first = 0;
  while (other.counts_[first] == 0) ++first;
  std::size_t last = other.counts_.size() - 1;
  while (other.counts_[last] == 0) --last;
  for (std::size_t i = first; i <= last; ++i) {
    std::int64_t n = other.counts_[i];
    if (n == 0) continue;
    if (i == first) {
      record_n(other.min_, 1);
      --n;
    }
    if (i == last && n > 0 && other.total_count_ > 1) {
      record_n(other.max_, 1);
      --n;
    }
    const std::int64_t representative =
        std::clamp(other.median_equivalent_at(i), other.min_, other.max_);
    record_n(representative, n);
  }
  // Other's saturated values sit at other.max; if they were clamped again here they are already
  // counted, otherwise they still were out of range and count as saturated.
  const std::int64_t clamped_here = saturated_ - saturated_before;
  saturated_ = saturated_before + std::max(clamped_here, other.saturated_);
}

void Histogram::reset() {
  std::fill(counts_.begin(), counts_.end(), 0);
  total_count_ = 0;
  saturated_ = 0;
  min_ = INT64_MAX;
  max_ = 0;
}

// ---- queries ------------------------------------------------------------------------------

std::int64_t Histogram::min() const { return total_count_ == 0 ? 0 : min_; }
std::int64_t Histogram::max() const { return total_count_ == 0 ? 0 : max_; }

double Histogram::mean() const {
  if (total_count_ == 0) return 0.0;
  double sum = 0.0;
  for (std::size_t i = 0; i < counts_.size(); ++i) {
    if (counts_[i] != 0) {
      sum += static_cast<double>(median_equivalent_at(i)) * static_cast<double>(counts_[i]);
    }
  }
  return sum / static_cast<double>(total_count_);
}

double Histogram::stddev() const {
  if (total_count_ == 0) return 0.0;
  const double m = mean();
  double sum_sq = 0.0;
  for (std::size_t i = 0; i < counts_.size(); ++i) {
    if (counts_[i] != 0) {
      const double d = static_cast<double>(median_equivalent_at(i)) - m;
      sum_sq += d * d * static_cast<double>(counts_[i]);
    }
  }
  return std::sqrt(sum_sq / static_cast<double>(total_count_));
}

std::int64_t Histogram::rank_at_percentile(double p, std::int64_t count) {
  // ceil(p/100 * count), but a product that is an integer up to rounding (99.9% of 1000 comes
  // out as 999.0000000000001) is taken as that integer.
  const double target = p / 100.0 * static_cast<double>(count);
  const double nearest = std::round(target);
  std::int64_t rank = std::abs(target - nearest) <= 1e-9 * std::max(1.0, target)
                          ? static_cast<std::int64_t>(nearest)
                          : static_cast<std::int64_t>(std::ceil(target));
  return std::clamp<std::int64_t>(rank, 1, count);
}

std::int64_t Histogram::value_at_percentile(double p) const {
  if (total_count_ == 0) return 0;
  if (!(p > 0.0)) return min();  // also NaN
  if (p >= 100.0) return max();
  const std::int64_t rank = rank_at_percentile(p, total_count_);
  std::int64_t seen = 0;
  for (std::size_t i = 0; i < counts_.size(); ++i) {
    seen += counts_[i];
    if (seen >= rank) return std::clamp(highest_equivalent_at(i), min_, max_);
  }
  return max();  // unreachable while total_count_ equals the sum of counts_
}

std::int64_t Histogram::count_at_or_below(std::int64_t value) const {
  if (total_count_ == 0 || value < min_) return 0;
  if (value >= max_) return total_count_;
  // min_ <= value < max_ <= highest_, so the index is in range.
  const std::size_t end = index_of(value);
  std::int64_t n = 0;
  for (std::size_t i = 0; i <= end; ++i) n += counts_[i];
  return n;
}

bool Histogram::equivalent(std::int64_t a, std::int64_t b) const {
  a = std::max<std::int64_t>(a, 0);
  b = std::max<std::int64_t>(b, 0);
  const int bucket_a = bucket_index_of(a);
  const int bucket_b = bucket_index_of(b);
  return bucket_a == bucket_b &&
         (a >> (bucket_a + unit_magnitude_)) == (b >> (bucket_b + unit_magnitude_));
}

std::vector<Histogram::Bucket> Histogram::buckets() const {
  std::vector<Bucket> out;
  for (std::size_t i = 0; i < counts_.size(); ++i) {
    if (counts_[i] != 0) out.push_back(Bucket{highest_equivalent_at(i), counts_[i]});
  }
  return out;
}

// ---- encoding -----------------------------------------------------------------------------

std::string Histogram::encode() const {
  std::vector<std::uint8_t> bytes;
  put_uvarint(bytes, kEncodingVersion);
  put_uvarint(bytes, static_cast<std::uint64_t>(lowest_));
  put_uvarint(bytes, static_cast<std::uint64_t>(highest_));
  put_uvarint(bytes, static_cast<std::uint64_t>(significant_digits_));
  put_uvarint(bytes, static_cast<std::uint64_t>(min()));
  put_uvarint(bytes, static_cast<std::uint64_t>(max()));
  put_uvarint(bytes, static_cast<std::uint64_t>(saturated_));
  put_uvarint(bytes, static_cast<std::uint64_t>(total_count_));
  std::int64_t zeros = 0;
  for (const std::int64_t c : counts_) {
    if (c == 0) {
      ++zeros;
      continue;
    }
    if (zeros > 0) {
      put_svarint(bytes, -zeros);
      zeros = 0;
    }
    put_svarint(bytes, c);
  }
  return base64url_encode(bytes);
}

std::optional<Histogram> Histogram::decode(std::string_view text) {
  const auto bytes = base64url_decode(text);
  if (!bytes) return std::nullopt;
  Reader in(*bytes);

  const auto version = in.uvarint();
  if (!version || *version != kEncodingVersion) return std::nullopt;
  const auto lowest = in.non_negative();
  const auto highest = in.non_negative();
  const auto digits = in.non_negative();
  const auto min = in.non_negative();
  const auto max = in.non_negative();
  const auto saturated = in.non_negative();
  const auto total = in.non_negative();
  if (!lowest || !highest || !digits || !min || !max || !saturated || !total) return std::nullopt;
  if (*digits > 5 || !shape_is_valid(*lowest, *highest, static_cast<int>(*digits))) {
    return std::nullopt;
  }
  if (*saturated > *total || *min > *max || *max > *highest) return std::nullopt;
  if (*total == 0 && (*min != 0 || *max != 0)) return std::nullopt;
  if (*saturated > 0 && *max != *highest) return std::nullopt;

  Histogram h(*lowest, *highest, static_cast<int>(*digits));
  std::size_t pos = 0;
  std::int64_t sum = 0;
  std::optional<std::size_t> first_nonzero;
  std::size_t last_nonzero = 0;
  bool after_run = false;
  while (!in.at_end()) {
    const auto token = in.svarint();
    if (!token || *token == 0) return std::nullopt;
    if (*token < 0) {
      // A run is always followed by a count: never two runs in a row, never a trailing run.
      if (after_run || *token == std::numeric_limits<std::int64_t>::min()) return std::nullopt;
      const auto skip = static_cast<std::uint64_t>(-*token);
      if (skip >= h.counts_.size() - pos) return std::nullopt;
      pos += static_cast<std::size_t>(skip);
      after_run = true;
      continue;
    }
    after_run = false;
    if (pos >= h.counts_.size() || *token > kInt64Max - sum) return std::nullopt;
    h.counts_[pos] = *token;
    sum += *token;
    if (!first_nonzero) first_nonzero = pos;
    last_nonzero = pos;
    ++pos;
  }
  if (after_run || sum != *total) return std::nullopt;
  if (*total > 0 && (h.index_of(*min) != *first_nonzero || h.index_of(*max) != last_nonzero)) {
    return std::nullopt;
  }
  h.total_count_ = *total;
  h.saturated_ = *saturated;
  if (*total > 0) {
    h.min_ = *min;
    h.max_ = *max;
  }
  return h;
}

}  // namespace lab
