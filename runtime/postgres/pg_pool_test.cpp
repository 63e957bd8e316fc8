#include "runtime/postgres/pg_pool.hpp"

#include <gtest/gtest.h>
#include <pqxx/pqxx>

#include <atomic>
#include <future>
#include <memory>
#include <thread>
#include <vector>

#include "runtime/postgres/pg_migrations.hpp"
#include "runtime/postgres/testing/pg_testing.hpp"

namespace lab::runtime::pg {
namespace {

class PgPoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string message;
    schema_ = testing::unique_schema(::testing::UnitTest::GetInstance()->current_test_info()->name());
    auto options = testing::options_from_env(schema_, message);
    if (!options.ok()) GTEST_FAIL() << message;
    options_ = *options;
    guard_ = std::make_unique<testing::SchemaGuard>(options_);
    PgOptions bare = options_;
    bare.schema.clear();
    ASSERT_FALSE(execute_once(bare, "CREATE SCHEMA " + schema_));
    ASSERT_FALSE(execute_once(options_, "CREATE TABLE items (id INTEGER PRIMARY KEY, body TEXT NOT NULL)"));
  }
  std::vector<PreparedStatement> statements() const {
    return {{"insert_item", "INSERT INTO items (id, body) VALUES ($1, $2)"},
            {"get_item", "SELECT body FROM items WHERE id = $1"}};
  }
  Result<std::string> get(PgPool& pool, int id) {
    return pool.transact<std::string>(TxMode::kAutocommit, [&](pqxx::transaction_base& tx) -> Result<std::string> {
      const auto r = tx.exec_prepared("get_item", id);
      if (r.empty()) return Errc::kNotFound;
      return r[0][0].as<std::string>();
    });
  }
  std::string schema_;
  PgOptions options_;
  std::unique_ptr<testing::SchemaGuard> guard_;
};

TEST(PgOptions, ConnectionStringCarriesTheSessionSettings) {
  PgOptions o;
  o.url = "postgresql://postgres@127.0.0.1:5432/agentlab";
  o.schema = "tenant_1";
  o.application_name = "agent lab";
  const std::string s = connection_string(o);
  EXPECT_EQ(s.rfind("postgresql://postgres@127.0.0.1:5432/agentlab?connect_timeout=5", 0), 0u) << s;
  EXPECT_NE(s.find("application_name=agent%20lab"), std::string::npos) << s;
  EXPECT_NE(s.find("options=-c%20statement_timeout%3D30000%20-c%20client_min_messages%3Dwarning%20-c%20search_path%3Dtenant_1"), std::string::npos) << s;
  EXPECT_NE(s.find("tcp_user_timeout=15000"), std::string::npos) << s;
  o.url += "?sslmode=disable";
  EXPECT_NE(connection_string(o).find("sslmode=disable&connect_timeout="), std::string::npos);
  EXPECT_TRUE(is_plain_identifier("t_abc_12"));
  EXPECT_FALSE(is_plain_identifier("Tenant"));
  EXPECT_FALSE(is_plain_identifier("a;drop"));
  EXPECT_FALSE(is_plain_identifier(""));
}

TEST(PgErrors, SqlStatesAreClassifiedAndMappedToRuntimeCodes) {
  EXPECT_EQ(classify_sqlstate("40001"), PgErrc::kSerialization);
  EXPECT_EQ(classify_sqlstate("23505"), PgErrc::kUniqueViolation);
  EXPECT_EQ(classify_sqlstate("57P01"), PgErrc::kServerShutdown);
  EXPECT_EQ(classify_sqlstate("08006"), PgErrc::kConnectionLost);
  EXPECT_EQ(classify_sqlstate("42601"), PgErrc::kSqlError);
  EXPECT_EQ(to_runtime_errc(make_error_code(PgErrc::kInDoubt)), Errc::kUnavailable);
  EXPECT_EQ(to_runtime_errc(make_error_code(PgErrc::kInvalidText)), Errc::kInvalidArgument);
  EXPECT_EQ(to_runtime_errc(make_error_code(PgErrc::kUniqueViolation)), Errc::kBackendError);
  EXPECT_TRUE(is_retryable(make_error_code(PgErrc::kDeadlock)));
  EXPECT_FALSE(is_retryable(make_error_code(PgErrc::kInDoubt)));
}

TEST_F(PgPoolTest, RunsTransactionsWithPreparedStatements) {
  PgPool pool(options_, statements(), SteadyClock::instance());
  ASSERT_FALSE(pool.run(TxMode::kReadWrite, [](pqxx::transaction_base& tx) {
    tx.exec_prepared("insert_item", 1, "one");
    tx.exec_prepared("insert_item", 2, "two");
    return std::error_code{};
  }));
  EXPECT_EQ(*get(pool, 2), "two");
  EXPECT_EQ(get(pool, 3).error(), Errc::kNotFound);
  EXPECT_EQ(pool.stats().connects, 1u);  // reused
}

