// PgStore against the real PostgreSQL of scripts/services, each test in a schema of its own: the
// in-memory store's contract cases (all but its memory-retention bounds, which PostgreSQL does
// not have), plus migrations applied once, concurrent duplicate delivery from two "processes",
// fencing, a killed backend, and byte-exact opaque payloads.

#include "runtime/stores/postgres/pg_store.hpp"

#include <gtest/gtest.h>
#include <pqxx/pqxx>

#include <atomic>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "runtime/locks/redis/redis_lock_service.hpp"
#include "runtime/postgres/testing/pg_testing.hpp"
#include "runtime/redis/testing/redis_testing.hpp"

namespace lab::runtime {
namespace {

using S = AgentState;
using Texts = std::vector<std::string>;

NewAgent agent(std::string id, std::string user = "u1") {
  return NewAgent{std::move(id), std::move(user), "helper", "default"};
}

TurnWrite turn(std::string agent_id, std::string task_id, std::uint64_t fence, std::vector<std::string> contents) {
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

class PgStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string message;
    auto options = pg::testing::options_from_env(
        pg::testing::unique_schema(::testing::UnitTest::GetInstance()->current_test_info()->name()), message);
    if (!options.ok()) GTEST_FAIL() << message;
    config_.db = *options;
    guard_ = std::make_unique<pg::testing::SchemaGuard>(config_.db);
  }
  std::unique_ptr<PgStore> open(PgStoreConfig config) {
    config.db = config_.db;
    auto s = PgStore::open(std::move(config), SteadyClock::instance());
    EXPECT_TRUE(s.ok()) << s.error().message();
    return s.ok() ? std::move(*s) : nullptr;
  }
  std::unique_ptr<PgStore> open() { return open(PgStoreConfig{}); }
  Texts contents(PgStore& store, std::string_view agent_id, std::size_t max = 100) {
    auto h = store.load_history(agent_id, max);
    EXPECT_TRUE(h.ok());
    Texts out;
    if (!h.ok()) return out;
    for (const auto& m : h->messages) out.push_back(m.content);
    return out;
  }
  long long count_rows(std::string_view table) {
    pg::PgPool pool(config_.db, {}, SteadyClock::instance());
    auto r = pool.transact<long long>(pg::TxMode::kAutocommit, [&](pqxx::transaction_base& tx) -> Result<long long> {
      return tx.exec("SELECT count(*) FROM " + std::string(table))[0][0].as<long long>();
    });
    return r.ok() ? *r : -1;
  }
  PgStoreConfig config_;
  std::unique_ptr<pg::testing::SchemaGuard> guard_;
};

// ---- opening: migrations, durability -------------------------------------------------------

TEST_F(PgStoreTest, MigrationsAreAppliedOnceAndSynchronousCommitIsOn) {
  {
    auto first = open();
    ASSERT_TRUE(first);
    EXPECT_NE(first->synchronous_commit(), "off");
    ASSERT_TRUE(first->create_agent(agent("a1")).ok());
  }
  std::vector<std::thread> starters;
  std::atomic<int> opened{0};
  for (int i = 0; i < 3; ++i) {
    starters.emplace_back([&] {
      if (PgStore::open(config_, SteadyClock::instance()).ok()) ++opened;
    });
  }
  for (auto& t : starters) t.join();
  EXPECT_EQ(opened.load(), 3);
  EXPECT_EQ(count_rows("schema_migrations"), static_cast<long long>(PgStore::migrations().size()));
  auto again = open();
  ASSERT_TRUE(again);
  EXPECT_TRUE(again->get_agent("a1").ok());  // data kept
}

TEST(PgStoreOpen, RefusesBadSchemaNamesAndAnUnreachableServer) {
  PgStoreConfig bad;
  bad.db.url = "postgresql://postgres@127.0.0.1:1/agentlab";
  bad.db.schema = "Robert'); DROP TABLE students;--";
  EXPECT_EQ(PgStore::open(bad, SteadyClock::instance()).error(), Errc::kInvalidArgument);
  bad.db.schema = "fine";
  EXPECT_EQ(PgStore::open(bad, SteadyClock::instance()).error(), Errc::kUnavailable);
}

// ---- agents and lifecycle -------------------------------------------------------------------

TEST_F(PgStoreTest, CreatesGetsAndListsAgentsPerUser) {
  auto store = open();
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->create_agent(agent("a1")).ok());
  ASSERT_TRUE(store->create_agent(agent("a2")).ok());
  ASSERT_TRUE(store->create_agent(agent("b1", "u2")).ok());
  auto a1 = store->get_agent("a1");
  ASSERT_TRUE(a1.ok());
  EXPECT_EQ(a1->user_id, "u1");
  EXPECT_EQ(a1->state, S::kReady);
  EXPECT_EQ(a1->template_id, "default");
  EXPECT_FALSE(a1->fork.is_fork());
  auto mine = store->list_agents("u1", 10);
  ASSERT_TRUE(mine.ok());
  ASSERT_EQ(mine->size(), 2u);
  EXPECT_EQ((*mine)[0].id, "a1");
  EXPECT_EQ((*mine)[1].id, "a2");
  EXPECT_EQ(store->list_agents("u1", 1)->size(), 1u);
  EXPECT_TRUE(store->list_agents("nobody", 10)->empty());
  EXPECT_EQ(store->create_agent(agent("a1")).error(), Errc::kAlreadyExists);
  EXPECT_EQ(store->create_agent(agent("")).error(), Errc::kInvalidArgument);
  EXPECT_EQ(store->create_agent(agent("x", "")).error(), Errc::kInvalidArgument);
  EXPECT_EQ(store->get_agent("zz").error(), Errc::kNotFound);
}

