#include "runtime/stores/memory_store.hpp"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

namespace lab::runtime {
namespace {

using S = AgentState;

NewAgent agent(std::string id, std::string user = "u1") {
  return NewAgent{std::move(id), std::move(user), "helper", "default"};
}

TurnWrite turn(std::string agent_id, std::string task_id, std::uint64_t fence,
               std::vector<std::string> contents) {
  TurnWrite t;
  t.agent_id = std::move(agent_id);
  t.task_id = std::move(task_id);
  t.fence = fence;
  bool user = true;
  for (auto& c : contents) {
    t.messages.push_back(Message{0, user ? Role::kUser : Role::kAssistant, std::move(c)});
    user = !user;
  }
  t.stats.input_tokens = 10;
  t.stats.output_tokens = 20;
  t.stats.cost_usd = 0.5;
  t.stats.duration = Micros(1000);
  return t;
}

std::vector<std::string> contents(MemoryStore& store, std::string_view agent_id, std::size_t max = 100) {
  auto h = store.load_history(agent_id, max);
  EXPECT_TRUE(h.ok());
  std::vector<std::string> out;
  if (!h.ok()) return out;
  for (const auto& m : h->messages) out.push_back(m.content);
  return out;
}

using Texts = std::vector<std::string>;

// ---- agents and lifecycle -------------------------------------------------------------------

TEST(MemoryStore, CreatesGetsAndListsAgentsPerUser) {
  MemoryStore store;
  ASSERT_TRUE(store.create_agent(agent("a1")).ok());
  ASSERT_TRUE(store.create_agent(agent("a2")).ok());
  ASSERT_TRUE(store.create_agent(agent("b1", "u2")).ok());
  auto a1 = store.get_agent("a1");
  ASSERT_TRUE(a1.ok());
  EXPECT_EQ(a1->user_id, "u1");
  EXPECT_EQ(a1->state, S::kReady);
  EXPECT_EQ(a1->template_id, "default");
  EXPECT_FALSE(a1->fork.is_fork());
  auto mine = store.list_agents("u1", 10);
  ASSERT_TRUE(mine.ok());
  ASSERT_EQ(mine->size(), 2u);
  EXPECT_EQ((*mine)[0].id, "a1");
  EXPECT_EQ((*mine)[1].id, "a2");
  EXPECT_EQ(store.list_agents("u1", 1)->size(), 1u);
  EXPECT_TRUE(store.list_agents("nobody", 10)->empty());
  EXPECT_EQ(store.create_agent(agent("a1")).error(), Errc::kAlreadyExists);
  EXPECT_EQ(store.create_agent(agent("")).error(), Errc::kInvalidArgument);
  EXPECT_EQ(store.create_agent(agent("x", "")).error(), Errc::kInvalidArgument);
  EXPECT_EQ(store.get_agent("zz").error(), Errc::kNotFound);
}

TEST(MemoryStore, AgentBoundRefusesCreation) {
  MemoryStore store({.max_agents = 2});
  ASSERT_TRUE(store.create_agent(agent("a")).ok());
  ASSERT_TRUE(store.create_agent(agent("b")).ok());
  EXPECT_EQ(store.create_agent(agent("c")).error(), Errc::kLimitExceeded);
  EXPECT_EQ(store.stats().limit_rejections, 1u);
}

TEST(MemoryStore, TransitionsFollowTheLifecycleAndTrackOwnerAndCounts) {
  MemoryStore store;
  ASSERT_TRUE(store.create_agent(agent("a")).ok());
  ASSERT_TRUE(store.transition("a", {.to = S::kQueued}).ok());
  auto p = store.transition("a", {.to = S::kProcessing, .fence = 1, .owner = "w1"});
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->worker_id, "w1");
  EXPECT_EQ(p->fence, 1u);
  // The gateway cannot mark a busy agent QUEUED.
  EXPECT_EQ(store.transition("a", {.to = S::kQueued}).error(), Errc::kInvalidTransition);
  EXPECT_EQ(store.transition("a", {.to = S::kReady}).error(), Errc::kInvalidTransition);
  ASSERT_TRUE(store.transition("a", {.to = S::kActive, .fence = 1, .owner = "w1"}).ok());
  auto h = store.transition("a", {.to = S::kHibernated});
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->worker_id, "");
  auto counts = store.count_by_state();
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ((*counts)[S::kHibernated], 1u);
  EXPECT_EQ(counts->total(), 1u);
  EXPECT_EQ(store.transition("zz", {.to = S::kQueued}).error(), Errc::kNotFound);
}

