#include "runtime/postgres/pg_error.hpp"

#include <string>

namespace lab::runtime::pg {
namespace {

std::string_view name_of(PgErrc e) noexcept {
  switch (e) {
    case PgErrc::kOk: return "ok";
    case PgErrc::kConnect: return "connect";
    case PgErrc::kConnectionLost: return "connection_lost";
    case PgErrc::kInDoubt: return "in_doubt";
    case PgErrc::kSerialization: return "serialization_failure";
    case PgErrc::kDeadlock: return "deadlock";
    case PgErrc::kUniqueViolation: return "unique_violation";
    case PgErrc::kForeignKeyViolation: return "foreign_key_violation";
    case PgErrc::kCheckViolation: return "check_violation";
    case PgErrc::kInvalidText: return "invalid_text";
    case PgErrc::kQueryCanceled: return "query_canceled";
    case PgErrc::kServerShutdown: return "server_shutdown";
    case PgErrc::kTooManyConnections: return "too_many_connections";
    case PgErrc::kPoolExhausted: return "pool_exhausted";
    case PgErrc::kSqlError: return "sql_error";
    case PgErrc::kUsage: return "usage";
  }
  return "unknown";
}

class PgCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "lab.postgres"; }
  std::string message(int ev) const override { return std::string(name_of(static_cast<PgErrc>(ev))); }
};

}  // namespace

const std::error_category& pg_category() noexcept {
  static const PgCategory category;
  return category;
}

std::error_code make_error_code(PgErrc e) noexcept { return {static_cast<int>(e), pg_category()}; }

PgErrc classify_sqlstate(std::string_view s) noexcept {
  if (s == "40001") return PgErrc::kSerialization;
  if (s == "40P01") return PgErrc::kDeadlock;
  if (s == "23505") return PgErrc::kUniqueViolation;
  if (s == "23503") return PgErrc::kForeignKeyViolation;
  if (s == "23514" || s == "23502") return PgErrc::kCheckViolation;
  if (s == "22021" || s == "22P05" || s == "22P02") return PgErrc::kInvalidText;
  if (s == "57014") return PgErrc::kQueryCanceled;
  if (s == "57P01" || s == "57P02" || s == "57P03") return PgErrc::kServerShutdown;
  if (s == "53300") return PgErrc::kTooManyConnections;
  if (s.substr(0, 2) == "08") return PgErrc::kConnectionLost;  // connection exception class
  return PgErrc::kSqlError;
}

bool is_retryable(std::error_code ec) noexcept {
  if (ec.category() != pg_category()) return false;
  switch (static_cast<PgErrc>(ec.value())) {
    case PgErrc::kConnect:
    case PgErrc::kConnectionLost:
    case PgErrc::kSerialization:
    case PgErrc::kDeadlock:
    case PgErrc::kServerShutdown:
      return true;
    default:
      return false;
  }
}

Errc to_runtime_errc(std::error_code ec) noexcept {
  if (!ec) return Errc::kOk;
  if (ec.category() == runtime_category()) return static_cast<Errc>(ec.value());
  if (ec.category() != pg_category()) return Errc::kBackendError;
  switch (static_cast<PgErrc>(ec.value())) {
    case PgErrc::kConnect:
    case PgErrc::kConnectionLost:
    case PgErrc::kInDoubt:
    case PgErrc::kServerShutdown:
    case PgErrc::kTooManyConnections:
    case PgErrc::kPoolExhausted:
    case PgErrc::kQueryCanceled:
    case PgErrc::kSerialization:
    case PgErrc::kDeadlock:
      return Errc::kUnavailable;
    case PgErrc::kInvalidText:
      return Errc::kInvalidArgument;
    default:
      return Errc::kBackendError;
  }
}

}  // namespace lab::runtime::pg
