#pragma once
// A small synchronous hiredis wrapper: a connection that reconnects with exponential backoff,
// Lua scripts by SHA1 with EVAL fallback, and a bounded pool of connections.
//
// Failure model. Every socket has a timeout (connect_timeout, command_timeout; blocking commands
// pass their own). A command that fails on the wire drops the connection and returns kIo or
// kTimeout: its effect on the server is unknown, so it is never re-sent here — the caller
// decides (the adapters only retry what is idempotent). Before sending, an idle connection is
// checked for a close by the server (CLIENT KILL, restart) with a non-blocking peek and silently
// reopened: nothing was sent on it, so nothing can be doubled. Reconnection is lazy: the next
// command connects; after a failed connect, attempts wait out a backoff (backoff_initial doubling
// to backoff_max, jittered to 50–100 %), and commands during the wait fail fast with kConnect
// instead of blocking.

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock/clock.hpp"
#include "runtime/api/result.hpp"
#include "runtime/redis/redis_error.hpp"
#include "runtime/redis/redis_reply.hpp"

struct redisContext;

namespace lab::runtime::redis {

struct RedisOptions {
  std::string host = "127.0.0.1";
  int port = 6379;
  int db = 0;
  std::string username;  ///< ACL user (Redis 6+); empty: AUTH with the password only
  std::string password;
  Millis connect_timeout{1000};
  Millis command_timeout{2000};
  Millis backoff_initial{50};
  Millis backoff_max{2000};
  std::string client_name;  ///< CLIENT SETNAME on connect (diagnosis); empty: none
};

/// redis://[[user]:password@]host[:port][/db]. kInvalidArgument for anything else.
Result<RedisOptions> parse_redis_url(std::string_view url);

/// A command line: owned arguments, binary-safe.
class Args {
 public:
  Args() = default;
  Args(std::initializer_list<std::string_view> parts);
  Args& add(std::string_view part);
  Args& add(long long n);
  Args& add(std::uint64_t n);
  Args& add(int n) { return add(static_cast<long long>(n)); }
  Args& add(const char* part) { return add(std::string_view(part)); }
  Args& add(const std::string& part) { return add(std::string_view(part)); }
  std::size_t size() const noexcept { return parts_.size(); }
  const std::vector<std::string>& parts() const noexcept { return parts_; }

 private:
  std::vector<std::string> parts_;
};

/// A Lua script, run by EVALSHA with a fallback to EVAL when the server lost its script cache.
class RedisScript {
 public:
  explicit RedisScript(std::string source);
  const std::string& source() const noexcept { return source_; }
  const std::string& sha1() const noexcept { return sha1_; }

 private:
  std::string source_;
  std::string sha1_;  // lowercase hex
};

struct RedisConnectionStats {
  std::uint64_t connects = 0;          ///< successful connects (the first included)
  std::uint64_t connect_failures = 0;
  std::uint64_t broken = 0;            ///< connections dropped after an I/O error or timeout
  std::uint64_t closed_by_server = 0;  ///< idle connections found closed before a command
};

/// One connection. Not thread-safe: one user at a time (the pool hands it out exclusively).
class RedisConnection {
 public:
  /// Does not connect; the first command does. `clock` times the backoff; `seed` its jitter.
  RedisConnection(RedisOptions options, const Clock& clock, std::uint64_t seed = 1);
  ~RedisConnection();
  RedisConnection(const RedisConnection&) = delete;
  RedisConnection& operator=(const RedisConnection&) = delete;

  /// Sends a command and reads its reply within command_timeout. Error replies become their
  /// RedisErrc (an error nested in an array reply too).
  Result<RedisReply> command(const Args& args);
  /// The same with a reply timeout of `timeout` (blocking commands: BLOCK ms + margin).
  Result<RedisReply> command(const Args& args, Millis timeout);
  /// Sends all commands, then reads all replies: one round trip. A broken connection fails the
  /// rest with the same code.
  std::vector<Result<RedisReply>> pipeline(std::span<const Args> commands);
  /// EVALSHA (EVAL after NOSCRIPT) with the given keys and arguments.
  Result<RedisReply> eval(const RedisScript& script, std::span<const std::string> keys,
                          std::span<const std::string> args);

  /// Connects now if not connected (subject to the backoff).
  Result<void> ensure_connected();
  bool connected() const noexcept { return ctx_ != nullptr; }
  /// CLIENT ID of the current connection (0 when not connected): for CLIENT UNBLOCK.
  long long client_id() const noexcept { return client_id_; }
  void disconnect() noexcept;
  /// Counters; readable from any thread.
  RedisConnectionStats stats() const noexcept;
  const RedisOptions& options() const noexcept { return options_; }

 private:
  Result<void> connect();
  std::error_code fail_io() noexcept;  // drops the connection; kIo or kTimeout
  Result<RedisReply> roundtrip(const Args& args);

  const RedisOptions options_;
  const Clock& clock_;
  std::minstd_rand rng_;
  redisContext* ctx_ = nullptr;
  long long client_id_ = 0;
  Millis command_timeout_now_{0};  // the socket timeout currently set
  TimePoint next_attempt_{};
  Nanos backoff_{0};
  std::atomic<std::uint64_t> connects_{0};
  std::atomic<std::uint64_t> connect_failures_{0};
  std::atomic<std::uint64_t> broken_{0};
  std::atomic<std::uint64_t> closed_by_server_{0};
};

class RedisPool;

/// A connection checked out of a RedisPool; returned when destroyed. Move-only.
class PooledConnection {
 public:
  PooledConnection(RedisPool* pool, std::unique_ptr<RedisConnection> conn) noexcept
      : pool_(pool), conn_(std::move(conn)) {}
  PooledConnection(PooledConnection&& o) noexcept = default;
  PooledConnection& operator=(PooledConnection&& o) noexcept;
  PooledConnection(const PooledConnection&) = delete;
  PooledConnection& operator=(const PooledConnection&) = delete;
  ~PooledConnection();
  RedisConnection& operator*() const noexcept { return *conn_; }
  RedisConnection* operator->() const noexcept { return conn_.get(); }

 private:
  void give_back() noexcept;
  RedisPool* pool_;
  std::unique_ptr<RedisConnection> conn_;
};

struct RedisPoolOptions {
  std::size_t size = 16;             ///< connections at most (made on demand)
  Millis acquire_timeout{2000};      ///< wait for a free connection before kPoolExhausted
};

/// A bounded pool of connections to one server. Thread-safe.
class RedisPool {
 public:
  RedisPool(RedisOptions options, RedisPoolOptions pool_options, const Clock& clock);
  ~RedisPool();
  RedisPool(const RedisPool&) = delete;
  RedisPool& operator=(const RedisPool&) = delete;

  /// A connection for exclusive use; kPoolExhausted after acquire_timeout.
  Result<PooledConnection> acquire();

  /// One command on a pooled connection.
  Result<RedisReply> command(const Args& args);
  Result<RedisReply> eval(const RedisScript& script, std::span<const std::string> keys,
                          std::span<const std::string> args);

  const RedisOptions& options() const noexcept { return options_; }
  /// Sums over the pool's connections.
  RedisConnectionStats stats() const;

 private:
  friend class PooledConnection;
  void release(std::unique_ptr<RedisConnection> conn) noexcept;

  const RedisOptions options_;
  const RedisPoolOptions pool_options_;
  const Clock& clock_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<RedisConnection>> idle_;
  std::vector<const RedisConnection*> all_;  // every connection made (they live as long as the pool)
  std::uint64_t next_seed_ = 1;
};

}  // namespace lab::runtime::redis