TEST(MemoryStore, CompareAndSetOnStateAndOwner) {
  MemoryStore store;
  ASSERT_TRUE(store.create_agent(agent("a")).ok());
  ASSERT_TRUE(store.transition("a", {.to = S::kActive, .owner = "w1"}).ok());
  EXPECT_EQ(store.transition("a", {.to = S::kHibernated, .expected_state = S::kProcessing}).error(),
            Errc::kConflict);
  EXPECT_EQ(store.transition("a", {.to = S::kHibernated, .expected_state = S::kActive,
                                   .expected_owner = std::string_view("w2")})
                .error(),
            Errc::kConflict);
  EXPECT_TRUE(store.transition("a", {.to = S::kHibernated, .expected_state = S::kActive,
                                     .expected_owner = std::string_view("w1")})
                  .ok());
}

TEST(MemoryStore, FencedTransitionRefusesAnOlderToken) {
  MemoryStore store;
  ASSERT_TRUE(store.create_agent(agent("a")).ok());
  ASSERT_TRUE(store.transition("a", {.to = S::kProcessing, .fence = 5, .owner = "w2"}).ok());
  EXPECT_EQ(store.transition("a", {.to = S::kActive, .fence = 4, .owner = "w1"}).error(),
            Errc::kStaleFence);
  EXPECT_EQ(store.get_agent("a")->state, S::kProcessing);
  EXPECT_TRUE(store.transition("a", {.to = S::kActive, .fence = 5, .owner = "w2"}).ok());
  EXPECT_EQ(store.stats().stale_fence_rejections, 1u);
}

TEST(MemoryStore, ListOwnedFindsAWorkersProcessingAgents) {
  MemoryStore store;
  for (const char* id : {"a", "b", "c"}) ASSERT_TRUE(store.create_agent(agent(id)).ok());
  ASSERT_TRUE(store.transition("a", {.to = S::kProcessing, .fence = 1, .owner = "w1"}).ok());
  ASSERT_TRUE(store.transition("b", {.to = S::kProcessing, .fence = 1, .owner = "w2"}).ok());
  ASSERT_TRUE(store.transition("c", {.to = S::kActive, .fence = 1, .owner = "w1"}).ok());
  auto owned = store.list_owned(S::kProcessing, "w1", 10);
  ASSERT_TRUE(owned.ok());
  EXPECT_EQ(*owned, std::vector<std::string>{"a"});
}

// ---- membership ---------------------------------------------------------------------------

TEST(MemoryStore, MembershipPauseStopsAllOfAUsersAgentsAndRenewalHibernatesThem) {
  MemoryStore store;
  for (const char* id : {"a", "b", "c"}) ASSERT_TRUE(store.create_agent(agent(id)).ok());
  ASSERT_TRUE(store.create_agent(agent("other", "u2")).ok());
  ASSERT_TRUE(store.transition("b", {.to = S::kProcessing, .fence = 1, .owner = "w1"}).ok());
  ASSERT_TRUE(store.transition("c", {.to = S::kHibernated}).error() == Errc::kInvalidTransition);
  EXPECT_EQ(*store.set_membership_paused("u1", true), 3u);
  EXPECT_EQ(*store.set_membership_paused("u1", true), 0u);  // idempotent
  EXPECT_TRUE(*store.membership_paused("u1"));
  EXPECT_EQ(store.get_agent("b")->state, S::kMembershipPaused);
  EXPECT_EQ(store.get_agent("b")->worker_id, "");
  EXPECT_EQ(store.get_agent("other")->state, S::kReady);
  // New work is refused, including the busy agent's end-of-turn and a sneaky early "renewal".
  EXPECT_EQ(store.transition("a", {.to = S::kQueued}).error(), Errc::kMembershipPaused);
  EXPECT_EQ(store.transition("b", {.to = S::kActive, .fence = 1, .owner = "w1"}).error(),
            Errc::kMembershipPaused);
  EXPECT_EQ(store.transition("a", {.to = S::kHibernated}).error(), Errc::kMembershipPaused);
  // Agents created while paused start paused.
  EXPECT_EQ(store.create_agent(agent("d"))->state, S::kMembershipPaused);
  EXPECT_EQ((*store.count_by_state())[S::kMembershipPaused], 4u);
  EXPECT_EQ(*store.set_membership_paused("u1", false), 4u);
  EXPECT_FALSE(*store.membership_paused("u1"));
  for (const char* id : {"a", "b", "c", "d"}) EXPECT_EQ(store.get_agent(id)->state, S::kHibernated) << id;
  EXPECT_TRUE(store.transition("a", {.to = S::kQueued}).ok());
}