TEST_F(PgStoreTest, TransitionsFollowTheLifecycleAndTrackOwnerAndCounts) {
  auto store = open();
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->create_agent(agent("a")).ok());
  ASSERT_TRUE(store->transition("a", {.to = S::kQueued}).ok());
  auto p = store->transition("a", {.to = S::kProcessing, .fence = 1, .owner = "w1"});
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->worker_id, "w1");
  EXPECT_EQ(p->fence, 1u);
  EXPECT_EQ(store->transition("a", {.to = S::kQueued}).error(), Errc::kInvalidTransition);
  EXPECT_EQ(store->transition("a", {.to = S::kReady}).error(), Errc::kInvalidTransition);
  ASSERT_TRUE(store->transition("a", {.to = S::kActive, .fence = 1, .owner = "w1"}).ok());
  auto h = store->transition("a", {.to = S::kHibernated});
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->worker_id, "");
  auto counts = store->count_by_state();
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ((*counts)[S::kHibernated], 1u);
  EXPECT_EQ(counts->total(), 1u);
  EXPECT_EQ(store->transition("zz", {.to = S::kQueued}).error(), Errc::kNotFound);
}

TEST_F(PgStoreTest, CompareAndSetOnStateAndOwner) {
  auto store = open();
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->create_agent(agent("a")).ok());
  ASSERT_TRUE(store->transition("a", {.to = S::kActive, .owner = "w1"}).ok());
  EXPECT_EQ(store->transition("a", {.to = S::kHibernated, .expected_state = S::kProcessing}).error(),
            Errc::kConflict);
  EXPECT_EQ(store->transition("a", {.to = S::kHibernated, .expected_state = S::kActive,
                                    .expected_owner = std::string_view("w2")})
                .error(),
            Errc::kConflict);
  EXPECT_TRUE(store->transition("a", {.to = S::kHibernated, .expected_state = S::kActive,
                                      .expected_owner = std::string_view("w1")})
                  .ok());
}

TEST_F(PgStoreTest, FencedTransitionRefusesAnOlderToken) {
  auto store = open();
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->create_agent(agent("a")).ok());
  ASSERT_TRUE(store->transition("a", {.to = S::kProcessing, .fence = 5, .owner = "w2"}).ok());
  EXPECT_EQ(store->transition("a", {.to = S::kActive, .fence = 4, .owner = "w1"}).error(), Errc::kStaleFence);
  EXPECT_EQ(store->get_agent("a")->state, S::kProcessing);
  EXPECT_TRUE(store->transition("a", {.to = S::kActive, .fence = 5, .owner = "w2"}).ok());
  EXPECT_EQ(store->stats().stale_fence_rejections, 1u);
}

TEST_F(PgStoreTest, ListOwnedFindsAWorkersProcessingAgents) {
  auto store = open();
  ASSERT_TRUE(store);
  for (const char* id : {"a", "b", "c"}) ASSERT_TRUE(store->create_agent(agent(id)).ok());
  ASSERT_TRUE(store->transition("a", {.to = S::kProcessing, .fence = 1, .owner = "w1"}).ok());
  ASSERT_TRUE(store->transition("b", {.to = S::kProcessing, .fence = 1, .owner = "w2"}).ok());
  ASSERT_TRUE(store->transition("c", {.to = S::kActive, .fence = 1, .owner = "w1"}).ok());
  auto owned = store->list_owned(S::kProcessing, "w1", 10);
  ASSERT_TRUE(owned.ok());
  EXPECT_EQ(*owned, std::vector<std::string>{"a"});
}

// ---- membership ---------------------------------------------------------------------------

TEST_F(PgStoreTest, MembershipPauseStopsAllOfAUsersAgentsAndRenewalHibernatesThem) {
  auto store = open();
  ASSERT_TRUE(store);
  for (const char* id : {"a", "b", "c"}) ASSERT_TRUE(store->create_agent(agent(id)).ok());
  ASSERT_TRUE(store->create_agent(agent("other", "u2")).ok());
  ASSERT_TRUE(store->transition("b", {.to = S::kProcessing, .fence = 1, .owner = "w1"}).ok());
  EXPECT_EQ(store->transition("c", {.to = S::kHibernated}).error(), Errc::kInvalidTransition);
  EXPECT_EQ(*store->set_membership_paused("u1", true), 3u);
  EXPECT_EQ(*store->set_membership_paused("u1", true), 0u);
  EXPECT_TRUE(*store->membership_paused("u1"));
  EXPECT_FALSE(*store->membership_paused("nobody"));
  EXPECT_EQ(store->get_agent("b")->state, S::kMembershipPaused);
  EXPECT_EQ(store->get_agent("b")->worker_id, "");
  EXPECT_EQ(store->get_agent("other")->state, S::kReady);
  EXPECT_EQ(store->transition("a", {.to = S::kQueued}).error(), Errc::kMembershipPaused);
  EXPECT_EQ(store->transition("b", {.to = S::kActive, .fence = 1, .owner = "w1"}).error(), Errc::kMembershipPaused);
  EXPECT_EQ(store->transition("a", {.to = S::kHibernated}).error(), Errc::kMembershipPaused);
  EXPECT_EQ(store->create_agent(agent("d"))->state, S::kMembershipPaused);
  EXPECT_EQ((*store->count_by_state())[S::kMembershipPaused], 4u);
  EXPECT_EQ(*store->set_membership_paused("u1", false), 4u);
  EXPECT_FALSE(*store->membership_paused("u1"));
  for (const char* id : {"a", "b", "c", "d"}) EXPECT_EQ(store->get_agent(id)->state, S::kHibernated) << id;
  EXPECT_TRUE(store->transition("a", {.to = S::kQueued}).ok());
}