TEST_F(PgPoolTest, ADomainErrorRollsTheTransactionBack) {
  PgPool pool(options_, statements(), SteadyClock::instance());
  const auto ec = pool.run(TxMode::kReadWrite, [](pqxx::transaction_base& tx) {
    tx.exec_prepared("insert_item", 1, "one");
    return make_error_code(Errc::kStaleFence);
  });
  EXPECT_EQ(ec, Errc::kStaleFence);
  EXPECT_EQ(get(pool, 1).error(), Errc::kNotFound);
}

TEST_F(PgPoolTest, LibpqxxExceptionsBecomeTypedErrors) {
  PgPool pool(options_, statements(), SteadyClock::instance());
  const auto insert = [&](int id, std::string body) {
    return pool.run(TxMode::kReadWrite, [&](pqxx::transaction_base& tx) {
      tx.exec_prepared("insert_item", id, body);
      return std::error_code{};
    });
  };
  ASSERT_FALSE(insert(1, "one"));
  EXPECT_EQ(insert(1, "again"), PgErrc::kUniqueViolation);
  EXPECT_EQ(insert(2, "\xff\xfe"), PgErrc::kInvalidText);  // not UTF-8
  EXPECT_EQ(pool.run(TxMode::kReadWrite,
                     [](pqxx::transaction_base& tx) {
                       tx.exec("SELEC 1");
                       return std::error_code{};
                     }),
            PgErrc::kSqlError);
  EXPECT_EQ(pool.run(TxMode::kReadWrite,
                     [](pqxx::transaction_base& tx) {
                       tx.exec("SELECT 'x'")[0][0].as<int>();  // conversion: a bug in the body
                       return std::error_code{};
                     }),
            PgErrc::kUsage);
  EXPECT_EQ(*get(pool, 1), "one");  // the pool still works
  EXPECT_EQ(pool.stats().broken, 0u);
}

TEST_F(PgPoolTest, StatementTimeoutIsQueryCanceled) {
  PgOptions o = options_;
  o.statement_timeout = Millis(100);
  PgPool pool(o, {}, SteadyClock::instance());
  EXPECT_EQ(pool.run(TxMode::kAutocommit,
                     [](pqxx::transaction_base& tx) {
                       tx.exec("SELECT pg_sleep(5)");
                       return std::error_code{};
                     }),
            PgErrc::kQueryCanceled);
}

TEST_F(PgPoolTest, RetriesOnAFreshConnectionAfterTheBackendWasTerminated) {
  PgPool pool(options_, statements(), SteadyClock::instance());
  ASSERT_FALSE(pool.run(TxMode::kReadWrite, [](pqxx::transaction_base& tx) {
    tx.exec_prepared("insert_item", 1, "one");
    return std::error_code{};
  }));
  // Kill our own (idle) backend, as an operator or a failover would.
  PgOptions admin = options_;
  admin.application_name = "admin";
  ASSERT_FALSE(execute_once(admin, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '" +
                                       options_.application_name + "'"));
  // pg_terminate_backend only signals: wait (bounded) until the backend is gone.
  ASSERT_FALSE(execute_once(admin,
                            "DO $$ BEGIN FOR i IN 1..1000 LOOP "
                            "EXIT WHEN NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE application_name = '" +
                                options_.application_name +
                                "'); PERFORM pg_sleep(0.01); END LOOP; END $$"));
  auto got = get(pool, 1);
  ASSERT_TRUE(got.ok()) << got.error().message();
  EXPECT_EQ(*got, "one");
  EXPECT_EQ(pool.stats().broken, 1u);
  EXPECT_EQ(pool.stats().retries, 1u);
  EXPECT_EQ(pool.stats().connects, 2u);
}

TEST_F(PgPoolTest, SerializationFailuresAreRetriedAndOtherFailuresAreNot) {
  PgPool pool(options_, statements(), SteadyClock::instance());
  int attempts = 0;
  EXPECT_FALSE(pool.run(TxMode::kReadWrite, [&](pqxx::transaction_base& tx) {
    tx.exec_prepared("insert_item", ++attempts * 10, "x");
    if (attempts < 3) throw pqxx::serialization_failure("could not serialize access");
    return std::error_code{};
  }));
  EXPECT_EQ(attempts, 3);
  EXPECT_EQ(get(pool, 10).error(), Errc::kNotFound);  // the failed attempts rolled back
  EXPECT_EQ(*get(pool, 30), "x");
  attempts = 0;
  EXPECT_EQ(pool.run(TxMode::kReadWrite,
                     [&](pqxx::transaction_base&) -> std::error_code {
                       ++attempts;
                       throw pqxx::deadlock_detected("deadlock detected");
                     }),
            PgErrc::kDeadlock);
  EXPECT_EQ(attempts, 3);  // max_attempts
}