// ---- turns: idempotency and fencing -------------------------------------------------------

TEST(MemoryStore, CommitStoresATurnExactlyOncePerTaskId) {
  MemoryStore store;
  ASSERT_TRUE(store.create_agent(agent("a")).ok());
  auto first = store.commit_turn(turn("a", "task-1", 1, {"hi", "hello"}));
  ASSERT_TRUE(first.ok());
  EXPECT_TRUE(first->applied);
  EXPECT_EQ(first->first_seq, 1u);
  EXPECT_EQ(first->last_seq, 2u);
  auto again = store.commit_turn(turn("a", "task-1", 1, {"hi", "hello"}));
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again->applied);
  EXPECT_EQ(again->first_seq, 1u);
  EXPECT_EQ(again->last_seq, 2u);
  EXPECT_EQ(contents(store, "a"), (Texts{"hi", "hello"}));
  EXPECT_EQ(store.get_agent("a")->message_count, 2u);
  EXPECT_EQ(store.turn_totals("a")->turns, 1u);
  EXPECT_EQ(store.system_turn_totals()->output_tokens, 20u);
  EXPECT_TRUE(*store.turn_committed("a", "task-1"));
  EXPECT_FALSE(*store.turn_committed("a", "task-2"));
  EXPECT_EQ(store.stats().duplicate_commits, 1u);
}

TEST(MemoryStore, AuditCountsEachTasksTurnsAndMessagesAndSaysWhenRetentionDroppedSome) {
  MemoryStoreLimits limits;
  limits.max_turns_per_agent = 2;
  MemoryStore store(limits);
  ASSERT_TRUE(store.create_agent(agent("a")).ok());
  ASSERT_TRUE(store.commit_turn(turn("a", "t1", 1, {"hi", "hello"})).ok());
  ASSERT_TRUE(store.commit_turn(turn("a", "t1", 1, {"hi", "hello"})).ok());  // a redelivery: no effect
  ASSERT_TRUE(store.commit_turn(turn("a", "t2", 1, {"q", "a", "q2", "a2"})).ok());
  const std::vector<std::string> ids{"t2", "never", "t1"};
  auto audit = store.audit_tasks(ids);
  ASSERT_TRUE(audit.ok());
  EXPECT_TRUE(audit->complete);
  ASSERT_EQ(audit->tasks.size(), 3u);
  EXPECT_EQ(audit->tasks[0].turns, 1u);
  EXPECT_EQ(audit->tasks[0].messages, 4u);
  EXPECT_EQ(audit->tasks[0].expected_messages, 4u);
  EXPECT_EQ(audit->tasks[1].task_id, "never");
  EXPECT_EQ(audit->tasks[1].turns, 0u);
  EXPECT_EQ(audit->tasks[2].turns, 1u);
  EXPECT_EQ(audit->tasks[2].messages, 2u);
  ASSERT_TRUE(store.commit_turn(turn("a", "t3", 1, {"x", "y"})).ok());  // t1's turn is dropped
  audit = store.audit_tasks(ids);
  ASSERT_TRUE(audit.ok());
  EXPECT_FALSE(audit->complete);
  EXPECT_EQ(audit->tasks[2].turns, 0u);
}