// ---- turns: idempotency and fencing -------------------------------------------------------

TEST_F(PgStoreTest, CommitStoresATurnExactlyOncePerTaskId) {
  auto store = open();
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->create_agent(agent("a")).ok());
  auto first = store->commit_turn(turn("a", "task-1", 1, {"hi", "hello"}));
  ASSERT_TRUE(first.ok()) << first.error().message();
  EXPECT_TRUE(first->applied);
  EXPECT_EQ(first->first_seq, 1u);
  EXPECT_EQ(first->last_seq, 2u);
  auto again = store->commit_turn(turn("a", "task-1", 1, {"hi", "hello"}));
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again->applied);
  EXPECT_EQ(again->first_seq, 1u);
  EXPECT_EQ(again->last_seq, 2u);
  EXPECT_EQ(contents(*store, "a"), (Texts{"hi", "hello"}));
  EXPECT_EQ(store->get_agent("a")->message_count, 2u);
  EXPECT_EQ(store->turn_totals("a")->turns, 1u);
  EXPECT_EQ(store->system_turn_totals()->output_tokens, 20u);
  EXPECT_TRUE(*store->turn_committed("a", "task-1"));
  EXPECT_FALSE(*store->turn_committed("a", "task-2"));
  EXPECT_EQ(store->turn_committed("zz", "task-1").error(), Errc::kNotFound);
  EXPECT_EQ(store->stats().duplicate_commits, 1u);
  EXPECT_EQ(store->stats().commits, 1u);
}

TEST_F(PgStoreTest, AuditCountsEachTasksTurnsAndMessageRows) {
  auto store = open();
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->create_agent(agent("a")).ok());
  ASSERT_TRUE(store->create_agent(agent("b")).ok());
  ASSERT_TRUE(store->commit_turn(turn("a", "t1", 1, {"hi", "hello"})).ok());
  ASSERT_TRUE(store->commit_turn(turn("b", "t2", 1, {"q", "a", "q2", "a2"})).ok());
  ASSERT_TRUE(store->commit_turn(turn("a", "t1", 1, {"hi", "hello"})).ok());  // a redelivery: no effect
  const std::vector<std::string> ids{"t2", "never", "t1"};
  auto audit = store->audit_tasks(ids);
  ASSERT_TRUE(audit.ok()) << audit.error().message();
  EXPECT_TRUE(audit->complete);
  ASSERT_EQ(audit->tasks.size(), 3u);
  EXPECT_EQ(audit->tasks[0].task_id, "t2");
  EXPECT_EQ(audit->tasks[0].turns, 1u);
  EXPECT_EQ(audit->tasks[0].messages, 4u);
  EXPECT_EQ(audit->tasks[0].expected_messages, 4u);
  EXPECT_EQ(audit->tasks[1].turns, 0u);
  EXPECT_EQ(audit->tasks[1].messages, 0u);
  EXPECT_EQ(audit->tasks[2].turns, 1u);
  EXPECT_EQ(audit->tasks[2].messages, 2u);

  // A message written outside the commit (what a double write would leave) shows.
  pg::PgPool pool(config_.db, {}, SteadyClock::instance());
  ASSERT_FALSE(pool.run(pg::TxMode::kAutocommit, [](pqxx::transaction_base& tx) -> std::error_code {
    tx.exec("INSERT INTO message_log (agent_id, seq, role, content, task_id) VALUES ('a', 99, 'user', 'x', 't1')");
    return {};
  }));
  audit = store->audit_tasks(ids);
  ASSERT_TRUE(audit.ok());
  EXPECT_EQ(audit->tasks[2].messages, 3u);
  EXPECT_EQ(audit->tasks[2].expected_messages, 2u);
}

TEST_F(PgStoreTest, CommitWithStaleFenceIsRefusedAndWritesNothing) {
  auto store = open();
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->create_agent(agent("a")).ok());
  ASSERT_TRUE(store->transition("a", {.to = S::kProcessing, .fence = 2, .owner = "w2"}).ok());
  EXPECT_EQ(store->commit_turn(turn("a", "task-1", 1, {"stale"})).error(), Errc::kStaleFence);
  EXPECT_TRUE(contents(*store, "a").empty());
  EXPECT_EQ(count_rows("turns"), 0);
  EXPECT_TRUE(store->commit_turn(turn("a", "task-1", 2, {"fresh"}))->applied);
  EXPECT_TRUE(store->commit_turn(turn("a", "task-2", 3, {"newer"}))->applied);
  EXPECT_EQ(store->get_agent("a")->fence, 3u);
  EXPECT_EQ(store->commit_turn(turn("a", "task-3", 2, {"old"})).error(), Errc::kStaleFence);
  EXPECT_EQ(contents(*store, "a"), (Texts{"fresh", "newer"}));
  EXPECT_EQ(store->stats().stale_fence_rejections, 2u);
}

