#include "runtime/redis/redis_connection.hpp"

#include <hiredis/hiredis.h>
#include <openssl/evp.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <cerrno>
#include <charconv>
#include <memory>
#include <utility>

namespace lab::runtime::redis {
namespace {

timeval to_timeval(Millis ms) {
  const auto count = std::max<Millis::rep>(ms.count(), 1);
  return timeval{static_cast<time_t>(count / 1000), static_cast<suseconds_t>((count % 1000) * 1000)};
}

struct ReplyDeleter {
  void operator()(redisReply* r) const noexcept { freeReplyObject(r); }
};
using ReplyPtr = std::unique_ptr<redisReply, ReplyDeleter>;

// Copies a hiredis reply into a RedisReply; the first error reply found becomes the result.
std::error_code convert(const redisReply* in, RedisReply& out) {
  switch (in->type) {
    case REDIS_REPLY_ERROR:
      return make_error_code(classify_error_reply(std::string_view(in->str, in->len)));
    case REDIS_REPLY_STRING:
      out.type = RedisReply::Type::kString;
      out.str.assign(in->str, in->len);
      return {};
    case REDIS_REPLY_STATUS:
      out.type = RedisReply::Type::kStatus;
      out.str.assign(in->str, in->len);
      return {};
    case REDIS_REPLY_INTEGER:
      out.type = RedisReply::Type::kInteger;
      out.integer = in->integer;
      return {};
    case REDIS_REPLY_NIL:
      out.type = RedisReply::Type::kNil;
      return {};
    case REDIS_REPLY_ARRAY:
      out.type = RedisReply::Type::kArray;
      out.elements.resize(in->elements);
      for (std::size_t i = 0; i < in->elements; ++i) {
        if (auto ec = convert(in->element[i], out.elements[i])) return ec;
      }
      return {};
    default:
      return make_error_code(RedisErrc::kProtocol);
  }
}

std::string hex_sha1(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha1(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(len * 2);
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(kHex[digest[i] >> 4]);
    out.push_back(kHex[digest[i] & 0xf]);
  }
  return out;
}

bool parse_int(std::string_view text, int& out) {
  const auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && p == text.data() + text.size();
}

}  // namespace

// ---- RedisReply / Args / RedisScript ------------------------------------------------------

std::optional<long long> RedisReply::to_integer() const {
  if (type == Type::kInteger) return integer;
  if (type != Type::kString || str.empty()) return std::nullopt;
  long long v = 0;
  const auto [p, ec] = std::from_chars(str.data(), str.data() + str.size(), v);
  if (ec != std::errc() || p != str.data() + str.size()) return std::nullopt;
  return v;
}

Args::Args(std::initializer_list<std::string_view> parts) {
  parts_.reserve(parts.size());
  for (auto p : parts) parts_.emplace_back(p);
}

Args& Args::add(std::string_view part) {
  parts_.emplace_back(part);
  return *this;
}

Args& Args::add(long long n) {
  parts_.push_back(std::to_string(n));
  return *this;
}

Args& Args::add(std::uint64_t n) {
  parts_.push_back(std::to_string(n));
  return *this;
}

RedisScript::RedisScript(std::string source) : source_(std::move(source)), sha1_(hex_sha1(source_)) {}

Result<RedisOptions> parse_redis_url(std::string_view url) {
  constexpr std::string_view kScheme = "redis://";
  if (url.substr(0, kScheme.size()) != kScheme) return Errc::kInvalidArgument;
  std::string_view rest = url.substr(kScheme.size());
  RedisOptions o;
  const auto slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  if (slash != std::string_view::npos) {
    const std::string_view db = rest.substr(slash + 1);
    if (!db.empty() && (!parse_int(db, o.db) || o.db < 0)) return Errc::kInvalidArgument;
  }
  if (const auto at = authority.rfind('@'); at != std::string_view::npos) {
    const std::string_view userinfo = authority.substr(0, at);
    authority = authority.substr(at + 1);
    const auto colon = userinfo.find(':');
    if (colon == std::string_view::npos) {
      o.password = std::string(userinfo);  // redis://secret@host: a password, as redis-cli reads it
    } else {
      o.username = std::string(userinfo.substr(0, colon));
      o.password = std::string(userinfo.substr(colon + 1));
    }
  }
  std::string_view host = authority;
  std::string_view port;
  if (!authority.empty() && authority.front() == '[') {  // [::1]:6379
    const auto close = authority.find(']');
    if (close == std::string_view::npos) return Errc::kInvalidArgument;
    host = authority.substr(1, close - 1);
    const std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return Errc::kInvalidArgument;
      port = after.substr(1);
    }
  } else if (const auto colon = authority.rfind(':'); colon != std::string_view::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
  }
  if (host.empty()) return Errc::kInvalidArgument;
  o.host = std::string(host);
  if (!port.empty() && (!parse_int(port, o.port) || o.port <= 0 || o.port > 65535)) {
    return Errc::kInvalidArgument;
  }
  return o;
}