TEST(MemoryStore, CommitWithStaleFenceIsRefusedAndWritesNothing) {
  MemoryStore store;
  ASSERT_TRUE(store.create_agent(agent("a")).ok());
  // w2 took the lock over (token 2) and marked the agent; w1 (token 1) wakes up late.
  ASSERT_TRUE(store.transition("a", {.to = S::kProcessing, .fence = 2, .owner = "w2"}).ok());
  EXPECT_EQ(store.commit_turn(turn("a", "task-1", 1, {"stale"})).error(), Errc::kStaleFence);
  EXPECT_TRUE(contents(store, "a").empty());
  EXPECT_TRUE(store.commit_turn(turn("a", "task-1", 2, {"fresh"}))->applied);
  EXPECT_TRUE(store.commit_turn(turn("a", "task-2", 3, {"newer"}))->applied);
  EXPECT_EQ(store.get_agent("a")->fence, 3u);
  EXPECT_EQ(store.commit_turn(turn("a", "task-3", 2, {"old"})).error(), Errc::kStaleFence);
  EXPECT_EQ(contents(store, "a"), (Texts{"fresh", "newer"}));
}

TEST(MemoryStore, RedeliveredTaskOfAStaleWorkerIsReportedAsDoneNotStale) {
  MemoryStore store;
  ASSERT_TRUE(store.create_agent(agent("a")).ok());
  ASSERT_TRUE(store.commit_turn(turn("a", "task-1", 1, {"q", "a"}))->applied);
  ASSERT_TRUE(store.commit_turn(turn("a", "task-2", 2, {"q2", "a2"}))->applied);
  auto replay = store.commit_turn(turn("a", "task-1", 1, {"q", "a"}));
  ASSERT_TRUE(replay.ok());
  EXPECT_FALSE(replay->applied);
  EXPECT_EQ(contents(store, "a").size(), 4u);
}

TEST(MemoryStore, CommitRejectsBadArguments) {
  MemoryStore store;
  ASSERT_TRUE(store.create_agent(agent("a")).ok());
  EXPECT_EQ(store.commit_turn(turn("a", "", 1, {"x"})).error(), Errc::kInvalidArgument);
  EXPECT_EQ(store.commit_turn(turn("a", "t", 0, {"x"})).error(), Errc::kInvalidArgument);
  EXPECT_EQ(store.commit_turn(turn("zz", "t", 1, {"x"})).error(), Errc::kNotFound);
}

TEST(MemoryStore, LoadHistoryReturnsTheNewestMessagesOldestFirst) {
  MemoryStore store;
  ASSERT_TRUE(store.create_agent(agent("a")).ok());
  ASSERT_TRUE(store.commit_turn(turn("a", "t1", 1, {"1", "2"})).ok());
  ASSERT_TRUE(store.commit_turn(turn("a", "t2", 1, {"3", "4"})).ok());
  auto h = store.load_history("a", 3);
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->total, 4u);
  ASSERT_EQ(h->messages.size(), 3u);
  EXPECT_EQ(h->messages[0].content, "2");
  EXPECT_EQ(h->messages[0].seq, 2u);
  EXPECT_EQ(h->messages[0].role, Role::kAssistant);
  EXPECT_EQ(h->messages[2].seq, 4u);
  EXPECT_EQ(store.load_history("zz", 3).error(), Errc::kNotFound);
}

// ---- forks --------------------------------------------------------------------------------

