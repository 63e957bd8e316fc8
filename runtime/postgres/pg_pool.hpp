#pragma once
// A bounded pool of libpqxx connections with prepared statements, transactions that retry what
// is safe to retry, and typed errors: every libpqxx exception thrown inside a transaction body
// is caught here and becomes a PgErrc.
//
// Connections. Made on demand up to pool_size; each gets the statements given to the pool
// (prepared per connection by libpqxx, on first use) and its session settings through the
// connection string: search_path (the schema), statement_timeout, application_name, TCP
// keepalives and tcp_user_timeout (so a dead server is noticed), connect_timeout. A connection
// that breaks is dropped together with the idle ones (after a server restart they are all dead)
// and replaced on the next call. After a failed connect, new connects wait out a backoff
// (backoff_initial doubling to backoff_max, jittered) and calls fail fast with kConnect meanwhile.
//
// Retries. run() retries the whole body, on a fresh connection, up to max_attempts when the
// transaction certainly did not commit: the connection broke before COMMIT, a serialization
// failure, a deadlock, the server shutting down. A break during COMMIT is kInDoubt and is never
// retried here (the caller's idempotency key decides). Errors the body returns (domain errors)
// roll the transaction back and are returned as they are.
//
// Durability: nothing here changes synchronous_commit; the server's setting (on by default)
// holds, and PgStore refuses to start when it is off.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "common/clock/clock.hpp"
#include "runtime/api/result.hpp"
#include "runtime/postgres/pg_error.hpp"

namespace pqxx {
class transaction_base;
}  // namespace pqxx

namespace lab::runtime::pg {

struct PgOptions {
  std::string url;                      ///< postgresql://user@host:port/db[?params]
  std::string schema;                   ///< search_path of every connection; empty: the server's
  std::string application_name = "agentlab";
  Seconds connect_timeout{5};
  Millis statement_timeout{30'000};
  Millis tcp_user_timeout{15'000};
  Millis backoff_initial{50};
  Millis backoff_max{2000};
  std::size_t pool_size = 8;
  Millis acquire_timeout{5000};
  std::uint32_t max_attempts = 3;
};

struct PreparedStatement {
  std::string name;
  std::string sql;
};

enum class TxMode : std::uint8_t {
  kReadWrite,   ///< BEGIN ... COMMIT (read committed)
  kAutocommit,  ///< no transaction: each statement commits (or reads) on its own
};

struct PgPoolStats {
  std::uint64_t connects = 0;
  std::uint64_t connect_failures = 0;
  std::uint64_t broken = 0;      ///< connections dropped after a failure
  std::uint64_t retries = 0;     ///< bodies run again after a retryable failure
  std::uint64_t in_doubt = 0;    ///< commits whose outcome is unknown
};

/// The connection string: `url` plus the session parameters of PgOptions.
std::string connection_string(const PgOptions& options);
/// Whether `name` is a plain lowercase identifier ([a-z_][a-z0-9_]*, at most 63 bytes): the only
/// schema names accepted (they go into search_path unquoted).
bool is_plain_identifier(std::string_view name) noexcept;

class PgPool {
 public:
  using Body = std::function<std::error_code(pqxx::transaction_base&)>;

  /// `clock` times the connect backoff; it must outlive the pool. Nothing connects yet.
  PgPool(PgOptions options, std::vector<PreparedStatement> statements, const Clock& clock);
  ~PgPool();
  PgPool(const PgPool&) = delete;
  PgPool& operator=(const PgPool&) = delete;

  /// Runs `body` in a transaction (or autocommit) on a pooled connection and commits when it
  /// returns no error. See the retry rules above. Thread-safe.
  std::error_code run(TxMode mode, const Body& body);

  /// run() for a body that produces a value: fn(tx) returns Result<T>.
  template <class T, class Fn>
  Result<T> transact(TxMode mode, Fn&& fn) {
    std::optional<Result<T>> out;
    const std::error_code ec = run(mode, [&](pqxx::transaction_base& tx) -> std::error_code {
      out.emplace(fn(tx));
      return out->ok() ? std::error_code{} : out->error();
    });
    if (ec) return ec;
    return std::move(*out);
  }

  PgPoolStats stats() const;
  const PgOptions& options() const noexcept { return options_; }

 private:
  struct Connection;
  Result<std::unique_ptr<Connection>> acquire();
  void release(std::unique_ptr<Connection> conn, bool broken);
  std::error_code run_once(Connection& conn, TxMode mode, const Body& body, bool& broken);

  const PgOptions options_;
  const std::vector<PreparedStatement> statements_;
  const std::string conninfo_;
  const Clock& clock_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<Connection>> idle_;
  std::size_t open_ = 0;  // connections existing (idle + checked out + being made)
  std::uint64_t generation_ = 0;  // bumped when a break drops the idle connections
  TimePoint next_connect_{};
  Nanos backoff_{0};
  std::minstd_rand rng_{0x9e3779b9};
  std::atomic<std::uint64_t> connects_{0};
  std::atomic<std::uint64_t> connect_failures_{0};
  std::atomic<std::uint64_t> broken_{0};
  std::atomic<std::uint64_t> retries_{0};
  std::atomic<std::uint64_t> in_doubt_{0};
};

/// Runs `sql` (one or more statements, no parameters) on a connection of its own, outside any
/// pool: migrations, test setup. Errors as PgErrc.
std::error_code execute_once(const PgOptions& options, std::string_view sql);

}  // namespace lab::runtime::pg