TEST_F(PgStoreTest, RedeliveredTaskOfAStaleWorkerIsReportedAsDoneNotStale) {
  auto store = open();
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->create_agent(agent("a")).ok());
  ASSERT_TRUE(store->commit_turn(turn("a", "task-1", 1, {"q", "a"}))->applied);
  ASSERT_TRUE(store->commit_turn(turn("a", "task-2", 2, {"q2", "a2"}))->applied);
  auto replay = store->commit_turn(turn("a", "task-1", 1, {"q", "a"}));
  ASSERT_TRUE(replay.ok());
  EXPECT_FALSE(replay->applied);
  EXPECT_EQ(contents(*store, "a").size(), 4u);
}

TEST_F(PgStoreTest, CommitRejectsBadArguments) {
  auto store = open();
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->create_agent(agent("a")).ok());
  EXPECT_EQ(store->commit_turn(turn("a", "", 1, {"x"})).error(), Errc::kInvalidArgument);
  EXPECT_EQ(store->commit_turn(turn("a", "t", 0, {"x"})).error(), Errc::kInvalidArgument);
  EXPECT_EQ(store->commit_turn(turn("zz", "t", 1, {"x"})).error(), Errc::kNotFound);
  EXPECT_EQ(store->commit_turn(turn("a", "t", 1, {std::string("a\0b", 3)})).error(), Errc::kInvalidArgument);
  EXPECT_EQ(store->commit_turn(turn("a", "t", 1, {"\xff not utf-8"})).error(), Errc::kInvalidArgument);
  EXPECT_FALSE(*store->turn_committed("a", "t"));
}

TEST_F(PgStoreTest, LoadHistoryReturnsTheNewestMessagesOldestFirst) {
  auto store = open();
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->create_agent(agent("a")).ok());
  EXPECT_EQ(store->load_history("a", 10)->total, 0u);
  ASSERT_TRUE(store->commit_turn(turn("a", "t1", 1, {"1", "2"})).ok());
  ASSERT_TRUE(store->commit_turn(turn("a", "t2", 1, {"3", "4"})).ok());
  auto h = store->load_history("a", 3);
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->total, 4u);
  ASSERT_EQ(h->messages.size(), 3u);
  EXPECT_EQ(h->messages[0].content, "2");
  EXPECT_EQ(h->messages[0].seq, 2u);
  EXPECT_EQ(h->messages[0].role, Role::kAssistant);
  EXPECT_EQ(h->messages[2].seq, 4u);
  EXPECT_EQ(store->load_history("zz", 3).error(), Errc::kNotFound);
}

