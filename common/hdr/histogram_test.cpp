#include "common/hdr/histogram.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace lab {
namespace {

constexpr std::int64_t kHour = 3'600'000'000LL;  // in microseconds

// ceil(p/100 * n) as the rank of the exact percentile, with the same tolerance for products
// that are integers up to floating-point rounding.
std::int64_t exact_rank(double p, std::int64_t n) {
  const double target = p / 100.0 * static_cast<double>(n);
  const double nearest = std::round(target);
  const std::int64_t rank = std::abs(target - nearest) <= 1e-9 * std::max(1.0, target)
                                ? static_cast<std::int64_t>(nearest)
                                : static_cast<std::int64_t>(std::ceil(target));
  return std::clamp<std::int64_t>(rank, 1, n);
}

std::int64_t exact_percentile(const std::vector<std::int64_t>& sorted, double p) {
  if (p <= 0) return sorted.front();
  if (p >= 100) return sorted.back();
  return sorted[static_cast<std::size_t>(exact_rank(p, static_cast<std::int64_t>(sorted.size())) -
                                         1)];
}

std::vector<std::int64_t> uniform_values(std::mt19937_64& rng, std::size_t n, std::int64_t lo,
                                         std::int64_t hi) {
  std::uniform_int_distribution<std::int64_t> dist(lo, hi);
  std::vector<std::int64_t> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

// Log-normal around ~20 ms with a wide spread, clamped to 1 µs .. 1 h.
std::vector<std::int64_t> lognormal_values(std::mt19937_64& rng, std::size_t n) {
  std::lognormal_distribution<double> dist(std::log(20'000.0), 2.5);
  std::vector<std::int64_t> v(n);
  for (auto& x : v) {
    x = std::clamp<std::int64_t>(static_cast<std::int64_t>(dist(rng)), 1, kHour);
  }
  return v;
}

// Log-uniform: equally many values in each decade from 1 µs to 1 h.
std::vector<std::int64_t> log_uniform_values(std::mt19937_64& rng, std::size_t n) {
  std::uniform_real_distribution<double> dist(0.0, std::log(static_cast<double>(kHour)));
  std::vector<std::int64_t> v(n);
  for (auto& x : v) {
    x = std::clamp<std::int64_t>(static_cast<std::int64_t>(std::exp(dist(rng))), 1, kHour);
  }
  return v;
}

std::vector<double> percentiles_to_check(std::mt19937_64& rng) {
  std::vector<double> ps = {0,  0.001, 0.1, 1,    5,     10,     25,      50, 75,
                            90, 95,    99,  99.9, 99.99, 99.999, 99.9999, 100};
  std::uniform_real_distribution<double> dist(0.0, 100.0);
  for (int i = 0; i < 200; ++i) ps.push_back(dist(rng));
  return ps;
}

// Every percentile is the exact one's bucket's top (so equivalent to it, and not below it), and
// within 10^-digits relative error.
void expect_percentiles_match(const Histogram& h, std::vector<std::int64_t> values,
                              std::mt19937_64& rng) {
  std::sort(values.begin(), values.end());
  const double tolerance = std::pow(10.0, -h.significant_digits());
  for (const double p : percentiles_to_check(rng)) {
    const std::int64_t exact = exact_percentile(values, p);
    const std::int64_t got = h.value_at_percentile(p);
    EXPECT_TRUE(h.equivalent(got, exact)) << "p=" << p << " got=" << got << " exact=" << exact;
    EXPECT_GE(got, exact) << "p=" << p;
    EXPECT_LE(static_cast<double>(got - exact), tolerance * static_cast<double>(exact))
        << "p=" << p << " got=" << got << " exact=" << exact;
  }
}

Histogram record_all(const std::vector<std::int64_t>& values, int digits = 3) {
  Histogram h(1, kHour, digits);
  for (const auto v : values) h.record(v);
  return h;
}

void expect_same(const Histogram& a, const Histogram& b) {
  EXPECT_EQ(a.count(), b.count());
  EXPECT_EQ(a.min(), b.min());
  EXPECT_EQ(a.max(), b.max());
  EXPECT_EQ(a.saturated(), b.saturated());
  EXPECT_EQ(a.lowest(), b.lowest());
  EXPECT_EQ(a.highest(), b.highest());
  EXPECT_EQ(a.significant_digits(), b.significant_digits());
  EXPECT_DOUBLE_EQ(a.mean(), b.mean());
  EXPECT_DOUBLE_EQ(a.stddev(), b.stddev());
  for (double p = 0; p <= 100.0; p += 0.25) {
    EXPECT_EQ(a.value_at_percentile(p), b.value_at_percentile(p)) << "p=" << p;
  }
  const auto ba = a.buckets();
  const auto bb = b.buckets();
  ASSERT_EQ(ba.size(), bb.size());
  for (std::size_t i = 0; i < ba.size(); ++i) {
    EXPECT_EQ(ba[i].value, bb[i].value);
    EXPECT_EQ(ba[i].count, bb[i].count);
  }
}

TEST(Histogram, UniformPercentilesMatchSortedValues) {
  std::mt19937_64 rng(1);
  const auto values = uniform_values(rng, 200'000, 1, kHour);
  expect_percentiles_match(record_all(values), values, rng);
}

TEST(Histogram, SmallRangeUniformPercentilesAreExact) {
  // Below 2048 every value has its own bucket at 3 digits, so percentiles are exact.
  std::mt19937_64 rng(2);
  const auto values = uniform_values(rng, 50'000, 1, 2000);
  const Histogram h = record_all(values);
  auto sorted = values;
  std::sort(sorted.begin(), sorted.end());
  for (const double p : percentiles_to_check(rng)) {
    EXPECT_EQ(h.value_at_percentile(p), exact_percentile(sorted, p)) << "p=" << p;
  }
}

TEST(Histogram, LogNormalPercentilesMatchSortedValues) {
  std::mt19937_64 rng(3);
  const auto values = lognormal_values(rng, 200'000);
  expect_percentiles_match(record_all(values), values, rng);
}

TEST(Histogram, LogUniformPercentilesMatchSortedValuesAtEveryPrecision) {
  for (int digits = 1; digits <= 5; ++digits) {
    SCOPED_TRACE(digits);
    std::mt19937_64 rng(4 + static_cast<unsigned>(digits));
    const auto values = log_uniform_values(rng, 50'000);
    expect_percentiles_match(record_all(values, digits), values, rng);
  }
}

TEST(Histogram, PercentilesHoldWithLargeLowest) {
  // lowest = 1000 (e.g. nanoseconds recorded with µs resolution): unit magnitude 9.
  std::mt19937_64 rng(5);
  std::vector<std::int64_t> values = uniform_values(rng, 50'000, 1000, 10'000'000'000LL);
  Histogram h(1000, 10'000'000'000LL, 3);
  for (const auto v : values) h.record(v);
  std::sort(values.begin(), values.end());
  for (const double p : percentiles_to_check(rng)) {
    const std::int64_t exact = exact_percentile(values, p);
    const std::int64_t got = h.value_at_percentile(p);
    EXPECT_TRUE(h.equivalent(got, exact)) << "p=" << p;
    EXPECT_LE(static_cast<double>(got - exact), 1e-3 * static_cast<double>(exact));
  }
}

TEST(Histogram, MeanAndStddevCloseToExact) {
  std::mt19937_64 rng(6);
  const auto values = lognormal_values(rng, 100'000);
  const Histogram h = record_all(values);
  double sum = 0;
  for (const auto v : values) sum += static_cast<double>(v);
  const double mean = sum / static_cast<double>(values.size());
  double sq = 0;
  for (const auto v : values)
    sq += (static_cast<double>(v) - mean) * (static_cast<double>(v) - mean);
  const double stddev = std::sqrt(sq / static_cast<double>(values.size()));
  EXPECT_NEAR(h.mean(), mean, mean * 1e-3);
  EXPECT_NEAR(h.stddev(), stddev, stddev * 1e-3);
}

TEST(Histogram, MinMaxAreExact) {
  Histogram h;
  h.record(123'456'789);
  h.record(987'654'321);
  h.record(555);
  EXPECT_EQ(h.min(), 555);
  EXPECT_EQ(h.max(), 987'654'321);
  EXPECT_EQ(h.value_at_percentile(0), 555);
  EXPECT_EQ(h.value_at_percentile(100), 987'654'321);
  // The top bucket's highest-equivalent is above max; the percentile is clamped to max.
  EXPECT_EQ(h.value_at_percentile(99.9), 987'654'321);
}

TEST(Histogram, EmptyHistogramReportsZeros) {
  const Histogram h;
  EXPECT_EQ(h.count(), 0);
  EXPECT_EQ(h.min(), 0);
  EXPECT_EQ(h.max(), 0);
  EXPECT_EQ(h.mean(), 0.0);
  EXPECT_EQ(h.stddev(), 0.0);
  EXPECT_EQ(h.value_at_percentile(0), 0);
  EXPECT_EQ(h.value_at_percentile(50), 0);
  EXPECT_EQ(h.value_at_percentile(100), 0);
  EXPECT_EQ(h.count_at_or_below(kHour), 0);
  EXPECT_TRUE(h.buckets().empty());
  const auto decoded = Histogram::decode(h.encode());
  ASSERT_TRUE(decoded.has_value());
  expect_same(*decoded, h);
}

TEST(Histogram, RecordNEqualsRepeatedRecord) {
  Histogram a;
  Histogram b;
  a.record_n(42'000, 7);
  a.record_n(9, 3);
  a.record_n(1'000'000, 0);  // no-op: does not touch min/max
  for (int i = 0; i < 7; ++i) b.record(42'000);
  for (int i = 0; i < 3; ++i) b.record(9);
  expect_same(a, b);
  EXPECT_EQ(a.count(), 10);
  EXPECT_EQ(a.max(), 42'000);
  EXPECT_EQ(a.encode(), b.encode());
}

TEST(Histogram, ValuesAboveHighestAreClampedAndCountedSaturated) {
  Histogram h(1, 1'000'000, 3);
  h.record(10);
  h.record(5'000'000);
  h.record_n(1'000'001, 4);
  h.record(1'000'000);  // at highest: in range, not saturated
  EXPECT_EQ(h.count(), 7);
  EXPECT_EQ(h.saturated(), 5);
  EXPECT_EQ(h.max(), 1'000'000);
  EXPECT_EQ(h.value_at_percentile(100), 1'000'000);
  EXPECT_EQ(h.value_at_percentile(50), 1'000'000);
  EXPECT_EQ(h.count_at_or_below(999'000), 1);
}

TEST(Histogram, NegativeValuesRecordAsZero) {
  Histogram h;
  h.record(-5);
  h.record(7);
  EXPECT_EQ(h.min(), 0);
  EXPECT_EQ(h.value_at_percentile(50), 0);
  EXPECT_EQ(h.count_at_or_below(0), 1);
}

TEST(Histogram, PercentileZeroAndHundredAreMinAndMax) {
  std::mt19937_64 rng(7);
  const auto values = lognormal_values(rng, 10'000);
  const Histogram h = record_all(values);
  EXPECT_EQ(h.value_at_percentile(0), *std::min_element(values.begin(), values.end()));
  EXPECT_EQ(h.value_at_percentile(100), *std::max_element(values.begin(), values.end()));
  EXPECT_EQ(h.value_at_percentile(-3), h.min());
  EXPECT_EQ(h.value_at_percentile(250), h.max());
}

TEST(Histogram, CountAtOrBelowBracketsExactCount) {
  std::mt19937_64 rng(8);
  auto values = lognormal_values(rng, 50'000);
  const Histogram h = record_all(values);
  std::sort(values.begin(), values.end());
  const auto exact_at_or_below = [&](std::int64_t v) {
    return static_cast<std::int64_t>(std::upper_bound(values.begin(), values.end(), v) -
                                     values.begin());
  };
  for (std::size_t i = 0; i < values.size(); i += 97) {
    const std::int64_t v = values[i];
    const std::int64_t got = h.count_at_or_below(v);
    // The whole bucket holding v counts: at least the exact count, at most everything up to the
    // bucket's top (within 0.1% above v).
    EXPECT_GE(got, exact_at_or_below(v)) << v;
    EXPECT_LE(got, exact_at_or_below(v + v / 1000)) << v;
  }
  EXPECT_EQ(h.count_at_or_below(values.front() - 1), 0);
  EXPECT_EQ(h.count_at_or_below(values.back()), h.count());
}

TEST(Histogram, EquivalentFollowsBucketWidth) {
  const Histogram h;  // 3 digits: unit width up to 2047, then width 2 up to 4095, ...
  EXPECT_TRUE(h.equivalent(1000, 1000));
  EXPECT_FALSE(h.equivalent(2046, 2047));
  EXPECT_TRUE(h.equivalent(2048, 2049));
  EXPECT_FALSE(h.equivalent(2049, 2050));
  EXPECT_TRUE(h.equivalent(1'000'000'000, 1'000'000'000 + 100'000));
  EXPECT_FALSE(h.equivalent(1'000'000'000, 1'002'000'000));
  EXPECT_TRUE(h.equivalent(-1, 0));
}

TEST(Histogram, BucketsListNonEmptyBucketsAscending) {
  Histogram h;
  h.record_n(5, 2);
  h.record(3'000);
  h.record(3'001);
  h.record(1'000'000);
  const auto b = h.buckets();
  ASSERT_EQ(b.size(), 3u);
  EXPECT_EQ(b[0].value, 5);
  EXPECT_EQ(b[0].count, 2);
  EXPECT_EQ(b[1].value, 3'001);  // 3000 and 3001 share a width-2 bucket
  EXPECT_EQ(b[1].count, 2);
  EXPECT_TRUE(h.equivalent(b[2].value, 1'000'000));
  EXPECT_GE(b[2].value, 1'000'000);
  EXPECT_EQ(b[2].count, 1);
}

TEST(Histogram, MergeEqualsRecordingEverythingIntoOne) {
  std::mt19937_64 rng(9);
  const auto values = lognormal_values(rng, 100'000);
  Histogram all;
  std::vector<Histogram> shards(4);
  for (std::size_t i = 0; i < values.size(); ++i) {
    all.record(values[i]);
    shards[i % shards.size()].record(values[i]);
  }
  shards[2].record(kHour * 2);  // saturated in a shard
  all.record(kHour * 2);
  Histogram merged;
  for (const auto& s : shards) merged.merge(s);
  merged.merge(Histogram());  // empty merge changes nothing
  expect_same(merged, all);
  EXPECT_EQ(merged.encode(), all.encode());
}

TEST(Histogram, MergeOfDifferentShapesKeepsCountMinMaxAndPercentiles) {
  std::mt19937_64 rng(10);
  const auto values = lognormal_values(rng, 50'000);
  Histogram coarse(1, kHour, 2);
  for (const auto v : values) coarse.record(v);
  Histogram fine(1, kHour, 3);
  fine.merge(coarse);
  EXPECT_EQ(fine.count(), coarse.count());
  EXPECT_EQ(fine.min(), coarse.min());
  EXPECT_EQ(fine.max(), coarse.max());
  for (const double p : {1.0, 10.0, 50.0, 90.0, 99.0, 99.9}) {
    const auto a = static_cast<double>(coarse.value_at_percentile(p));
    const auto b = static_cast<double>(fine.value_at_percentile(p));
    EXPECT_NEAR(b, a, a * 0.02) << p;
  }
  // Still a consistent histogram: it encodes and decodes.
  const auto decoded = Histogram::decode(fine.encode());
  ASSERT_TRUE(decoded.has_value());
  expect_same(*decoded, fine);
}

TEST(Histogram, MergeIntoNarrowerRangeCountsSaturation) {
  Histogram wide(1, kHour, 3);
  wide.record(100);
  wide.record_n(50'000'000, 3);
  Histogram narrow(1, 1'000'000, 3);
  narrow.merge(wide);
  EXPECT_EQ(narrow.count(), 4);
  EXPECT_EQ(narrow.saturated(), 3);
  EXPECT_EQ(narrow.max(), 1'000'000);
  EXPECT_EQ(narrow.min(), 100);
}

TEST(Histogram, ResetKeepsShapeAndClearsCounts) {
  Histogram h(10, 1'000'000, 2);
  h.record_n(500, 10);
  h.record(5'000'000);
  h.reset();
  EXPECT_EQ(h.count(), 0);
  EXPECT_EQ(h.saturated(), 0);
  EXPECT_EQ(h.min(), 0);
  EXPECT_EQ(h.max(), 0);
  EXPECT_TRUE(h.buckets().empty());
  EXPECT_EQ(h.lowest(), 10);
  EXPECT_EQ(h.significant_digits(), 2);
  h.record(700);
  EXPECT_EQ(h.min(), 700);
}

TEST(Histogram, EncodeDecodeRoundTripsExactly) {
  std::mt19937_64 rng(11);
  for (int digits = 1; digits <= 5; ++digits) {
    Histogram h(1, kHour, digits);
    for (const auto v : lognormal_values(rng, 20'000)) h.record(v);
    h.record_n(kHour + 1, 3);
    h.record(0);
    const std::string text = h.encode();
    const auto decoded = Histogram::decode(text);
    ASSERT_TRUE(decoded.has_value()) << digits;
    expect_same(*decoded, h);
    EXPECT_EQ(decoded->encode(), text);
  }
}

TEST(Histogram, EncodingIsCompactAndJsonSafe) {
  std::mt19937_64 rng(12);
  const Histogram h = record_all(lognormal_values(rng, 100'000));
  const std::string text = h.encode();
  // 23,552 slots; run-length zeros make the size follow the non-empty buckets: each costs at
  // most a 3-byte count (< 2^20) and a 2-byte zero run here, plus a header of at most 40 bytes.
  EXPECT_LE(text.size(), (40 + 5 * h.buckets().size()) * 4 / 3 + 1);
  Histogram one;
  one.record(kHour);
  EXPECT_LT(one.encode().size(), 40u);
  for (const char c : text) {
    EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_') << c;
  }
}

TEST(Histogram, DecodeRejectsEveryTruncation) {
  Histogram h;
  h.record_n(3, 5);
  h.record(70'000);
  h.record(123'456'789);
  const std::string text = h.encode();
  ASSERT_TRUE(Histogram::decode(text).has_value());
  for (std::size_t n = 0; n < text.size(); ++n) {
    EXPECT_FALSE(Histogram::decode(text.substr(0, n)).has_value()) << n;
  }
  EXPECT_FALSE(Histogram::decode(text + "A").has_value());
  EXPECT_FALSE(Histogram::decode(text + "AA").has_value());
}

TEST(Histogram, DecodeSurvivesGarbageAndMutations) {
  std::mt19937_64 rng(13);
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::uniform_int_distribution<int> pick(0, 63);
  std::uniform_int_distribution<int> any_byte(0, 255);
  // Random base64url strings of every length up to 64, and random bytes.
  for (int i = 0; i < 20'000; ++i) {
    std::string s(static_cast<std::size_t>(i % 65), ' ');
    for (auto& c : s) c = kAlphabet[pick(rng)];
    (void)Histogram::decode(s);
    for (auto& c : s) c = static_cast<char>(any_byte(rng));
    (void)Histogram::decode(s);
  }
  EXPECT_FALSE(Histogram::decode("").has_value());
  EXPECT_FALSE(Histogram::decode("not base64!").has_value());
  EXPECT_FALSE(Histogram::decode("AQ==").has_value());  // padding is not part of the alphabet

  // Every one-character mutation of a valid encoding: nothing crashes, and whatever decodes is
  // self-consistent (its buckets add up to its count and it re-encodes to itself).
  Histogram h;
  for (const auto v : lognormal_values(rng, 1'000)) h.record(v);
  const std::string text = h.encode();
  int mutations = 0;
  int accepted = 0;
  for (std::size_t pos = 0; pos < text.size(); ++pos) {
    for (int k = 0; k < 64; k += 7) {
      std::string m = text;
      m[pos] = kAlphabet[k];
      if (m == text) continue;
      ++mutations;
      const auto d = Histogram::decode(m);
      if (!d) continue;
      ++accepted;
      std::int64_t sum = 0;
      for (const auto& b : d->buckets()) sum += b.count;
      EXPECT_EQ(sum, d->count());
      EXPECT_LE(d->value_at_percentile(50), d->max());
      EXPECT_GE(d->value_at_percentile(50), d->min());
      const auto again = Histogram::decode(d->encode());
      ASSERT_TRUE(again.has_value());
      EXPECT_EQ(again->encode(), d->encode());
    }
  }
  // Nearly all mutations must be caught by the consistency checks (about 0.2% get through:
  // those that move min or max within its bucket, or keep the sum).
  EXPECT_LT(accepted * 50, mutations);
}

// A writer for the documented format, to build inconsistent inputs by hand.
class Hand {
 public:
  Hand& u(std::uint64_t v) {
    while (v >= 0x80) {
      bytes_.push_back(static_cast<std::uint8_t>(v | 0x80));
      v >>= 7;
    }
    bytes_.push_back(static_cast<std::uint8_t>(v));
    return *this;
  }
  Hand& s(std::int64_t v) {
    return u((static_cast<std::uint64_t>(v) << 1) ^ (v < 0 ? ~std::uint64_t{0} : 0));
  }
  Hand& raw(std::uint8_t b) {
    bytes_.push_back(b);
    return *this;
  }
  std::string text() const {
    static constexpr char kAlphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    std::string out;
    std::uint32_t acc = 0;
    int bits = 0;
    for (const auto b : bytes_) {
      acc = (acc << 8) | b;
      bits += 8;
      while (bits >= 6) {
        bits -= 6;
        out.push_back(kAlphabet[(acc >> bits) & 63]);
      }
    }
    if (bits > 0) out.push_back(kAlphabet[(acc << (6 - bits)) & 63]);
    return out;
  }

 private:
  std::vector<std::uint8_t> bytes_;
};

// version, lowest, highest, digits, min, max, saturated, total
Hand header(std::uint64_t lowest, std::uint64_t highest, std::uint64_t digits, std::uint64_t min,
            std::uint64_t max, std::uint64_t saturated, std::uint64_t total) {
  Hand h;
  h.u(1).u(lowest).u(highest).u(digits).u(min).u(max).u(saturated).u(total);
  return h;
}

TEST(Histogram, HandWrittenEncodingMatchesFormat) {
  // Two values: 5 (slot 5) and 7 (slot 7), 1 .. 1e6 at 3 digits.
  const auto text = header(1, 1'000'000, 3, 5, 7, 0, 2).s(-5).s(1).s(-1).s(1).text();
  Histogram expected(1, 1'000'000, 3);
  expected.record(5);
  expected.record(7);
  EXPECT_EQ(expected.encode(), text);
  const auto d = Histogram::decode(text);
  ASSERT_TRUE(d.has_value());
  expect_same(*d, expected);
}

TEST(Histogram, DecodeRejectsInconsistentInput) {
  const auto counts57 = [](Hand h) { return h.s(-5).s(1).s(-1).s(1).text(); };
  const auto rejects = [](const std::string& t) { return !Histogram::decode(t).has_value(); };
  EXPECT_TRUE(
      rejects(Hand().u(2).u(1).u(1'000'000).u(3).u(5).u(7).u(0).u(2).s(-5).s(1).s(-1).s(1).text()))
      << "unknown version";
  EXPECT_TRUE(rejects(counts57(header(0, 1'000'000, 3, 5, 7, 0, 2)))) << "lowest 0";
  EXPECT_TRUE(rejects(counts57(header(1, 1, 3, 5, 7, 0, 2)))) << "highest < 2 * lowest";
  EXPECT_TRUE(rejects(counts57(header(1, 1'000'000, 6, 5, 7, 0, 2)))) << "digits 6";
  EXPECT_TRUE(rejects(counts57(header(1, 1'000'000, 0, 5, 7, 0, 2)))) << "digits 0";
  EXPECT_TRUE(
      rejects(counts57(header(std::uint64_t{1} << 50, std::uint64_t{1} << 52, 5, 5, 7, 0, 2))))
      << "shape too large";
  EXPECT_TRUE(rejects(counts57(header(1, 1'000'000, 3, 5, 7, 0, 3)))) << "total != sum";
  EXPECT_TRUE(rejects(counts57(header(1, 1'000'000, 3, 7, 5, 0, 2)))) << "min > max";
  EXPECT_TRUE(rejects(counts57(header(1, 1'000'000, 3, 4, 7, 0, 2)))) << "min not in first bucket";
  EXPECT_TRUE(rejects(counts57(header(1, 1'000'000, 3, 5, 8, 0, 2)))) << "max not in last bucket";
  EXPECT_TRUE(rejects(counts57(header(1, 1'000'000, 3, 5, 7, 1, 2)))) << "saturated, max < highest";
  EXPECT_TRUE(rejects(counts57(header(1, 1'000'000, 3, 5, 7, 3, 2)))) << "saturated > total";
  EXPECT_TRUE(rejects(counts57(header(1, 6, 3, 5, 7, 0, 2)))) << "max > highest";
  EXPECT_TRUE(rejects(header(1, 1'000'000, 3, 5, 0, 0, 0).text())) << "empty with min";
  EXPECT_TRUE(rejects(header(1, 1'000'000, 3, 5, 5, 0, 1).s(-5).s(1).s(-3).text()))
      << "trailing zero run";
  EXPECT_TRUE(rejects(header(1, 1'000'000, 3, 5, 5, 0, 1).s(-5).s(0).s(1).text())) << "zero token";
  EXPECT_TRUE(rejects(header(1, 1'000'000, 3, 5, 5, 0, 1).s(-2).s(-3).s(1).text())) << "two runs";
  EXPECT_TRUE(rejects(header(1, 1'000'000, 3, 5, 5, 0, 1).s(-5).s(1).raw(0x80).text()))
      << "varint cut short";
  EXPECT_TRUE(rejects(header(1, 100, 3, 5, 5, 0, 1).s(-100'000).s(1).text())) << "run past end";
  EXPECT_TRUE(rejects(header(1, 1'000'000, 3, 0, 0, 0, 2).s(INT64_MAX).s(INT64_MAX).text()))
      << "count overflow";
  Hand overlong = header(1, 1'000'000, 3, 5, 5, 0, 1).s(-5);
  for (int i = 0; i < 10; ++i) overlong.raw(0x81);
  overlong.raw(0x00);
  EXPECT_TRUE(rejects(overlong.text())) << "varint longer than 64 bits";
  EXPECT_TRUE(rejects(Hand().u(1).u(1).text())) << "header cut short";
}

}  // namespace
}  // namespace lab