TEST(MemoryStore, ForkSeesParentHistoryUpToTheCheckpointAndNothingLater) {
  MemoryStore store;
  ASSERT_TRUE(store.create_agent(agent("p")).ok());
  ASSERT_TRUE(store.commit_turn(turn("p", "t1", 1, {"p1", "p2"})).ok());
  auto cp = store.create_checkpoint("p", R"({"mode":"x"})", {"before"});
  ASSERT_TRUE(cp.ok());
  EXPECT_EQ(cp->message_count, 2u);
  ASSERT_TRUE(store.commit_turn(turn("p", "t2", 1, {"p3", "p4"})).ok());

  auto forked = store.fork({.parent_id = "p", .checkpoint_id = cp->id, .fork_ids = {"f1", "f2"}});
  ASSERT_TRUE(forked.ok());
  ASSERT_EQ(forked->forks.size(), 2u);
  EXPECT_EQ(forked->checkpoint.id, cp->id);
  const AgentRecord& f1 = forked->forks[0];
  EXPECT_EQ(f1.id, "f1");
  EXPECT_EQ(f1.user_id, "u1");
  EXPECT_EQ(f1.state, S::kReady);
  EXPECT_EQ(f1.message_count, 2u);
  EXPECT_EQ(f1.fork.parent_agent_id, "p");
  EXPECT_EQ(f1.fork.checkpoint_id, cp->id);

  EXPECT_EQ(contents(store, "f1"), (Texts{"p1", "p2"}));
  ASSERT_TRUE(store.commit_turn(turn("f1", "t3", 1, {"f1a", "f1b"})).ok());
  ASSERT_TRUE(store.commit_turn(turn("p", "t4", 1, {"p5", "p6"})).ok());  // later parent writes
  EXPECT_EQ(contents(store, "f1"), (Texts{"p1", "p2", "f1a", "f1b"}));
  EXPECT_EQ(contents(store, "f2"), (Texts{"p1", "p2"}));
  EXPECT_EQ(contents(store, "p"), (Texts{"p1", "p2", "p3", "p4", "p5", "p6"}));
  auto h = store.load_history("f1", 100);
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->total, 4u);
  EXPECT_EQ(h->messages[2].seq, 3u);  // the fork's own numbering continues from its base
  EXPECT_EQ(contents(store, "f1", 3), (Texts{"p2", "f1a", "f1b"}));
  // Nothing was copied: the store holds p's 6 messages and f1's 2.
  EXPECT_EQ(store.stats().message_bytes, 6 * 2 + 2 * 3u);
}

TEST(MemoryStore, ForkWithoutCheckpointTakesOneAtTheHead) {
  MemoryStore store;
  ASSERT_TRUE(store.create_agent(agent("p")).ok());
  ASSERT_TRUE(store.commit_turn(turn("p", "t1", 1, {"a", "b"})).ok());
  auto forked = store.fork({.parent_id = "p", .fork_ids = {"f"}});
  ASSERT_TRUE(forked.ok());
  EXPECT_EQ(forked->checkpoint.message_count, 2u);
  EXPECT_EQ(forked->checkpoint.agent_id, "p");
  EXPECT_EQ(forked->checkpoint.tags, std::vector<std::string>{"fork"});
  EXPECT_TRUE(store.get_checkpoint(forked->checkpoint.id).ok());
  EXPECT_EQ(contents(store, "f"), (Texts{"a", "b"}));
}

TEST(MemoryStore, ForksOfForksReadThroughTheChain) {
  MemoryStore store;
  ASSERT_TRUE(store.create_agent(agent("p")).ok());
  ASSERT_TRUE(store.commit_turn(turn("p", "t1", 1, {"p1", "p2"})).ok());
  ASSERT_TRUE(store.fork({.parent_id = "p", .fork_ids = {"c"}}).ok());
  ASSERT_TRUE(store.commit_turn(turn("c", "t2", 1, {"c1", "c2"})).ok());
  auto cp_c = store.create_checkpoint("c", "{}", {});
  ASSERT_TRUE(cp_c.ok());
  EXPECT_EQ(cp_c->parent_checkpoint_id, store.get_agent("c")->fork.checkpoint_id);
  ASSERT_TRUE(store.commit_turn(turn("c", "t3", 1, {"c3", "c4"})).ok());
  ASSERT_TRUE(store.fork({.parent_id = "c", .checkpoint_id = cp_c->id, .fork_ids = {"g"}}).ok());
  ASSERT_TRUE(store.commit_turn(turn("g", "t4", 1, {"g1", "g2"})).ok());
  EXPECT_EQ(contents(store, "g"), (Texts{"p1", "p2", "c1", "c2", "g1", "g2"}));
  EXPECT_EQ(contents(store, "c"), (Texts{"p1", "p2", "c1", "c2", "c3", "c4"}));
}

