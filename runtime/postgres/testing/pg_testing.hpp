#pragma once
// Helpers for integration tests against the real PostgreSQL that scripts/services started
// (AGENTLAB_PG_URL): a schema of its own per test, dropped at the end, so tests run in parallel.

#include <string>
#include <string_view>

#include "runtime/api/result.hpp"
#include "runtime/postgres/pg_pool.hpp"

namespace lab::runtime::pg::testing {

/// Options for AGENTLAB_PG_URL with `schema`, or a message for the failure when it is unset.
Result<PgOptions> options_from_env(std::string_view schema, std::string& message);

/// A schema name no other test (or run) uses: "t_<test name>_<pid>_<n>", lowercased, cut to 63.
std::string unique_schema(std::string_view test_name);

/// Drops the schema (CASCADE) when destroyed.
class SchemaGuard {
 public:
  explicit SchemaGuard(PgOptions options) : options_(std::move(options)) {}
  ~SchemaGuard();
  SchemaGuard(const SchemaGuard&) = delete;
  SchemaGuard& operator=(const SchemaGuard&) = delete;

 private:
  PgOptions options_;
};

}  // namespace lab::runtime::pg::testing
