#pragma once
// Versioned schema migrations, applied at start. Each migration is a SQL text with a version;
// the schema's `schema_migrations` table records what was applied and the md5 of its text.
//
// apply_migrations runs in one transaction on a connection of its own, under an advisory lock
// keyed by the schema, so that processes starting together apply each migration exactly once
// (the others wait, then find it done). DDL is transactional in PostgreSQL: a migration that
// fails leaves nothing behind. A migration already applied whose text has changed since is an
// error (kConflict): versions are immutable; add a new one.

#include <span>
#include <string_view>
#include <vector>

#include "runtime/api/result.hpp"
#include "runtime/postgres/pg_pool.hpp"

namespace lab::runtime::pg {

struct Migration {
  int version = 0;         ///< > 0, ascending, never reused
  std::string_view name;   ///< "001_initial"
  std::string_view sql;
};

struct MigrationReport {
  std::vector<int> applied;  ///< versions applied by this call (empty when up to date)
  int version = 0;           ///< the schema's version afterwards
};

/// Creates options.schema when missing (a plain identifier; empty: the connection's current
/// schema) and applies the migrations it does not have yet, in version order.
/// Errors: PgErrc (connect, SQL), kConflict (an applied migration's text changed),
/// kInvalidArgument (versions not strictly ascending, a bad schema name).
Result<MigrationReport> apply_migrations(const PgOptions& options, std::span<const Migration> migrations);

}  // namespace lab::runtime::pg