TEST(MemoryStore, ForkAtACheckpointInsideTheParentsOwnBase) {
  MemoryStore store;
  ASSERT_TRUE(store.create_agent(agent("p")).ok());
  ASSERT_TRUE(store.commit_turn(turn("p", "t1", 1, {"p1", "p2"})).ok());
  auto early = store.create_checkpoint("p", "{}", {});
  ASSERT_TRUE(early.ok());
  ASSERT_TRUE(store.commit_turn(turn("p", "t2", 1, {"p3", "p4"})).ok());
  ASSERT_TRUE(store.fork({.parent_id = "p", .fork_ids = {"c"}}).ok());  // base: 4 messages
  auto c_cp = store.create_checkpoint("c", "{}", {});  // before any own message: count 4
  ASSERT_TRUE(c_cp.ok());
  ASSERT_TRUE(store.fork({.parent_id = "c", .checkpoint_id = c_cp->id, .fork_ids = {"g"}}).ok());
  EXPECT_EQ(contents(store, "g"), (Texts{"p1", "p2", "p3", "p4"}));
  ASSERT_TRUE(store.fork({.parent_id = "p", .checkpoint_id = early->id, .fork_ids = {"e"}}).ok());
  EXPECT_EQ(contents(store, "e"), (Texts{"p1", "p2"}));
}

TEST(MemoryStore, ForkIsAllOrNothingAndValidated) {
  MemoryStore store({.max_fork_depth = 2});
  ASSERT_TRUE(store.create_agent(agent("p")).ok());
  ASSERT_TRUE(store.create_agent(agent("q")).ok());
  ASSERT_TRUE(store.create_agent(agent("taken")).ok());
  auto q_cp = store.create_checkpoint("q", "{}", {});
  ASSERT_TRUE(q_cp.ok());
  EXPECT_EQ(store.fork({.parent_id = "nope", .fork_ids = {"f"}}).error(), Errc::kNotFound);
  EXPECT_EQ(store.fork({.parent_id = "p", .checkpoint_id = q_cp->id, .fork_ids = {"f"}}).error(),
            Errc::kNotFound);  // another agent's checkpoint
  EXPECT_EQ(store.fork({.parent_id = "p", .checkpoint_id = "ckpt-999", .fork_ids = {"f"}}).error(),
            Errc::kNotFound);
  EXPECT_EQ(store.fork({.parent_id = "p", .fork_ids = {"f", "taken"}}).error(), Errc::kAlreadyExists);
  EXPECT_EQ(store.get_agent("f").error(), Errc::kNotFound);  // nothing half-made
  EXPECT_EQ(store.fork({.parent_id = "p", .fork_ids = {"f", "f"}}).error(), Errc::kInvalidArgument);
  EXPECT_EQ(store.fork({.parent_id = "p", .fork_ids = {}}).error(), Errc::kInvalidArgument);
  EXPECT_EQ(store.fork({.parent_id = "p", .fork_ids = {""}}).error(), Errc::kInvalidArgument);
  EXPECT_TRUE(store.list_checkpoints("p")->empty());  // no checkpoint left behind by failures
  ASSERT_TRUE(store.fork({.parent_id = "p", .fork_ids = {"d1"}}).ok());
  ASSERT_TRUE(store.fork({.parent_id = "d1", .fork_ids = {"d2"}}).ok());
  EXPECT_EQ(store.fork({.parent_id = "d2", .fork_ids = {"d3"}}).error(), Errc::kLimitExceeded);
}

TEST(MemoryStore, ForksOfAPausedUserStartPaused) {
  MemoryStore store;
  ASSERT_TRUE(store.create_agent(agent("p")).ok());
  ASSERT_TRUE(store.set_membership_paused("u1", true).ok());
  auto forked = store.fork({.parent_id = "p", .fork_ids = {"f"}});
  ASSERT_TRUE(forked.ok());
  EXPECT_EQ(forked->forks[0].state, S::kMembershipPaused);
}