TEST_F(PgStoreTest, ConcurrentDuplicateDeliveryFromTwoProcessesStoresEachTurnOnce) {
  // Two store instances (two worker processes, two pools) commit the same task ids at the same
  // time, as after a redelivery race: each turn lands once, and exactly one side sees applied.
  auto p1 = open();
  auto p2 = open();
  ASSERT_TRUE(p1 && p2);
  constexpr int kAgents = 3;
  constexpr int kTurns = 60;
  for (int a = 0; a < kAgents; ++a) ASSERT_TRUE(p1->create_agent(agent("a" + std::to_string(a))).ok());
  std::atomic<int> applied{0};
  std::atomic<int> duplicates{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      PgStore& store = t % 2 == 0 ? *p1 : *p2;
      for (int i = 0; i < kTurns; ++i) {
        for (int a = 0; a < kAgents; ++a) {
          auto r = store.commit_turn(turn("a" + std::to_string(a), "t" + std::to_string(i), 1, {"q", "a"}));
          ASSERT_TRUE(r.ok()) << r.error().message();
          (r->applied ? applied : duplicates)++;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(applied.load(), kAgents * kTurns);
  EXPECT_EQ(duplicates.load(), 3 * kAgents * kTurns);
  for (int a = 0; a < kAgents; ++a) {
    const std::string id = "a" + std::to_string(a);
    EXPECT_EQ(p1->get_agent(id)->message_count, 2u * kTurns);
    const auto h = p2->load_history(id, 1000);
    ASSERT_TRUE(h.ok());
    ASSERT_EQ(h->messages.size(), 2u * kTurns);
    for (std::size_t i = 0; i < h->messages.size(); ++i) ASSERT_EQ(h->messages[i].seq, i + 1);  // no gap
  }
  EXPECT_EQ(p1->system_turn_totals()->turns, static_cast<std::uint64_t>(kAgents * kTurns));
  EXPECT_EQ(count_rows("message_log"), 2LL * kAgents * kTurns);
}

TEST_F(PgStoreTest, KeepsWorkingAfterItsBackendsAreTerminated) {
  auto store = open();
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->create_agent(agent("a")).ok());
  ASSERT_TRUE(store->commit_turn(turn("a", "t1", 1, {"before"})).ok());
  pg::PgOptions admin = config_.db;
  admin.application_name = "admin";
  admin.schema.clear();
  ASSERT_FALSE(pg::execute_once(admin, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                       "WHERE application_name = '" + config_.db.application_name + "'"));
  ASSERT_FALSE(pg::execute_once(admin,
                                "DO $$ BEGIN FOR i IN 1..1000 LOOP "
                                "EXIT WHEN NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE application_name = '" +
                                    config_.db.application_name + "'); PERFORM pg_sleep(0.01); END LOOP; END $$"));
  auto after = store->commit_turn(turn("a", "t2", 1, {"after"}));
  ASSERT_TRUE(after.ok()) << after.error().message();
  EXPECT_TRUE(after->applied);
  EXPECT_EQ(contents(*store, "a"), (Texts{"before", "after"}));
  EXPECT_GE(store->stats().pool.broken, 1u);
}

TEST_F(PgStoreTest, FencingTokenFromTheRedisLockShutsOutAStalledWorker) {
  std::string message;
  auto redis_options = redis::testing::options_from_env(message);
  ASSERT_TRUE(redis_options.ok()) << message;
  redis::RedisPool redis_pool(*redis_options, {}, SteadyClock::instance());
  const std::string prefix = redis::testing::unique_prefix("PgStoreFencing");
  RedisLockService locks({prefix}, redis_pool, SteadyClock::instance());
  auto store = open();
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->create_agent(agent("a")).ok());
  // w1 takes the agent, then stalls (a long pause) past its TTL.
  const auto w1 = locks.try_acquire("a", "w1", Millis(150));
  ASSERT_TRUE(w1.ok());
  ASSERT_TRUE(store->transition("a", {.to = S::kProcessing, .fence = w1->fence, .owner = "w1"}).ok());
  // w2 takes over once the lock expired on the Redis server (bounded wait on that condition).
  Result<LockGrant> w2 = Errc::kLockHeld;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!(w2 = locks.try_acquire("a", "w2", Seconds(30))).ok()) {
    ASSERT_EQ(w2.error(), Errc::kLockHeld);
    ASSERT_LT(std::chrono::steady_clock::now(), deadline);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(w2->fence, w1->fence + 1);
  ASSERT_TRUE(store->transition("a", {.to = S::kProcessing, .fence = w2->fence, .owner = "w2"}).ok());
  ASSERT_TRUE(store->commit_turn(turn("a", "task-2", w2->fence, {"from w2"}))->applied);
  // w1 wakes up and writes with its old token: the store refuses every write.
  EXPECT_EQ(store->commit_turn(turn("a", "task-1", w1->fence, {"from w1"})).error(), Errc::kStaleFence);
  EXPECT_EQ(store->transition("a", {.to = S::kActive, .fence = w1->fence, .owner = "w1"}).error(), Errc::kStaleFence);
  EXPECT_EQ(contents(*store, "a"), (Texts{"from w2"}));
  EXPECT_EQ(store->get_agent("a")->worker_id, "w2");
  redis::testing::delete_keys(redis_pool, prefix);
}

TEST_F(PgStoreTest, GroupCommitBatchesWaitingTurnsAndIsolatesOneThatFails) {
  auto store = open();
  ASSERT_TRUE(store);
  for (const char* id : {"blocker", "b0", "b1", "b2", "b3", "bad"}) ASSERT_TRUE(store->create_agent(agent(id)).ok());
  for (int round = 0; round < 2; ++round) {
    const bool with_bad = round == 0;
    // Another session holds the blocker's row, so the first commit (the batch leader) waits on
    // it while the next turns queue up behind it; they then go as one batch.
    pg::PgPool holder(config_.db, {}, SteadyClock::instance());
    std::promise<void> locked;
    std::promise<void> release;
    std::thread lock_holder([&] {
      (void)holder.run(pg::TxMode::kReadWrite, [&](pqxx::transaction_base& tx) {
        tx.exec("SELECT 1 FROM agents WHERE id = 'blocker' FOR UPDATE");
        locked.set_value();
        release.get_future().wait();
        return std::error_code{};
      });
    });
    locked.get_future().wait();
    const std::string r = std::to_string(round);
    Result<CommitResult> leader_result = Errc::kBackendError;
    std::thread leader([&] { leader_result = store->commit_turn(turn("blocker", "lead-" + r, 1, {"x"})); });
    // Wait (bounded) until the leader's statement waits for the row lock.
    pg::PgOptions admin = config_.db;
    admin.application_name = "admin";
    ASSERT_FALSE(pg::execute_once(admin,
                                  "DO $$ BEGIN FOR i IN 1..1000 LOOP EXIT WHEN EXISTS (SELECT 1 FROM pg_stat_activity "
                                  "WHERE application_name = '" + config_.db.application_name +
                                      "' AND wait_event_type = 'Lock'); PERFORM pg_sleep(0.01); END LOOP; END $$"));
    std::vector<Result<CommitResult>> results(5, Errc::kBackendError);
    std::vector<std::thread> followers;
    for (int i = 0; i < 5; ++i) {
      followers.emplace_back([&, i] {
        const bool bad = with_bad && i == 4;
        const std::string id = i == 4 ? "bad" : "b" + std::to_string(i);
        results[static_cast<std::size_t>(i)] =
            store->commit_turn(turn(id, "t-" + r, 1, {bad ? std::string("\xff not utf-8") : std::string("ok")}));
      });
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (store->stats().waiting_commits < 5) {
      ASSERT_LT(std::chrono::steady_clock::now(), deadline);
      std::this_thread::yield();
    }
    release.set_value();
    lock_holder.join();
    leader.join();
    for (auto& f : followers) f.join();
    ASSERT_TRUE(leader_result.ok()) << leader_result.error().message();
    EXPECT_TRUE(leader_result->applied);
    for (int i = 0; i < 4; ++i) {
      ASSERT_TRUE(results[static_cast<std::size_t>(i)].ok()) << i;
      EXPECT_TRUE(results[static_cast<std::size_t>(i)]->applied);
    }
    if (with_bad) {
      EXPECT_EQ(results[4].error(), Errc::kInvalidArgument);
      EXPECT_FALSE(*store->turn_committed("bad", "t-0"));
    } else {
      EXPECT_TRUE(results[4].ok());
    }
  }
  const auto stats = store->stats();
  EXPECT_EQ(stats.batch_fallbacks, 1u);  // round 0: the bad turn failed the batch
  EXPECT_EQ(stats.batches, 1u);          // round 1: five turns, one statement
  EXPECT_EQ(contents(*store, "b0"), (Texts{"ok", "ok"}));
  EXPECT_EQ(contents(*store, "bad"), (Texts{"ok"}));
}

// ---- forks --------------------------------------------------------------------------------

TEST_F(PgStoreTest, ForkSeesParentHistoryUpToTheCheckpointAndNothingLater) {
  auto store = open();
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->create_agent(agent("p")).ok());
  ASSERT_TRUE(store->commit_turn(turn("p", "t1", 1, {"p1", "p2"})).ok());
  auto cp = store->create_checkpoint("p", R"({"mode":"x"})", {"before"});
  ASSERT_TRUE(cp.ok()) << cp.error().message();
  EXPECT_EQ(cp->message_count, 2u);
  ASSERT_TRUE(store->commit_turn(turn("p", "t2", 1, {"p3", "p4"})).ok());

  auto forked = store->fork({.parent_id = "p", .checkpoint_id = cp->id, .fork_ids = {"f1", "f2"}});
  ASSERT_TRUE(forked.ok()) << forked.error().message();
  ASSERT_EQ(forked->forks.size(), 2u);
  EXPECT_EQ(forked->checkpoint.id, cp->id);
  const AgentRecord& f1 = forked->forks[0];
  EXPECT_EQ(f1.id, "f1");
  EXPECT_EQ(forked->forks[1].id, "f2");
  EXPECT_EQ(f1.user_id, "u1");
  EXPECT_EQ(f1.state, S::kReady);
  EXPECT_EQ(f1.message_count, 2u);
  EXPECT_EQ(f1.fork.parent_agent_id, "p");
  EXPECT_EQ(f1.fork.checkpoint_id, cp->id);
  EXPECT_EQ(f1.fork.message_count, 2u);

  EXPECT_EQ(contents(*store, "f1"), (Texts{"p1", "p2"}));
  ASSERT_TRUE(store->commit_turn(turn("f1", "t3", 1, {"f1a", "f1b"})).ok());
  ASSERT_TRUE(store->commit_turn(turn("p", "t4", 1, {"p5", "p6"})).ok());
  EXPECT_EQ(contents(*store, "f1"), (Texts{"p1", "p2", "f1a", "f1b"}));
  EXPECT_EQ(contents(*store, "f2"), (Texts{"p1", "p2"}));
  EXPECT_EQ(contents(*store, "p"), (Texts{"p1", "p2", "p3", "p4", "p5", "p6"}));
  auto h = store->load_history("f1", 100);
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->total, 4u);
  EXPECT_EQ(h->messages[2].seq, 3u);
  EXPECT_EQ(contents(*store, "f1", 3), (Texts{"p2", "f1a", "f1b"}));
  EXPECT_EQ(count_rows("message_log"), 8);  // nothing was copied
  EXPECT_EQ(store->get_checkpoint(cp->id)->snapshot, R"({"mode":"x"})");
  EXPECT_EQ(store->get_checkpoint(cp->id)->tags, std::vector<std::string>{"before"});
}

