#pragma once
// The store's migrations, embedded at build time from runtime/stores/postgres/migrations/*.sql
// (NNN_name.sql; NNN is the version). Defined in a file CMake generates.

#include <span>

#include "runtime/postgres/pg_migrations.hpp"

namespace lab::runtime {

/// In version order.
std::span<const pg::Migration> store_migrations();

}  // namespace lab::runtime
