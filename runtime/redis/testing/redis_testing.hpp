#pragma once
// Helpers for integration tests against a real Redis: the shared server scripts/services
// started (AGENTLAB_REDIS_URL), unique key prefixes so tests run in parallel, and a private
// redis-server per test for the tests that kill connections or restart the server (which must
// not disturb the shared one).

#include <string>
#include <string_view>
#include <sys/types.h>

#include "runtime/api/result.hpp"
#include "runtime/redis/redis_connection.hpp"

namespace lab::runtime::redis::testing {

/// The options from AGENTLAB_REDIS_URL, or a message for the failure when it is unset or bad.
Result<RedisOptions> options_from_env(std::string& message);

/// A key prefix no other test (or run) uses: "t:<test name>:<pid>:<n>:".
std::string unique_prefix(std::string_view test_name);

/// Deletes every key starting with `prefix` (SCAN MATCH + DEL): a test's leftovers.
void delete_keys(RedisPool& pool, std::string_view prefix);

/// A redis-server of our own on a free loopback port, in a temporary directory, with an
/// append-only file (so a restart keeps the data, as scripts/services runs it). Stopped and
/// removed on destruction.
class PrivateRedis {
 public:
  PrivateRedis() = default;
  ~PrivateRedis();
  PrivateRedis(const PrivateRedis&) = delete;
  PrivateRedis& operator=(const PrivateRedis&) = delete;

  /// Starts the server and waits (bounded) until it answers PING. An error message on failure.
  Result<void> start(std::string& message);
  /// SHUTDOWN (the append-only file is synced) and wait for the process to exit.
  void stop();
  /// stop() then start() on the same port and directory.
  Result<void> restart(std::string& message);
  /// Runs `redis-cli -p PORT <args>` as the brief's chaos step does; its exit status.
  int cli(std::string_view args) const;

  int port() const noexcept { return port_; }
  RedisOptions options() const;

 private:
  Result<void> spawn(std::string& message);
  std::string dir_;
  int port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace lab::runtime::redis::testing
