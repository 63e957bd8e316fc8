#pragma once
// Typed errors of the PostgreSQL wrapper. libpqxx exceptions (and the SQLSTATE they carry)
// become these codes in PgPool and nowhere else; the store maps them to the runtime's Errc.

#include <string_view>
#include <system_error>

#include "runtime/api/result.hpp"

namespace lab::runtime::pg {

enum class PgErrc {
  kOk = 0,
  kConnect,              ///< could not connect, or still backing off after a failed connect
  kConnectionLost,       ///< the connection broke before COMMIT was sent: rolled back
  kInDoubt,              ///< the connection broke during COMMIT: the transaction may have committed
  kSerialization,        ///< 40001: rolled back, safe to retry
  kDeadlock,             ///< 40P01: rolled back, safe to retry
  kUniqueViolation,      ///< 23505
  kForeignKeyViolation,  ///< 23503
  kCheckViolation,       ///< 23514 (and 23502 not-null)
  kInvalidText,          ///< 22021/22P05/22P02: bytes PostgreSQL cannot store as text
  kQueryCanceled,        ///< 57014: statement_timeout
  kServerShutdown,       ///< 57P01/57P02/57P03: the server is stopping or starting
  kTooManyConnections,   ///< 53300
  kPoolExhausted,        ///< no pooled connection became free within the wait
  kSqlError,             ///< any other SQL error
  kUsage,                ///< a libpqxx usage or conversion error (a bug in the caller)
};

const std::error_category& pg_category() noexcept;
std::error_code make_error_code(PgErrc e) noexcept;

/// The code for a SQLSTATE ("40001" → kSerialization); kSqlError for unknown ones.
PgErrc classify_sqlstate(std::string_view sqlstate) noexcept;

/// Whether the failure is transient and the transaction was rolled back, so that running it
/// again is safe: kConnectionLost, kSerialization, kDeadlock, kServerShutdown, kConnect.
bool is_retryable(std::error_code ec) noexcept;

/// kUnavailable (connect, lost, in doubt, shutdown, too many connections, pool, statement
/// timeout), kInvalidArgument (invalid text), kBackendError (the rest). Runtime codes pass through.
Errc to_runtime_errc(std::error_code ec) noexcept;
inline std::error_code to_runtime(std::error_code ec) noexcept { return make_error_code(to_runtime_errc(ec)); }

}  // namespace lab::runtime::pg

template <>
struct std::is_error_code_enum<lab::runtime::pg::PgErrc> : std::true_type {};
