#include "runtime/api/agent_state.hpp"

#include <gtest/gtest.h>

#include <set>
#include <utility>

namespace lab::runtime {
namespace {

using S = AgentState;

TEST(AgentState, NamesRoundTrip) {
  for (const auto s : kAllAgentStates) EXPECT_EQ(parse_agent_state(to_string(s)), s);
  EXPECT_EQ(to_string(S::kMembershipPaused), "MEMBERSHIP_PAUSED");
  EXPECT_FALSE(parse_agent_state("ready"));
  EXPECT_FALSE(parse_agent_state(""));
}

// The full 6 x 6 table, written out independently of the implementation's switch.
TEST(AgentState, TransitionTableIsExactlyTheDocumentedOne) {
  const std::set<std::pair<S, S>> allowed = {
      {S::kReady, S::kQueued},           {S::kReady, S::kProcessing},
      {S::kReady, S::kActive},           {S::kReady, S::kMembershipPaused},
      {S::kQueued, S::kProcessing},      {S::kQueued, S::kActive},
      {S::kQueued, S::kHibernated},      {S::kQueued, S::kMembershipPaused},
      {S::kProcessing, S::kActive},      {S::kProcessing, S::kHibernated},
      {S::kProcessing, S::kMembershipPaused},
      {S::kActive, S::kQueued},          {S::kActive, S::kProcessing},
      {S::kActive, S::kHibernated},      {S::kActive, S::kMembershipPaused},
      {S::kHibernated, S::kQueued},      {S::kHibernated, S::kProcessing},
      {S::kHibernated, S::kActive},      {S::kHibernated, S::kMembershipPaused},
      {S::kMembershipPaused, S::kHibernated},
  };
  int checked = 0;
  for (const auto from : kAllAgentStates) {
    for (const auto to : kAllAgentStates) {
      const bool expected = from == to || allowed.count({from, to}) > 0;
      EXPECT_EQ(is_allowed_transition(from, to), expected)
          << to_string(from) << " -> " << to_string(to);
      ++checked;
    }
  }
  EXPECT_EQ(checked, 36);
}

TEST(AgentState, BusyAgentCannotBeMarkedQueued) {
  EXPECT_FALSE(is_allowed_transition(S::kProcessing, S::kQueued));
}

TEST(AgentState, PausedAgentOnlyLeavesByRenewal) {
  for (const auto to : kAllAgentStates) {
    if (to == S::kHibernated || to == S::kMembershipPaused) continue;
    EXPECT_FALSE(is_allowed_transition(S::kMembershipPaused, to)) << to_string(to);
  }
  EXPECT_TRUE(is_allowed_transition(S::kMembershipPaused, S::kHibernated));
}

TEST(AgentState, StateCountsSum) {
  StateCounts c;
  c.by_state[static_cast<std::size_t>(S::kActive)] = 3;
  c.by_state[static_cast<std::size_t>(S::kHibernated)] = 4;
  EXPECT_EQ(c[S::kActive], 3u);
  EXPECT_EQ(c.total(), 7u);
}

}  // namespace
}  // namespace lab::runtime