// ---- bounds -------------------------------------------------------------------------------

TEST(MemoryStore, OwnLogKeepsTheNewestMessages) {
  MemoryStore store({.max_messages_per_agent = 3});
  ASSERT_TRUE(store.create_agent(agent("a")).ok());
  ASSERT_TRUE(store.commit_turn(turn("a", "t1", 1, {"1", "2"})).ok());
  ASSERT_TRUE(store.commit_turn(turn("a", "t2", 1, {"3", "4"})).ok());
  EXPECT_EQ(contents(store, "a"), (Texts{"2", "3", "4"}));
  EXPECT_EQ(store.load_history("a", 10)->total, 4u);
  EXPECT_EQ(store.stats().dropped_messages, 1u);
  EXPECT_EQ(store.stats().message_bytes, 3u);
}

TEST(MemoryStore, TrimmedParentLogShortensItsForksHistoryWithoutGaps) {
  MemoryStore store({.max_messages_per_agent = 2});
  ASSERT_TRUE(store.create_agent(agent("p")).ok());
  ASSERT_TRUE(store.commit_turn(turn("p", "t1", 1, {"p1", "p2"})).ok());
  ASSERT_TRUE(store.fork({.parent_id = "p", .fork_ids = {"f"}}).ok());
  ASSERT_TRUE(store.commit_turn(turn("f", "t2", 1, {"f1", "f2"})).ok());
  EXPECT_EQ(contents(store, "f"), (Texts{"p1", "p2", "f1", "f2"}));
  ASSERT_TRUE(store.commit_turn(turn("f", "t3", 1, {"f3"})).ok());  // f drops f1
  EXPECT_EQ(contents(store, "f"), (Texts{"f2", "f3"}));  // stops at the gap, never p2 + f2
}

TEST(MemoryStore, TurnIndexKeepsTheNewestTurns) {
  MemoryStore store({.max_turns_per_agent = 2});
  ASSERT_TRUE(store.create_agent(agent("a")).ok());
  for (int i = 1; i <= 3; ++i) {
    ASSERT_TRUE(store.commit_turn(turn("a", "t" + std::to_string(i), 1, {"m"})).ok());
  }
  EXPECT_FALSE(*store.turn_committed("a", "t1"));
  EXPECT_TRUE(*store.turn_committed("a", "t3"));
  EXPECT_EQ(store.turn_totals("a")->turns, 3u);  // totals are kept whole
  EXPECT_EQ(store.recent_turns("a", 10)->size(), 2u);
  EXPECT_EQ(store.stats().dropped_turns, 1u);
}

TEST(MemoryStore, MessageByteBoundRefusesCommits) {
  MemoryStore store({.max_message_bytes = 10});
  ASSERT_TRUE(store.create_agent(agent("a")).ok());
  ASSERT_TRUE(store.commit_turn(turn("a", "t1", 1, {"12345", "678"})).ok());
  EXPECT_EQ(store.commit_turn(turn("a", "t2", 1, {"abc"})).error(), Errc::kLimitExceeded);
  EXPECT_FALSE(*store.turn_committed("a", "t2"));
  EXPECT_TRUE(store.commit_turn(turn("a", "t3", 1, {"ab"})).ok());
}

TEST(MemoryStore, OldCheckpointsAreDroppedButTheirForksKeepTheirHistory) {
  MemoryStore store({.max_checkpoints_per_agent = 1});
  ASSERT_TRUE(store.create_agent(agent("p")).ok());
  ASSERT_TRUE(store.commit_turn(turn("p", "t1", 1, {"a"})).ok());
  auto cp1 = store.create_checkpoint("p", "{}", {});
  ASSERT_TRUE(cp1.ok());
  ASSERT_TRUE(store.fork({.parent_id = "p", .checkpoint_id = cp1->id, .fork_ids = {"f"}}).ok());
  ASSERT_TRUE(store.create_checkpoint("p", "{}", {}).ok());
  EXPECT_EQ(store.get_checkpoint(cp1->id).error(), Errc::kNotFound);
  EXPECT_EQ(store.fork({.parent_id = "p", .checkpoint_id = cp1->id, .fork_ids = {"g"}}).error(),
            Errc::kNotFound);
  EXPECT_EQ(contents(store, "f"), (Texts{"a"}));
  EXPECT_EQ(store.list_checkpoints("p")->size(), 1u);
}