// ---- RedisConnection ----------------------------------------------------------------------

RedisConnection::RedisConnection(RedisOptions options, const Clock& clock, std::uint64_t seed)
    : options_(std::move(options)), clock_(clock), rng_(static_cast<std::uint_fast32_t>(seed | 1)) {}

RedisConnection::~RedisConnection() { disconnect(); }

void RedisConnection::disconnect() noexcept {
  if (ctx_ != nullptr) {
    redisFree(ctx_);
    ctx_ = nullptr;
  }
  client_id_ = 0;
}

RedisConnectionStats RedisConnection::stats() const noexcept {
  return RedisConnectionStats{connects_.load(), connect_failures_.load(), broken_.load(),
                              closed_by_server_.load()};
}

std::error_code RedisConnection::fail_io() noexcept {
  const int saved_errno = errno;
  const bool timed_out = ctx_ != nullptr && ctx_->err == REDIS_ERR_IO &&
                         (saved_errno == EAGAIN || saved_errno == EWOULDBLOCK);
  const bool protocol = ctx_ != nullptr && ctx_->err == REDIS_ERR_PROTOCOL;
  disconnect();
  ++broken_;
  if (timed_out) return make_error_code(RedisErrc::kTimeout);
  if (protocol) return make_error_code(RedisErrc::kProtocol);
  return make_error_code(RedisErrc::kIo);
}

