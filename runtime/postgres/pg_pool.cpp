#include "runtime/postgres/pg_pool.hpp"

#include <pqxx/pqxx>

#include <algorithm>
#include <utility>

namespace lab::runtime::pg {
namespace {

std::string percent_encode(std::string_view in) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (const unsigned char c : in) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
        c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xf]);
    }
  }
  return out;
}

}  // namespace

bool is_plain_identifier(std::string_view name) noexcept {
  if (name.empty() || name.size() > 63) return false;
  if (!((name[0] >= 'a' && name[0] <= 'z') || name[0] == '_')) return false;
  return std::all_of(name.begin(), name.end(),
                     [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'; });
}

std::string connection_string(const PgOptions& o) {
  std::string options = "-c statement_timeout=" + std::to_string(o.statement_timeout.count()) +
                        " -c client_min_messages=warning";
  if (!o.schema.empty()) options += " -c search_path=" + o.schema;
  std::string s = o.url;
  s += o.url.find('?') == std::string::npos ? '?' : '&';
  s += "connect_timeout=" + std::to_string(std::max<Seconds::rep>(1, o.connect_timeout.count()));
  s += "&application_name=" + percent_encode(o.application_name);
  s += "&keepalives=1&keepalives_idle=5&keepalives_interval=2&keepalives_count=3";
  s += "&tcp_user_timeout=" + std::to_string(o.tcp_user_timeout.count());
  s += "&options=" + percent_encode(options);
  return s;
}

struct PgPool::Connection {
  std::unique_ptr<pqxx::connection> c;
};

PgPool::PgPool(PgOptions options, std::vector<PreparedStatement> statements, const Clock& clock)
    : options_(std::move(options)),
      statements_(std::move(statements)),
      conninfo_(connection_string(options_)),
      clock_(clock) {}

PgPool::~PgPool() = default;

PgPoolStats PgPool::stats() const {
  return PgPoolStats{connects_.load(), connect_failures_.load(), broken_.load(), retries_.load(), in_doubt_.load()};
}

Result<std::unique_ptr<PgPool::Connection>> PgPool::acquire() {
  std::unique_lock lk(mu_);
  const auto ready = [&] { return !idle_.empty() || open_ < options_.pool_size; };
  if (!cv_.wait_for(lk, options_.acquire_timeout, ready)) return make_error_code(PgErrc::kPoolExhausted);
  if (!idle_.empty()) {
    auto conn = std::move(idle_.back());
    idle_.pop_back();
    return conn;
  }
  if (clock_.now() < next_connect_) return make_error_code(PgErrc::kConnect);
  ++open_;
  lk.unlock();
  auto conn = std::make_unique<Connection>();
  try {
    conn->c = std::make_unique<pqxx::connection>(conninfo_);
    // libpqxx 6 would otherwise reopen a broken connection silently (outside a transaction),
    // bypassing this pool's accounting and backoff. Deprecated in 6.x (reactivation goes away
    // in 7.0), hence the pragma.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    conn->c->inhibit_reactivation(true);
#pragma GCC diagnostic pop
    for (const auto& s : statements_) conn->c->prepare(s.name, s.sql);
  } catch (const std::exception&) {
    lk.lock();
    --open_;
    ++connect_failures_;
    backoff_ = backoff_ == Nanos::zero() ? Nanos(options_.backoff_initial)
                                         : std::min<Nanos>(backoff_ * 2, Nanos(options_.backoff_max));
    const double jitter = 0.5 + 0.5 * std::uniform_real_distribution<double>(0.0, 1.0)(rng_);
    next_connect_ = clock_.now() + std::chrono::duration_cast<Nanos>(backoff_ * jitter);
    lk.unlock();
    cv_.notify_one();
    return make_error_code(PgErrc::kConnect);
  }
  lk.lock();
  backoff_ = Nanos::zero();
  next_connect_ = TimePoint{};
  ++connects_;
  return conn;
}

void PgPool::release(std::unique_ptr<Connection> conn, bool broken) {
  std::vector<std::unique_ptr<Connection>> dropped;  // closed outside the lock
  {
    std::lock_guard lk(mu_);
    if (broken) {
      ++broken_;
      --open_;
      dropped.push_back(std::move(conn));
      // The others were probably cut by the same cause (a server restart): drop the idle ones
      // too rather than let each caller find out with a failed attempt.
      open_ -= idle_.size();
      for (auto& c : idle_) dropped.push_back(std::move(c));
      idle_.clear();
    } else {
      idle_.push_back(std::move(conn));
    }
  }
  cv_.notify_all();
}

std::error_code PgPool::run_once(Connection& conn, TxMode mode, const Body& body, bool& broken) {
  bool committing = false;
  const auto lost = [&]() {
    broken = true;
    if (committing) {
      ++in_doubt_;
      return make_error_code(PgErrc::kInDoubt);
    }
    return make_error_code(PgErrc::kConnectionLost);
  };
  try {
    if (mode == TxMode::kAutocommit) {
      pqxx::nontransaction tx(*conn.c);
      return body(tx);
    }
    pqxx::work tx(*conn.c);
    if (auto ec = body(tx)) {
      tx.abort();
      return ec;
    }
    committing = true;
    tx.commit();
    return {};
  } catch (const pqxx::in_doubt_error&) {
    committing = true;
    return lost();
  } catch (const pqxx::broken_connection&) {
    return lost();
  } catch (const pqxx::serialization_failure&) {
    return make_error_code(PgErrc::kSerialization);
  } catch (const pqxx::deadlock_detected&) {
    return make_error_code(PgErrc::kDeadlock);
  } catch (const pqxx::statement_completion_unknown&) {
    committing = true;
    return lost();
  } catch (const pqxx::sql_error& e) {
    const PgErrc code = classify_sqlstate(e.sqlstate());
    if (!conn.c->is_open() || code == PgErrc::kServerShutdown || code == PgErrc::kConnectionLost) {
      broken = true;
      if (committing) {
        ++in_doubt_;
        return make_error_code(PgErrc::kInDoubt);
      }
      return make_error_code(code == PgErrc::kServerShutdown ? code : PgErrc::kConnectionLost);
    }
    return make_error_code(code);
  } catch (const pqxx::usage_error&) {
    return make_error_code(PgErrc::kUsage);
  } catch (const pqxx::failure&) {
    if (!conn.c->is_open()) return lost();
    return make_error_code(PgErrc::kSqlError);
  } catch (const std::exception&) {  // conversion, range, argument errors: a bug in the body
    if (!conn.c->is_open()) return lost();
    return make_error_code(PgErrc::kUsage);
  }
}

std::error_code PgPool::run(TxMode mode, const Body& body) {
  for (std::uint32_t attempt = 1;; ++attempt) {
    auto conn = acquire();
    if (!conn.ok()) return conn.error();
    bool broken = false;
    const std::error_code ec = run_once(**conn, mode, body, broken);
    release(std::move(*conn), broken);
    if (!ec) return {};
    const bool again = ec == PgErrc::kConnectionLost || ec == PgErrc::kSerialization || ec == PgErrc::kDeadlock ||
                       ec == PgErrc::kServerShutdown;
    if (!again || attempt >= std::max<std::uint32_t>(1, options_.max_attempts)) return ec;
    ++retries_;
  }
}

std::error_code execute_once(const PgOptions& options, std::string_view sql) {
  try {
    pqxx::connection c(connection_string(options));
    pqxx::nontransaction tx(c);
    tx.exec(std::string(sql));
    return {};
  } catch (const pqxx::broken_connection&) {
    return make_error_code(PgErrc::kConnect);
  } catch (const pqxx::sql_error& e) {
    return make_error_code(classify_sqlstate(e.sqlstate()));
  } catch (const std::exception&) {
    return make_error_code(PgErrc::kSqlError);
  }
}

}  // namespace lab::runtime::pg
