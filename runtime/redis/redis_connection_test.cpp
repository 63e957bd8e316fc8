#include "runtime/redis/redis_connection.hpp"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "runtime/redis/testing/redis_testing.hpp"

namespace lab::runtime::redis {
namespace {

class RedisConnectionTest : public ::testing::Test {
 protected:
  void TearDown() override {
    if (prefix_.empty()) return;
    RedisPool pool(options_, {}, SteadyClock::instance());
    testing::delete_keys(pool, prefix_);
  }
  void SetUp() override {
    std::string message;
    auto options = testing::options_from_env(message);
    if (!options.ok()) GTEST_FAIL() << message;
    options_ = *options;
    prefix_ = testing::unique_prefix(::testing::UnitTest::GetInstance()->current_test_info()->name());
  }
  RedisOptions options_;
  std::string prefix_;
};

TEST(RedisUrl, ParsesHostPortDbAndCredentials) {
  auto plain = parse_redis_url("redis://127.0.0.1:6390");
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->host, "127.0.0.1");
  EXPECT_EQ(plain->port, 6390);
  EXPECT_EQ(plain->db, 0);
  auto full = parse_redis_url("redis://user:secret@cache.local:7000/3");
  ASSERT_TRUE(full.ok());
  EXPECT_EQ(full->username, "user");
  EXPECT_EQ(full->password, "secret");
  EXPECT_EQ(full->host, "cache.local");
  EXPECT_EQ(full->port, 7000);
  EXPECT_EQ(full->db, 3);
  auto v6 = parse_redis_url("redis://[::1]:6379");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(parse_redis_url("redis://localhost")->port, 6379);
  for (const char* bad : {"http://x:1", "redis://", "redis://h:0", "redis://h:99999", "redis://h:1/x",
                          "redis://[::1"}) {
    EXPECT_EQ(parse_redis_url(bad).error(), Errc::kInvalidArgument) << bad;
  }
}

TEST(RedisErrors, ErrorRepliesAreClassifiedAndMappedToRuntimeCodes) {
  EXPECT_EQ(classify_error_reply("NOGROUP No such key 'k' or consumer group 'g'"), RedisErrc::kNoGroup);
  EXPECT_EQ(classify_error_reply("BUSYGROUP Consumer Group name already exists"), RedisErrc::kBusyGroup);
  EXPECT_EQ(classify_error_reply("NOSCRIPT No matching script"), RedisErrc::kNoScript);
  EXPECT_EQ(classify_error_reply("OOM command not allowed"), RedisErrc::kOutOfMemory);
  EXPECT_EQ(classify_error_reply("ERR Error running script: @user_script:1: NOGROUP x"), RedisErrc::kNoGroup);
  EXPECT_EQ(classify_error_reply("ERR unknown command"), RedisErrc::kReplyError);
  EXPECT_EQ(to_runtime_errc(make_error_code(RedisErrc::kIo)), Errc::kUnavailable);
  EXPECT_EQ(to_runtime_errc(make_error_code(RedisErrc::kLoading)), Errc::kUnavailable);
  EXPECT_EQ(to_runtime_errc(make_error_code(RedisErrc::kOutOfMemory)), Errc::kLimitExceeded);
  EXPECT_EQ(to_runtime_errc(make_error_code(RedisErrc::kWrongType)), Errc::kBackendError);
  EXPECT_EQ(to_runtime_errc(make_error_code(Errc::kLeaseLost)), Errc::kLeaseLost);
}

TEST_F(RedisConnectionTest, CommandsRepliesAndTypedErrorReplies) {
  RedisConnection c(options_, SteadyClock::instance());
  const std::string key = prefix_ + "k";
  ASSERT_TRUE(c.command(Args{"SET", key, std::string("a\0b", 3)}).ok());  // binary-safe
  auto got = c.command(Args{"GET", key});
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->str, std::string("a\0b", 3));
  EXPECT_TRUE(c.command(Args{"GET", prefix_ + "missing"})->is_nil());
  auto incr = c.command(Args{"INCRBY", prefix_ + "n"}.add(41LL));
  ASSERT_TRUE(incr.ok());
  EXPECT_EQ(incr->integer, 41);
  EXPECT_EQ(c.command(Args{"LPUSH", key, "x"}).error(), RedisErrc::kWrongType);
  EXPECT_EQ(c.command(Args{"XREADGROUP", "GROUP", "g", "c", "STREAMS", prefix_ + "s", ">"}).error(),
            RedisErrc::kNoGroup);
  EXPECT_TRUE(c.connected());  // error replies keep the connection
  EXPECT_GT(c.client_id(), 0);
  c.command(Args{"DEL", key, prefix_ + "n"}).value();
}

TEST_F(RedisConnectionTest, PipelineReturnsOneResultPerCommand) {
  RedisConnection c(options_, SteadyClock::instance());
  const std::string key = prefix_ + "p";
  std::vector<Args> cmds = {Args{"RPUSH", key, "a", "b"}, Args{"INCR", key}, Args{"LRANGE", key, "0", "-1"},
                            Args{"DEL", key}};
  auto replies = c.pipeline(cmds);
  ASSERT_EQ(replies.size(), 4u);
  EXPECT_EQ(replies[0]->integer, 2);
  EXPECT_EQ(replies[1].error(), RedisErrc::kWrongType);
  ASSERT_TRUE(replies[2].ok());
  ASSERT_EQ(replies[2]->size(), 2u);
  EXPECT_EQ(replies[2]->elements[1].str, "b");
  EXPECT_EQ(replies[3]->integer, 1);
}