TEST_F(PgStoreTest, ForkWithoutCheckpointTakesOneAtTheHead) {
  auto store = open();
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->create_agent(agent("p")).ok());
  ASSERT_TRUE(store->commit_turn(turn("p", "t1", 1, {"a", "b"})).ok());
  auto forked = store->fork({.parent_id = "p", .fork_ids = {"f"}});
  ASSERT_TRUE(forked.ok());
  EXPECT_EQ(forked->checkpoint.message_count, 2u);
  EXPECT_EQ(forked->checkpoint.agent_id, "p");
  EXPECT_EQ(forked->checkpoint.tags, std::vector<std::string>{"fork"});
  EXPECT_TRUE(store->get_checkpoint(forked->checkpoint.id).ok());
  EXPECT_EQ(contents(*store, "f"), (Texts{"a", "b"}));
}

TEST_F(PgStoreTest, ForksOfForksReadThroughTheChain) {
  auto store = open();
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->create_agent(agent("p")).ok());
  ASSERT_TRUE(store->commit_turn(turn("p", "t1", 1, {"p1", "p2"})).ok());
  ASSERT_TRUE(store->fork({.parent_id = "p", .fork_ids = {"c"}}).ok());
  ASSERT_TRUE(store->commit_turn(turn("c", "t2", 1, {"c1", "c2"})).ok());
  auto cp_c = store->create_checkpoint("c", "{}", {});
  ASSERT_TRUE(cp_c.ok());
  EXPECT_EQ(cp_c->parent_checkpoint_id, store->get_agent("c")->fork.checkpoint_id);
  ASSERT_TRUE(store->commit_turn(turn("c", "t3", 1, {"c3", "c4"})).ok());
  ASSERT_TRUE(store->fork({.parent_id = "c", .checkpoint_id = cp_c->id, .fork_ids = {"g"}}).ok());
  ASSERT_TRUE(store->commit_turn(turn("g", "t4", 1, {"g1", "g2"})).ok());
  EXPECT_EQ(contents(*store, "g"), (Texts{"p1", "p2", "c1", "c2", "g1", "g2"}));
  EXPECT_EQ(contents(*store, "c"), (Texts{"p1", "p2", "c1", "c2", "c3", "c4"}));
  EXPECT_EQ(contents(*store, "g", 3), (Texts{"c2", "g1", "g2"}));
}