TEST_F(PgPoolTest, PoolIsBounded) {
  PgOptions o = options_;
  o.pool_size = 1;
  o.acquire_timeout = Millis(50);
  PgPool pool(o, statements(), SteadyClock::instance());
  std::promise<void> holding;
  std::promise<void> done;
  std::thread holder([&] {
    (void)pool.run(TxMode::kAutocommit, [&](pqxx::transaction_base&) {
      holding.set_value();
      done.get_future().wait();
      return std::error_code{};
    });
  });
  holding.get_future().wait();
  EXPECT_EQ(get(pool, 1).error(), PgErrc::kPoolExhausted);
  done.set_value();
  holder.join();
  EXPECT_EQ(get(pool, 1).error(), Errc::kNotFound);
}

TEST(PgPoolDown, ConnectFailuresBackOff) {
  PgOptions o;
  o.url = "postgresql://postgres@127.0.0.1:1/agentlab";  // nothing listens on port 1
  o.backoff_initial = Millis(500);
  SimulatedClock clock;
  PgPool pool(o, {}, clock);
  const auto noop = [](pqxx::transaction_base&) { return std::error_code{}; };
  EXPECT_EQ(pool.run(TxMode::kAutocommit, noop), PgErrc::kConnect);
  EXPECT_EQ(pool.run(TxMode::kAutocommit, noop), PgErrc::kConnect);
  EXPECT_EQ(pool.stats().connect_failures, 1u);  // the second failed fast, without trying
  clock.advance(Millis(500));
  EXPECT_EQ(pool.run(TxMode::kAutocommit, noop), PgErrc::kConnect);
  EXPECT_EQ(pool.stats().connect_failures, 2u);
}

// ---- migrations ---------------------------------------------------------------------------

class PgMigrationsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string message;
    auto options = testing::options_from_env(
        testing::unique_schema(::testing::UnitTest::GetInstance()->current_test_info()->name()), message);
    if (!options.ok()) GTEST_FAIL() << message;
    options_ = *options;
    guard_ = std::make_unique<testing::SchemaGuard>(options_);
  }
  PgOptions options_;
  std::unique_ptr<testing::SchemaGuard> guard_;
};

constexpr Migration kV1{1, "001_notes", "CREATE TABLE notes (id INTEGER PRIMARY KEY)"};
constexpr Migration kV2{2, "002_notes_body", "ALTER TABLE notes ADD COLUMN body TEXT NOT NULL DEFAULT ''"};

TEST_F(PgMigrationsTest, AppliesEachMigrationOnceAndCreatesTheSchema) {
  const std::vector<Migration> v1 = {kV1};
  auto first = apply_migrations(options_, v1);
  ASSERT_TRUE(first.ok()) << first.error().message();
  EXPECT_EQ(first->applied, std::vector<int>{1});
  EXPECT_EQ(first->version, 1);
  auto again = apply_migrations(options_, v1);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->applied.empty());
  const std::vector<Migration> v2 = {kV1, kV2};
  auto upgrade = apply_migrations(options_, v2);
  ASSERT_TRUE(upgrade.ok());
  EXPECT_EQ(upgrade->applied, std::vector<int>{2});
  EXPECT_EQ(upgrade->version, 2);
  EXPECT_FALSE(execute_once(options_, "INSERT INTO notes (id, body) VALUES (1, 'x')"));
}

TEST_F(PgMigrationsTest, ConcurrentStartersApplyEachMigrationExactlyOnce) {
  const std::vector<Migration> all = {kV1, kV2};
  std::atomic<int> applied{0};
  std::atomic<int> failed{0};
  std::vector<std::thread> starters;
  for (int i = 0; i < 4; ++i) {
    starters.emplace_back([&] {
      auto r = apply_migrations(options_, all);
      if (!r.ok()) {
        ++failed;
        return;
      }
      applied += static_cast<int>(r->applied.size());
    });
  }
  for (auto& t : starters) t.join();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(applied.load(), 2);
}

TEST_F(PgMigrationsTest, AChangedMigrationIsAConflictAndAFailedOneLeavesNothing) {
  const std::vector<Migration> v1 = {kV1};
  ASSERT_TRUE(apply_migrations(options_, v1).ok());
  const std::vector<Migration> edited = {{1, "001_notes", "CREATE TABLE notes (id BIGINT PRIMARY KEY)"}};
  EXPECT_EQ(apply_migrations(options_, edited).error(), Errc::kConflict);
  const std::vector<Migration> broken = {kV1, {2, "002_broken", "CREATE TABLE extra (id INT); SELEC 1"}};
  EXPECT_EQ(apply_migrations(options_, broken).error(), PgErrc::kSqlError);
  EXPECT_EQ(execute_once(options_, "SELECT * FROM extra"), PgErrc::kSqlError);  // rolled back
  EXPECT_EQ(apply_migrations(options_, v1)->version, 1);
  const std::vector<Migration> unordered = {kV2, kV1};
  EXPECT_EQ(apply_migrations(options_, unordered).error(), Errc::kInvalidArgument);
}

}  // namespace
}  // namespace lab::runtime::pg