TEST_F(RedisConnectionTest, ScriptsRunBySha1AndFallBackToEvalWhenUnknown) {
  RedisConnection c(options_, SteadyClock::instance());
  // A script body unique to this run, so the server cannot know it yet.
  RedisScript script("return {KEYS[1], ARGV[1], '" + prefix_ + "'}");
  const std::vector<std::string> keys = {prefix_ + "key"};
  const std::vector<std::string> args = {"arg"};
  auto exists = c.command(Args{"SCRIPT", "EXISTS", script.sha1()});
  ASSERT_TRUE(exists.ok());
  EXPECT_EQ(exists->elements.at(0).integer, 0);
  auto first = c.eval(script, keys, args);  // NOSCRIPT → EVAL
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->elements.at(0).str, keys[0]);
  EXPECT_EQ(first->elements.at(1).str, "arg");
  EXPECT_EQ(c.command(Args{"SCRIPT", "EXISTS", script.sha1()})->elements.at(0).integer, 1);
  EXPECT_TRUE(c.eval(script, keys, args).ok());  // EVALSHA
  RedisScript failing("return redis.call('LPUSH', KEYS[1], 'x')");
  c.command(Args{"SET", keys[0], "string"}).value();
  EXPECT_EQ(c.eval(failing, keys, args).error(), RedisErrc::kWrongType);
  c.command(Args{"DEL", keys[0]}).value();
}

TEST_F(RedisConnectionTest, BlockingCommandUsesItsOwnTimeout) {
  RedisOptions o = options_;
  o.command_timeout = Millis(100);
  RedisConnection c(o, SteadyClock::instance());
  // BLOCK 300 ms with the default 100 ms socket timeout would fail; with its own timeout it
  // returns nil (nothing arrived) and the connection stays usable.
  auto r = c.command(Args{"XREAD", "BLOCK", "300", "STREAMS", prefix_ + "s", "$"}, Millis(1300));
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_TRUE(r->is_nil());
  auto timed_out = c.command(Args{"XREAD", "BLOCK", "500", "STREAMS", prefix_ + "s", "$"});
  EXPECT_EQ(timed_out.error(), RedisErrc::kTimeout);
  EXPECT_FALSE(c.connected());  // the reply may still come: the connection is dropped
  EXPECT_TRUE(c.command(Args{"PING"}).ok());
  EXPECT_EQ(c.stats().broken, 1u);
}

TEST_F(RedisConnectionTest, PoolIsBoundedAndReusesConnections) {
  RedisPool pool(options_, RedisPoolOptions{.size = 2, .acquire_timeout = Millis(50)}, SteadyClock::instance());
  {
    auto a = pool.acquire();
    auto b = pool.acquire();
    ASSERT_TRUE(a.ok());
    ASSERT_TRUE(b.ok());
    EXPECT_EQ(pool.acquire().error(), RedisErrc::kPoolExhausted);
    EXPECT_TRUE((*a)->command(Args{"PING"}).ok());
  }
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 200; ++i) {
        auto r = pool.command(Args{"INCR", prefix_ + "counter"});
        ASSERT_TRUE(r.ok() || r.error() == RedisErrc::kPoolExhausted);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_LE(pool.stats().connects, 2u);
  pool.command(Args{"DEL", prefix_ + "counter"}).value();
}

// ---- against a private server: kill connections, restart, backoff ------------------------

class PrivateRedisTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string message;
    if (!server_.start(message).ok()) GTEST_FAIL() << message;
  }
  testing::PrivateRedis server_;
};

TEST_F(PrivateRedisTest, ReconnectsAfterClientKill) {
  RedisPool pool(server_.options(), {.size = 4}, SteadyClock::instance());
  ASSERT_TRUE(pool.command(Args{"SET", "k", "v"}).ok());
  const auto id_before = pool.acquire().value()->client_id();
  ASSERT_EQ(server_.cli("CLIENT KILL TYPE normal"), 0);
  // The idle connection was closed by the server: it is found closed and reopened before the
  // command is sent, so the command itself never fails.
  auto r = pool.command(Args{"GET", "k"});
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->str, "v");
  EXPECT_NE(pool.acquire().value()->client_id(), id_before);
  EXPECT_EQ(pool.stats().closed_by_server, 1u);
  EXPECT_EQ(pool.stats().connects, 2u);
}

TEST_F(PrivateRedisTest, ReconnectsAfterRestartAndBacksOffWhileDown) {
  RedisOptions o = server_.options();
  o.backoff_initial = Millis(200);
  o.backoff_max = Millis(200);
  SimulatedClock clock;  // times the backoff only
  RedisConnection c(o, clock);
  ASSERT_TRUE(c.command(Args{"SET", "k", "before"}).ok());
  server_.stop();
  // Down: the first command finds the connection closed, tries to reconnect once and fails...
  EXPECT_EQ(c.command(Args{"GET", "k"}).error(), RedisErrc::kConnect);
  EXPECT_EQ(c.stats().connect_failures, 1u);
  // ...and within the backoff the next ones fail fast without another attempt.
  EXPECT_EQ(c.command(Args{"GET", "k"}).error(), RedisErrc::kConnect);
  EXPECT_EQ(c.stats().connect_failures, 1u);
  std::string message;
  ASSERT_TRUE(server_.restart(message).ok()) << message;
  EXPECT_EQ(c.command(Args{"GET", "k"}).error(), RedisErrc::kConnect);  // still backing off
  clock.advance(Millis(200));
  auto after = c.command(Args{"GET", "k"});
  ASSERT_TRUE(after.ok()) << after.error().message();
  EXPECT_EQ(after->str, "before");  // the append-only file kept it
  EXPECT_EQ(c.stats().connects, 2u);
}

}  // namespace
}  // namespace lab::runtime::redis