TEST_F(PgStoreTest, ForkAtACheckpointInsideTheParentsOwnBase) {
  auto store = open();
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->create_agent(agent("p")).ok());
  ASSERT_TRUE(store->commit_turn(turn("p", "t1", 1, {"p1", "p2"})).ok());
  auto early = store->create_checkpoint("p", "{}", {});
  ASSERT_TRUE(early.ok());
  ASSERT_TRUE(store->commit_turn(turn("p", "t2", 1, {"p3", "p4"})).ok());
  ASSERT_TRUE(store->fork({.parent_id = "p", .fork_ids = {"c"}}).ok());
  auto c_cp = store->create_checkpoint("c", "{}", {});
  ASSERT_TRUE(c_cp.ok());
  ASSERT_TRUE(store->fork({.parent_id = "c", .checkpoint_id = c_cp->id, .fork_ids = {"g"}}).ok());
  EXPECT_EQ(contents(*store, "g"), (Texts{"p1", "p2", "p3", "p4"}));
  ASSERT_TRUE(store->fork({.parent_id = "p", .checkpoint_id = early->id, .fork_ids = {"e"}}).ok());
  EXPECT_EQ(contents(*store, "e"), (Texts{"p1", "p2"}));
}

TEST_F(PgStoreTest, ForkIsAllOrNothingAndValidated) {
  auto store = open({.max_fork_depth = 2});
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->create_agent(agent("p")).ok());
  ASSERT_TRUE(store->create_agent(agent("q")).ok());
  ASSERT_TRUE(store->create_agent(agent("taken")).ok());
  auto q_cp = store->create_checkpoint("q", "{}", {});
  ASSERT_TRUE(q_cp.ok());
  EXPECT_EQ(store->fork({.parent_id = "nope", .fork_ids = {"f"}}).error(), Errc::kNotFound);
  EXPECT_EQ(store->fork({.parent_id = "p", .checkpoint_id = q_cp->id, .fork_ids = {"f"}}).error(), Errc::kNotFound);
  EXPECT_EQ(store->fork({.parent_id = "p", .checkpoint_id = "ckpt-999999", .fork_ids = {"f"}}).error(),
            Errc::kNotFound);
  EXPECT_EQ(store->fork({.parent_id = "p", .fork_ids = {"f", "taken"}}).error(), Errc::kAlreadyExists);
  EXPECT_EQ(store->get_agent("f").error(), Errc::kNotFound);
  EXPECT_EQ(store->fork({.parent_id = "p", .fork_ids = {"f", "f"}}).error(), Errc::kInvalidArgument);
  EXPECT_EQ(store->fork({.parent_id = "p", .fork_ids = {}}).error(), Errc::kInvalidArgument);
  EXPECT_EQ(store->fork({.parent_id = "p", .fork_ids = {""}}).error(), Errc::kInvalidArgument);
  EXPECT_TRUE(store->list_checkpoints("p")->empty());  // no checkpoint left behind by failures
  ASSERT_TRUE(store->fork({.parent_id = "p", .fork_ids = {"d1"}}).ok());
  ASSERT_TRUE(store->fork({.parent_id = "d1", .fork_ids = {"d2"}}).ok());
  EXPECT_EQ(store->fork({.parent_id = "d2", .fork_ids = {"d3"}}).error(), Errc::kLimitExceeded);
  EXPECT_EQ(store->list_checkpoints("zz").error(), Errc::kNotFound);
}

TEST_F(PgStoreTest, ForksOfAPausedUserStartPaused) {
  auto store = open();
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->create_agent(agent("p")).ok());
  ASSERT_TRUE(store->set_membership_paused("u1", true).ok());
  auto forked = store->fork({.parent_id = "p", .fork_ids = {"f"}});
  ASSERT_TRUE(forked.ok());
  EXPECT_EQ(forked->forks[0].state, S::kMembershipPaused);
}

TEST_F(PgStoreTest, OldCheckpointsAreDroppedButTheirForksKeepTheirHistory) {
  auto store = open({.max_checkpoints_per_agent = 1});
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->create_agent(agent("p")).ok());
  ASSERT_TRUE(store->commit_turn(turn("p", "t1", 1, {"a"})).ok());
  auto cp1 = store->create_checkpoint("p", "{}", {});
  ASSERT_TRUE(cp1.ok());
  ASSERT_TRUE(store->fork({.parent_id = "p", .checkpoint_id = cp1->id, .fork_ids = {"f"}}).ok());
  auto cp2 = store->create_checkpoint("p", "{}", {});
  ASSERT_TRUE(cp2.ok());
  EXPECT_EQ(cp2->parent_checkpoint_id, cp1->id);
  EXPECT_EQ(store->get_checkpoint(cp1->id).error(), Errc::kNotFound);
  EXPECT_EQ(store->fork({.parent_id = "p", .checkpoint_id = cp1->id, .fork_ids = {"g"}}).error(), Errc::kNotFound);
  EXPECT_EQ(contents(*store, "f"), (Texts{"a"}));
  EXPECT_EQ(store->list_checkpoints("p")->size(), 1u);
}

