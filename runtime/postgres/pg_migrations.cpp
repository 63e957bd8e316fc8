#include "runtime/postgres/pg_migrations.hpp"

#include <pqxx/pqxx>

#include <string>

namespace lab::runtime::pg {

Result<MigrationReport> apply_migrations(const PgOptions& options, std::span<const Migration> migrations) {
  if (!options.schema.empty() && !is_plain_identifier(options.schema)) return Errc::kInvalidArgument;
  for (std::size_t i = 0; i < migrations.size(); ++i) {
    if (migrations[i].version <= 0 || (i > 0 && migrations[i].version <= migrations[i - 1].version)) {
      return Errc::kInvalidArgument;
    }
  }
  try {
    pqxx::connection c(connection_string(options));
    pqxx::work tx(c);
    const std::string lock_name = "agentlab.migrations:" + (options.schema.empty() ? "" : options.schema);
    tx.exec_params("SELECT pg_advisory_xact_lock(hashtext($1))", lock_name);
    if (!options.schema.empty()) tx.exec("CREATE SCHEMA IF NOT EXISTS " + tx.quote_name(options.schema));
    tx.exec(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY,"
        " name TEXT NOT NULL,"
        " checksum TEXT NOT NULL,"
        " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())");
    MigrationReport report;
    for (const Migration& m : migrations) {
      const pqxx::result done =
          tx.exec_params("SELECT checksum = md5($2) FROM schema_migrations WHERE version = $1", m.version,
                         std::string(m.sql));
      if (!done.empty()) {
        if (!done[0][0].as<bool>()) return Errc::kConflict;
        continue;
      }
      tx.exec(std::string(m.sql));
      tx.exec_params("INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, md5($3))", m.version,
                     std::string(m.name), std::string(m.sql));
      report.applied.push_back(m.version);
    }
    const pqxx::result v = tx.exec("SELECT coalesce(max(version), 0) FROM schema_migrations");
    report.version = v[0][0].as<int>();
    tx.commit();
    return report;
  } catch (const pqxx::broken_connection&) {
    return make_error_code(PgErrc::kConnect);
  } catch (const pqxx::in_doubt_error&) {
    return make_error_code(PgErrc::kInDoubt);
  } catch (const pqxx::sql_error& e) {
    return make_error_code(classify_sqlstate(e.sqlstate()));
  } catch (const std::exception&) {
    return make_error_code(PgErrc::kSqlError);
  }
}

}  // namespace lab::runtime::pg
