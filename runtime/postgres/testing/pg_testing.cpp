#include "runtime/postgres/testing/pg_testing.hpp"

#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cstdlib>

namespace lab::runtime::pg::testing {

Result<PgOptions> options_from_env(std::string_view schema, std::string& message) {
  const char* url = std::getenv("AGENTLAB_PG_URL");
  if (url == nullptr || *url == '\0') {
    message =
        "AGENTLAB_PG_URL is not set: integration tests need the real PostgreSQL that "
        "scripts/services starts. Run them via scripts/test (or: scripts/services start && "
        "eval \"$(scripts/services env)\").";
    return Errc::kInvalidArgument;
  }
  PgOptions o;
  o.url = url;
  o.schema = std::string(schema);
  o.application_name = std::string(schema);  // <= 63 bytes, as PostgreSQL keeps it
  return o;
}

std::string unique_schema(std::string_view test_name) {
  static std::atomic<int> counter{0};
  std::string name = "t_";
  for (const char c : test_name) {
    const auto u = static_cast<unsigned char>(c);
    name.push_back(std::isalnum(u) ? static_cast<char>(std::tolower(u)) : '_');
  }
  const std::string suffix = "_" + std::to_string(::getpid()) + "_" + std::to_string(counter.fetch_add(1));
  if (name.size() + suffix.size() > 63) name.resize(63 - suffix.size());
  return name + suffix;
}

SchemaGuard::~SchemaGuard() {
  if (!is_plain_identifier(options_.schema)) return;
  PgOptions o = options_;
  o.schema.clear();
  (void)execute_once(o, "DROP SCHEMA IF EXISTS " + options_.schema + " CASCADE");
}

}  // namespace lab::runtime::pg::testing