Result<void> RedisConnection::ensure_connected() {
  if (ctx_ != nullptr) {
    // Closed by the server while idle (CLIENT KILL, restart, timeout)? Reopen before sending
    // anything: a command sent now would fail with its effect unknown.
    char byte = 0;
    const ssize_t n = ::recv(ctx_->fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return {};
    disconnect();
    ++closed_by_server_;
    // A connection that worked is retried at once: no backoff for the first attempt.
  }
  return connect();
}

Result<void> RedisConnection::connect() {
  const TimePoint now = clock_.now();
  if (now < next_attempt_) return make_error_code(RedisErrc::kConnect);
  const auto on_failure = [&](std::error_code ec) -> Result<void> {
    disconnect();
    ++connect_failures_;
    backoff_ = backoff_ == Nanos::zero()
                   ? Nanos(options_.backoff_initial)
                   : std::min<Nanos>(backoff_ * 2, Nanos(options_.backoff_max));
    const double jitter = 0.5 + 0.5 * std::uniform_real_distribution<double>(0.0, 1.0)(rng_);
    next_attempt_ = clock_.now() + std::chrono::duration_cast<Nanos>(backoff_ * jitter);
    return ec;
  };
  redisContext* c = redisConnectWithTimeout(options_.host.c_str(), options_.port,
                                            to_timeval(options_.connect_timeout));
  if (c == nullptr || c->err != 0) {
    if (c != nullptr) redisFree(c);
    return on_failure(make_error_code(RedisErrc::kConnect));
  }
  ctx_ = c;
  redisSetTimeout(ctx_, to_timeval(options_.command_timeout));
  redisEnableKeepAlive(ctx_);
  command_timeout_now_ = options_.command_timeout;
  const auto setup = [&](const Args& args) -> std::error_code {
    auto r = roundtrip(args);
    if (!r.ok()) return is_unavailable(r.error()) ? make_error_code(RedisErrc::kConnect) : r.error();
    return {};
  };
  if (!options_.password.empty()) {
    Args auth{"AUTH"};
    if (!options_.username.empty()) auth.add(options_.username);
    auth.add(options_.password);
    if (auto ec = setup(auth)) return on_failure(ec);
  }
  if (options_.db != 0) {
    if (auto ec = setup(Args{"SELECT"}.add(options_.db))) return on_failure(ec);
  }
  if (!options_.client_name.empty()) {
    if (auto ec = setup(Args{"CLIENT", "SETNAME", options_.client_name})) return on_failure(ec);
  }
  auto id = roundtrip(Args{"CLIENT", "ID"});
  if (!id.ok()) return on_failure(make_error_code(RedisErrc::kConnect));
  client_id_ = id->integer;
  backoff_ = Nanos::zero();
  next_attempt_ = TimePoint{};
  ++connects_;
  return {};
}

Result<RedisReply> RedisConnection::roundtrip(const Args& args) {
  const auto& parts = args.parts();
  std::vector<const char*> argv(parts.size());
  std::vector<std::size_t> lens(parts.size());
  for (std::size_t i = 0; i < parts.size(); ++i) {
    argv[i] = parts[i].data();
    lens[i] = parts[i].size();
  }
  ReplyPtr reply(static_cast<redisReply*>(
      redisCommandArgv(ctx_, static_cast<int>(parts.size()), argv.data(), lens.data())));
  if (!reply) return fail_io();
  RedisReply out;
  if (auto ec = convert(reply.get(), out)) return ec;
  return out;
}

Result<RedisReply> RedisConnection::command(const Args& args) { return command(args, options_.command_timeout); }

Result<RedisReply> RedisConnection::command(const Args& args, Millis timeout) {
  if (args.size() == 0) return Errc::kInvalidArgument;
  if (auto ok = ensure_connected(); !ok) return ok.error();
  if (timeout != command_timeout_now_) {
    redisSetTimeout(ctx_, to_timeval(timeout));
    command_timeout_now_ = timeout;
  }
  return roundtrip(args);
}

std::vector<Result<RedisReply>> RedisConnection::pipeline(std::span<const Args> commands) {
  std::vector<Result<RedisReply>> out;
  out.reserve(commands.size());
  if (auto ok = ensure_connected(); !ok) {
    for (std::size_t i = 0; i < commands.size(); ++i) out.emplace_back(ok.error());
    return out;
  }
  if (command_timeout_now_ != options_.command_timeout) {
    redisSetTimeout(ctx_, to_timeval(options_.command_timeout));
    command_timeout_now_ = options_.command_timeout;
  }
  for (const auto& args : commands) {
    const auto& parts = args.parts();
    std::vector<const char*> argv(parts.size());
    std::vector<std::size_t> lens(parts.size());
    for (std::size_t i = 0; i < parts.size(); ++i) {
      argv[i] = parts[i].data();
      lens[i] = parts[i].size();
    }
    redisAppendCommandArgv(ctx_, static_cast<int>(parts.size()), argv.data(), lens.data());
  }
  std::error_code broken;
  for (std::size_t i = 0; i < commands.size(); ++i) {
    if (broken) {
      out.emplace_back(broken);
      continue;
    }
    void* raw = nullptr;
    if (redisGetReply(ctx_, &raw) != REDIS_OK || raw == nullptr) {
      broken = fail_io();
      out.emplace_back(broken);
      continue;
    }
    ReplyPtr reply(static_cast<redisReply*>(raw));
    RedisReply value;
    if (auto ec = convert(reply.get(), value)) {
      out.emplace_back(ec);
    } else {
      out.emplace_back(std::move(value));
    }
  }
  return out;
}

Result<RedisReply> RedisConnection::eval(const RedisScript& script, std::span<const std::string> keys,
                                         std::span<const std::string> args) {
  const auto build = [&](std::string_view verb, std::string_view body) {
    Args a{verb, body};
    a.add(static_cast<long long>(keys.size()));
    for (const auto& k : keys) a.add(k);
    for (const auto& v : args) a.add(v);
    return a;
  };
  auto r = command(build("EVALSHA", script.sha1()));
  if (r.ok() || r.error() != RedisErrc::kNoScript) return r;
  return command(build("EVAL", script.source()));  // also caches it on the server
}

// ---- PooledConnection / RedisPool ---------------------------------------------------------

PooledConnection& PooledConnection::operator=(PooledConnection&& o) noexcept {
  if (this != &o) {
    give_back();
    pool_ = o.pool_;
    conn_ = std::move(o.conn_);
  }
  return *this;
}

PooledConnection::~PooledConnection() { give_back(); }

void PooledConnection::give_back() noexcept {
  if (conn_ && pool_ != nullptr) pool_->release(std::move(conn_));
}

RedisPool::RedisPool(RedisOptions options, RedisPoolOptions pool_options, const Clock& clock)
    : options_(std::move(options)), pool_options_(pool_options), clock_(clock) {}

RedisPool::~RedisPool() = default;

Result<PooledConnection> RedisPool::acquire() {
  std::unique_lock lk(mu_);
  const auto ready = [&] { return !idle_.empty() || all_.size() < pool_options_.size; };
  if (!cv_.wait_for(lk, pool_options_.acquire_timeout, ready)) return make_error_code(RedisErrc::kPoolExhausted);
  if (!idle_.empty()) {
    auto conn = std::move(idle_.back());
    idle_.pop_back();
    return PooledConnection(this, std::move(conn));
  }
  auto conn = std::make_unique<RedisConnection>(options_, clock_, next_seed_++);
  all_.push_back(conn.get());
  return PooledConnection(this, std::move(conn));
}

void RedisPool::release(std::unique_ptr<RedisConnection> conn) noexcept {
  {
    std::lock_guard lk(mu_);
    idle_.push_back(std::move(conn));
  }
  cv_.notify_one();
}

Result<RedisReply> RedisPool::command(const Args& args) {
  auto conn = acquire();
  if (!conn.ok()) return conn.error();
  return (*conn)->command(args);
}

Result<RedisReply> RedisPool::eval(const RedisScript& script, std::span<const std::string> keys,
                                   std::span<const std::string> args) {
  auto conn = acquire();
  if (!conn.ok()) return conn.error();
  return (*conn)->eval(script, keys, args);
}

RedisConnectionStats RedisPool::stats() const {
  std::lock_guard lk(mu_);
  RedisConnectionStats total;
  for (const RedisConnection* c : all_) {
    const auto s = c->stats();
    total.connects += s.connects;
    total.connect_failures += s.connect_failures;
    total.broken += s.broken;
    total.closed_by_server += s.closed_by_server;
  }
  return total;
}

}  // namespace lab::runtime::redis
