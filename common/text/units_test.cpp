#include "common/text/units.hpp"

#include <gtest/gtest.h>

using namespace std::chrono_literals;
namespace u = lab::units;

TEST(Units, ParsesDurationsWithUnits) {
  EXPECT_EQ(u::parse_duration("250ms"), 250ms);
  EXPECT_EQ(u::parse_duration("1.5s"), 1500ms);
  EXPECT_EQ(u::parse_duration("2m"), 120s);
  EXPECT_EQ(u::parse_duration("1h"), 3600s);
  EXPECT_EQ(u::parse_duration("500us"), 500us);
  EXPECT_EQ(u::parse_duration("3"), 3s);
  EXPECT_EQ(u::parse_duration("0"), 0s);
}

TEST(Units, RejectsBadDurations) {
  EXPECT_FALSE(u::parse_duration(""));
  EXPECT_FALSE(u::parse_duration("ms"));
  EXPECT_FALSE(u::parse_duration("5 parsecs"));
  EXPECT_FALSE(u::parse_duration("-1s"));
  EXPECT_FALSE(u::parse_duration("1e30h"));
}

TEST(Units, ParsesRanges) {
  auto r = u::parse_duration_range("1s..3s");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->lo, 1s);
  EXPECT_EQ(r->hi, 3s);
  EXPECT_FALSE(u::parse_duration_range("3s..1s"));
  auto n = u::parse_int_range("50..200");
  ASSERT_TRUE(n);
  EXPECT_EQ(n->lo, 50);
  EXPECT_EQ(n->hi, 200);
  EXPECT_EQ(u::parse_int_range("7")->hi, 7);
  EXPECT_FALSE(u::parse_int_range("7..x"));
}

TEST(Units, ParsesRates) {
  EXPECT_DOUBLE_EQ(*u::parse_rate_per_second("500"), 500);
  EXPECT_DOUBLE_EQ(*u::parse_rate_per_second("500/s"), 500);
  EXPECT_DOUBLE_EQ(*u::parse_rate_per_second("30/m"), 0.5);
  EXPECT_DOUBLE_EQ(*u::parse_rate_per_second("10/100ms"), 100);
  EXPECT_FALSE(u::parse_rate_per_second("0"));
  EXPECT_FALSE(u::parse_rate_per_second("5/fortnight"));
}

TEST(Units, ParsesBytesAndRatios) {
  EXPECT_EQ(u::parse_bytes("64KiB"), 65536u);
  EXPECT_EQ(u::parse_bytes("1MB"), 1000000u);
  EXPECT_FALSE(u::parse_bytes("1XB"));
  EXPECT_DOUBLE_EQ(*u::parse_ratio("1%"), 0.01);
  EXPECT_DOUBLE_EQ(*u::parse_ratio("0.25"), 0.25);
  EXPECT_FALSE(u::parse_ratio("%"));
}

TEST(Units, FormatsDurations) {
  EXPECT_EQ(u::format_duration(1500ms), "1.5s");
  EXPECT_EQ(u::format_duration(120s), "2m");
  EXPECT_EQ(u::format_duration(250ms), "250ms");
}
