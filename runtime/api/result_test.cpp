#include "runtime/api/result.hpp"

#include <gtest/gtest.h>

#include <string>

#include "runtime/api/event_bus.hpp"
#include "runtime/api/task_queue.hpp"

namespace lab::runtime {
namespace {

TEST(Result, HoldsValueOrError) {
  Result<std::string> good = std::string("x");
  ASSERT_TRUE(good.ok());
  EXPECT_EQ(*good, "x");
  EXPECT_FALSE(good.error());

  Result<std::string> bad = Errc::kQueueFull;
  EXPECT_FALSE(bad.ok());
  EXPECT_EQ(bad.error(), Errc::kQueueFull);
  EXPECT_EQ(bad.error().category().name(), std::string("lab.runtime"));
  EXPECT_EQ(bad.error().message(), "queue_full");
}

TEST(Result, VoidResultIsOkByDefault) {
  Result<void> good;
  EXPECT_TRUE(good.ok());
  Result<void> bad = Errc::kLeaseLost;
  EXPECT_FALSE(bad.ok());
  EXPECT_EQ(bad.error(), Errc::kLeaseLost);
}

TEST(ResultDeathTest, ValueOnErrorAborts) {
  Result<int> bad = Errc::kNotFound;
  EXPECT_DEATH({ (void)bad.value(); }, "value\\(\\) on error");
}

TEST(Names, PriorityAndEventKindRoundTrip) {
  for (const auto p : {Priority::kHigh, Priority::kMedium, Priority::kNormal}) {
    EXPECT_EQ(parse_priority(to_string(p)), p);
  }
  EXPECT_FALSE(parse_priority("urgent"));
  for (const auto k : {EventKind::kTextChunk, EventKind::kToolStart, EventKind::kToolComplete,
                       EventKind::kDone, EventKind::kError}) {
    EXPECT_EQ(parse_event_kind(to_string(k)), k);
  }
  EXPECT_EQ(to_string(EventKind::kToolStart), "tool:start");
  EXPECT_TRUE(is_terminal(EventKind::kDone));
  EXPECT_TRUE(is_terminal(EventKind::kError));
  EXPECT_FALSE(is_terminal(EventKind::kToolComplete));
}

}  // namespace
}  // namespace lab::runtime