// ---- statistics, tool calls, opaque payloads ----------------------------------------------

TEST_F(PgStoreTest, TurnStatisticsAndToolCallsAreReadBack) {
  auto store = open();
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->create_agent(agent("a")).ok());
  auto t1 = turn("a", "t1", 1, {"q", "a"});
  t1.tool_calls.push_back(ToolCallRecord{"c1", "search", "{}", "{}", ToolCallState::kCompleted, Micros(5)});
  t1.tool_calls.push_back(ToolCallRecord{"c2", "fetch", "{}", "{}", ToolCallState::kFailed, Micros(7)});
  t1.stats.model = "primary";
  t1.stats.ttft = Micros(300);
  t1.stats.llm_calls = 2;
  auto t2 = turn("a", "t2", 1, {"q", "a"});
  t2.tool_calls.push_back(ToolCallRecord{"c3", "search", "{}", "{}", ToolCallState::kCompleted, Micros(9)});
  ASSERT_TRUE(store->commit_turn(t1).ok());
  ASSERT_TRUE(store->commit_turn(t2).ok());
  const auto totals = store->turn_totals("a");
  ASSERT_TRUE(totals.ok());
  EXPECT_EQ(totals->turns, 2u);
  EXPECT_EQ(totals->input_tokens, 20u);
  EXPECT_EQ(totals->output_tokens, 40u);
  EXPECT_EQ(totals->tool_calls, 3u);
  EXPECT_DOUBLE_EQ(totals->cost_usd, 1.0);
  EXPECT_EQ(totals->duration, Micros(2000));
  const auto recent = store->recent_turns("a", 1);
  ASSERT_TRUE(recent.ok());
  ASSERT_EQ(recent->size(), 1u);
  EXPECT_EQ((*recent)[0].task_id, "t2");
  const auto both = store->recent_turns("a", 10);
  ASSERT_EQ(both->size(), 2u);
  EXPECT_EQ((*both)[0].stats.model, "primary");
  EXPECT_EQ((*both)[0].stats.ttft, Micros(300));
  EXPECT_EQ((*both)[0].stats.llm_calls, 2u);
  const auto calls = store->recent_tool_calls("a", 2);
  ASSERT_TRUE(calls.ok());
  ASSERT_EQ(calls->size(), 2u);
  EXPECT_EQ((*calls)[0].call_id, "c2");
  EXPECT_EQ((*calls)[1].call_id, "c3");
  EXPECT_EQ((*calls)[0].state, ToolCallState::kFailed);
  EXPECT_EQ((*calls)[0].duration, Micros(7));
  EXPECT_EQ(store->turn_totals("zz").error(), Errc::kNotFound);
  EXPECT_EQ(store->recent_turns("zz", 1).error(), Errc::kNotFound);
  EXPECT_EQ(store->recent_tool_calls("zz", 1).error(), Errc::kNotFound);
  EXPECT_TRUE(store->recent_tool_calls("a", 0)->empty());
  EXPECT_EQ(store->turn_totals("a")->turns, store->system_turn_totals()->turns);
}

TEST_F(PgStoreTest, OpaquePayloadsComeBackByteForByte) {
  auto store = open();
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->create_agent(agent("a")).ok());
  const std::string odd = "{ \"b\":1,  \"a\" : [\"\\\"quoted\\\"\", \"back\\\\slash\", \"{}\", \"ünïcødé\"] }";
  auto t = turn("a", "t1", 1, {odd, "line\nbreak, comma, \"quote\", {brace}"});
  t.tool_calls.push_back(ToolCallRecord{"c,1", "na\"me", odd, "{\"x\": [1, 2]}", ToolCallState::kSealed, Micros(1)});
  ASSERT_TRUE(store->commit_turn(t).ok());
  const auto h = store->load_history("a", 10);
  ASSERT_EQ(h->messages.size(), 2u);
  EXPECT_EQ(h->messages[0].content, odd);
  EXPECT_EQ(h->messages[1].content, "line\nbreak, comma, \"quote\", {brace}");
  const auto calls = store->recent_tool_calls("a", 10);
  ASSERT_EQ(calls->size(), 1u);
  EXPECT_EQ((*calls)[0].call_id, "c,1");
  EXPECT_EQ((*calls)[0].name, "na\"me");
  EXPECT_EQ((*calls)[0].input, odd);
  EXPECT_EQ((*calls)[0].state, ToolCallState::kSealed);
  auto cp = store->create_checkpoint("a", odd, {"with,comma", "with\"quote", ""});
  ASSERT_TRUE(cp.ok());
  const auto back = store->get_checkpoint(cp->id);
  EXPECT_EQ(back->snapshot, odd);
  EXPECT_EQ(back->tags, (std::vector<std::string>{"with,comma", "with\"quote", ""}));
}

}  // namespace
}  // namespace lab::runtime