// ---- statistics and tool calls ------------------------------------------------------------

TEST(MemoryStore, TurnStatisticsAndToolCallsAreReadBack) {
  MemoryStore store;
  ASSERT_TRUE(store.create_agent(agent("a")).ok());
  auto t1 = turn("a", "t1", 1, {"q", "a"});
  t1.tool_calls.push_back(ToolCallRecord{"c1", "search", "{}", "{}", ToolCallState::kCompleted, Micros(5)});
  t1.tool_calls.push_back(ToolCallRecord{"c2", "fetch", "{}", "{}", ToolCallState::kFailed, Micros(7)});
  t1.stats.model = "primary";
  auto t2 = turn("a", "t2", 1, {"q", "a"});
  t2.tool_calls.push_back(ToolCallRecord{"c3", "search", "{}", "{}", ToolCallState::kCompleted, Micros(9)});
  ASSERT_TRUE(store.commit_turn(t1).ok());
  ASSERT_TRUE(store.commit_turn(t2).ok());
  const auto totals = store.turn_totals("a");
  ASSERT_TRUE(totals.ok());
  EXPECT_EQ(totals->turns, 2u);
  EXPECT_EQ(totals->input_tokens, 20u);
  EXPECT_EQ(totals->output_tokens, 40u);
  EXPECT_EQ(totals->tool_calls, 3u);
  EXPECT_DOUBLE_EQ(totals->cost_usd, 1.0);
  EXPECT_EQ(totals->duration, Micros(2000));
  const auto recent = store.recent_turns("a", 1);
  ASSERT_TRUE(recent.ok());
  ASSERT_EQ(recent->size(), 1u);
  EXPECT_EQ((*recent)[0].task_id, "t2");
  const auto calls = store.recent_tool_calls("a", 2);
  ASSERT_TRUE(calls.ok());
  ASSERT_EQ(calls->size(), 2u);
  EXPECT_EQ((*calls)[0].call_id, "c2");
  EXPECT_EQ((*calls)[1].call_id, "c3");
  EXPECT_EQ((*calls)[0].state, ToolCallState::kFailed);
  EXPECT_EQ(store.turn_totals("zz").error(), Errc::kNotFound);
  EXPECT_EQ(store.turn_totals("a")->turns, store.system_turn_totals()->turns);
}

TEST(MemoryStore, ConcurrentCommitsAreEachStoredOnce) {
  // The idempotency window must cover how far one thread can run ahead of the other.
  MemoryStore store({.max_turns_per_agent = 1024});
  constexpr int kAgents = 4;
  constexpr int kTurns = 500;
  for (int a = 0; a < kAgents; ++a) ASSERT_TRUE(store.create_agent(agent("a" + std::to_string(a))).ok());
  // Two threads commit the same task ids (a redelivery race); each turn must land once.
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&store] {
      for (int i = 0; i < kTurns; ++i) {
        for (int a = 0; a < kAgents; ++a) {
          auto r = store.commit_turn(turn("a" + std::to_string(a), "t" + std::to_string(i), 1, {"q", "a"}));
          ASSERT_TRUE(r.ok());
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int a = 0; a < kAgents; ++a) {
    EXPECT_EQ(store.get_agent("a" + std::to_string(a))->message_count, 2u * kTurns);
  }
  EXPECT_EQ(store.system_turn_totals()->turns, static_cast<std::uint64_t>(kAgents * kTurns));
  EXPECT_EQ(store.stats().duplicate_commits, static_cast<std::uint64_t>(kAgents * kTurns));
}

}  // namespace
}  // namespace lab::runtime
