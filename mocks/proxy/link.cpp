// The proxied TCP streams: one Connection per accepted client, two Links (upstream: client →
// server, downstream: server → client), each a reader coroutine and a pump coroutine joined by
// a bounded queue.
//
// The reader reads chunks (stamped with their receive time) until the queue holds
// buffer_bytes, then waits: backpressure reaches the sender through TCP. The pump takes the
// front chunk and runs its unsent bytes through the direction's toxics, in chain order, each
// stage handing pieces to the next and the last stage writing them. Toxiproxy runs one
// goroutine per stage; here the stages run in one coroutine, which gives the same bytes and
// the same timing for these toxics because latency is measured from the receive time (a chunk
// that waited in the queue waits less), bandwidth paces what it passes on, and the slicer's
// delay sits between slices.
//
// Toxics added, removed or updated while a connection is open: the registry hands the link a
// new chain (set_chain, on the link's thread). That bumps the chain generation and cancels the
// pump's timer; a stage that sees the generation change returns kInterrupted, and the chunk's
// remaining bytes go through the new chain from its start. Per-toxic state (limit_data's
// count, bandwidth's carry) survives an update; toxicity is drawn again (Toxiproxy re-runs the
// stub) and timers restart.
//
// Closing: EOF from a source passes through the chain (slow_close waits, reset_peer resets)
// and then half-closes the destination; when both directions have ended, both sockets close.
// timeout, reset_peer and limit_data, a write error, a read error, the idle timeout or the
// proxy being disabled close the whole connection at once (reset_peer with SO_LINGER 0, so
// the peers see RST).
//
// Every co_await here stands in its own statement: GCC 12 miscompiles a co_await inside an
// if condition or if-init (the coroutine crashes on its first resume).

#include "mocks/proxy/link.hpp"

#include <algorithm>
#include <cstdio>
#include <deque>
#include <exception>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/tcp_stream.hpp>

#include "mocks/proxy/address.hpp"

namespace lab::mocks::proxy::detail {

namespace {

namespace beast = boost::beast;
using error_code = boost::system::error_code;
using SteadyClock = std::chrono::steady_clock;
using TimePoint = SteadyClock::time_point;

constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);

/// Bandwidth passes at most this much time's worth of bytes at once (Toxiproxy: 100 ms).
constexpr std::int64_t kBandwidthSliceMs = 100;
/// Oversleep carried into the next bandwidth wait is capped, so timer slack cannot turn into
/// a burst.
constexpr std::chrono::milliseconds kMaxBandwidthCarry{100};

/// How a stage ended: the piece went on (or was dropped on purpose), the chain changed under
/// it, or the connection is over.
enum class Step { kDone, kInterrupted, kEnded };
/// Why the pump's wait returned.
enum class Wake { kDue, kInterrupted, kWoken, kEnded };

void log_exception(const char* where, const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "chaos-proxy: %s: %s\n", where, e.what());
  } catch (...) {
    std::fprintf(stderr, "chaos-proxy: %s: unknown exception\n", where);
  }
}

void log_if_failed(const std::exception_ptr& e) {
  if (e) log_exception("connection", e);
}

}  // namespace

/// One toxic acting on one link: the draw that decided whether it applies, and its state.
struct ToxicRun {
  std::shared_ptr<const Toxic> toxic;
  bool active = true;
  TimePoint started;  ///< when this run began or (timeout toxic) last dropped data
  std::chrono::nanoseconds carry{0};   ///< bandwidth: oversleep to take off the next wait (≤ 0)
  std::int64_t transmitted = 0;        ///< limit_data: bytes passed on
  std::optional<TimePoint> reset_at;   ///< reset_peer: armed by the first input
};

struct Chunk {
  std::vector<char> data;
  std::size_t consumed = 0;  ///< bytes written on or dropped; the rest is still in the chain
  TimePoint received;
};

class Connection;

/// One direction of a connection.
class Link {
 public:
  Link(Connection& conn, Direction dir, beast::tcp_stream& source, beast::tcp_stream& dest);

  asio::awaitable<void> read_loop();
  asio::awaitable<void> pump();
  /// Installs a new chain (no-op when it is the one in place). Link's thread only.
  void set_chain(const std::shared_ptr<const Chain>& chain);
  void cancel_timers();

 private:
  asio::awaitable<Wake> wait_until(TimePoint due, bool wake_on_data = false);
  std::optional<TimePoint> event_due() const;
  void fire_event(TimePoint now);
  asio::awaitable<Step> process_front();
  asio::awaitable<Step> stage(std::size_t i, Chunk& c, std::size_t begin, std::size_t end,
                              std::uint64_t gen);
  asio::awaitable<Step> deliver(Chunk& c, std::size_t begin, std::size_t end);
  asio::awaitable<Step> wait_for(TimePoint due);
  asio::awaitable<Step> stage_eof();
  asio::awaitable<void> finish();
  void wake_pump();

  Connection& conn_;
  const Direction dir_;
  beast::tcp_stream& source_;
  beast::tcp_stream& dest_;
  asio::steady_timer pump_timer_;
  asio::steady_timer reader_timer_;
  std::deque<Chunk> queue_;  ///< references to elements stay valid across push_back
  std::size_t queued_bytes_ = 0;
  bool source_done_ = false;
  bool source_failed_ = false;
  bool pump_idle_ = false;       ///< the pump waits for data: the reader wakes it
  bool reader_blocked_ = false;  ///< the reader waits for queue space: the pump wakes it
  std::shared_ptr<const Chain> chain_;
  std::vector<std::shared_ptr<ToxicRun>> runs_;
  std::uint64_t gen_ = 0;  ///< grows with every set_chain
  std::vector<char> read_buf_;
};

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(std::shared_ptr<ProxyState> proxy, Shard& shard, const DataPlaneOptions& options,
             tcp::socket client, std::uint64_t epoch)
      : proxy_(std::move(proxy)),
        shard_(shard),
        options_(options),
        epoch_(epoch),
        client_(std::move(client)),
        server_(shard.ctx),
        idle_timer_(shard.ctx),
        links_{Link(*this, Direction::kUpstream, client_, server_),
               Link(*this, Direction::kDownstream, server_, client_)} {
    proxy_->counters.open.fetch_add(1);
  }

  ~Connection() {
    if (registered_) proxy_->connections[static_cast<std::size_t>(shard_.index)].erase(this);
    proxy_->counters.open.fetch_sub(1);
  }

  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  static asio::awaitable<void> run(std::shared_ptr<Connection> self);

  /// Ends the whole connection now. `reset`: SO_LINGER 0 first, so both peers get RST.
  void close(bool reset, bool by_toxic) {
    if (closed_) return;
    closed_ = true;
    if (by_toxic) proxy_->counters.closed_by_toxic.fetch_add(1, std::memory_order_relaxed);
    error_code ec;
    if (reset) {
      for (beast::tcp_stream* s : {&client_, &server_}) {
        if (s->socket().is_open()) s->socket().set_option(asio::socket_base::linger(true, 0), ec);
      }
    }
    client_.close();
    server_.close();
    idle_timer_.cancel();
    for (Link& link : links_) link.cancel_timers();
  }

  /// A direction passed its EOF through: half-close its destination; the second one closes all.
  void finish_direction(beast::tcp_stream& dest) {
    error_code ec;
    dest.socket().shutdown(tcp::socket::shutdown_send, ec);
    if (++finished_ == kDirections) close(false, false);
  }

  void set_chains(const Chains& chains) {
    for (int d = 0; d < kDirections; ++d) links_[d].set_chain(chains[static_cast<std::size_t>(d)]);
  }

  bool closed() const { return closed_; }
  void touch() { last_activity_ = SteadyClock::now(); }
  ProxyCounters& counters() { return proxy_->counters; }
  std::mt19937_64& rng() { return shard_.rng; }
  const DataPlaneOptions& options() const { return options_; }

 private:
  static asio::awaitable<void> run_reader(std::shared_ptr<Connection> self, int d) {
    co_await self->links_[d].read_loop();
  }
  static asio::awaitable<void> run_pump(std::shared_ptr<Connection> self, int d) {
    co_await self->links_[d].pump();
  }
  static asio::awaitable<void> watchdog(std::shared_ptr<Connection> self);
  asio::awaitable<bool> connect_upstream(const std::string& upstream);

  std::shared_ptr<ProxyState> proxy_;
  Shard& shard_;
  const DataPlaneOptions& options_;
  const std::uint64_t epoch_;
  beast::tcp_stream client_;
  beast::tcp_stream server_;
  asio::steady_timer idle_timer_;
  Link links_[kDirections];
  TimePoint last_activity_ = SteadyClock::now();
  bool registered_ = false;
  bool closed_ = false;
  int finished_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Connection

asio::awaitable<void> Connection::run(std::shared_ptr<Connection> self) {
  Connection& c = *self;
  std::string upstream;
  {
    std::lock_guard lock(c.proxy_->mutex);
    if (!c.proxy_->running || c.proxy_->epoch != c.epoch_) {
      c.close(false, false);  // accepted just before the proxy stopped
      co_return;
    }
    upstream = c.proxy_->upstream;
  }
  c.proxy_->connections[static_cast<std::size_t>(c.shard_.index)].insert(&c);
  c.registered_ = true;

  const bool connected = co_await c.connect_upstream(upstream);
  if (c.closed_) co_return;  // disabled while dialling
  if (!connected) {
    c.proxy_->counters.upstream_failures.fetch_add(1, std::memory_order_relaxed);
    c.close(false, false);  // the client sees the connection accepted, then closed
    co_return;
  }
  error_code ec;
  c.client_.socket().set_option(tcp::no_delay(true), ec);
  c.server_.socket().set_option(tcp::no_delay(true), ec);
  Chains chains;
  {
    // Read now, not at registration: update_connections may have run while dialling.
    std::lock_guard lock(c.proxy_->mutex);
    chains = c.proxy_->chains;
  }
  c.set_chains(chains);  // runs start (and toxicity is drawn) once the link is up
  c.touch();

  const auto ex = c.shard_.ctx.get_executor();
  for (int d = 0; d < kDirections; ++d) {
    asio::co_spawn(ex, run_reader(self, d), log_if_failed);
    asio::co_spawn(ex, run_pump(self, d), log_if_failed);
  }
  if (c.options_.idle_timeout.count() > 0) asio::co_spawn(ex, watchdog(self), log_if_failed);
}

asio::awaitable<bool> Connection::connect_upstream(const std::string& upstream) {
  const auto target = parse_host_port(upstream);
  if (!target || target->port == 0) co_return false;
  error_code ec;
  const auto address = asio::ip::make_address(target->host.empty() ? "127.0.0.1" : target->host, ec);
  if (!ec) {
    server_.expires_after(options_.connect_timeout);
    auto [cec] = co_await server_.async_connect(tcp::endpoint(address, target->port), kNoThrow);
    co_return !cec;
  }
  tcp::resolver resolver(server_.get_executor());
  auto [rec, results] =
      co_await resolver.async_resolve(target->host, std::to_string(target->port), kNoThrow);
  if (rec || closed_) co_return false;
  server_.expires_after(options_.connect_timeout);
  auto [cec, endpoint] = co_await server_.async_connect(results, kNoThrow);
  (void)endpoint;
  co_return !cec;
}

asio::awaitable<void> Connection::watchdog(std::shared_ptr<Connection> self) {
  Connection& c = *self;
  const auto idle = c.options_.idle_timeout;
  while (!c.closed_) {
    c.idle_timer_.expires_at(c.last_activity_ + idle);
    co_await c.idle_timer_.async_wait(kNoThrow);
    if (c.closed_) co_return;
    if (SteadyClock::now() >= c.last_activity_ + idle) c.close(false, false);
  }
}

// ---------------------------------------------------------------------------------------------
// Link

Link::Link(Connection& conn, Direction dir, beast::tcp_stream& source, beast::tcp_stream& dest)
    : conn_(conn),
      dir_(dir),
      source_(source),
      dest_(dest),
      pump_timer_(source.get_executor()),
      reader_timer_(source.get_executor()),
      chain_(std::make_shared<const Chain>()) {}

void Link::cancel_timers() {
  pump_timer_.cancel();
  reader_timer_.cancel();
}

void Link::wake_pump() {
  if (pump_idle_) pump_timer_.cancel();
}

void Link::set_chain(const std::shared_ptr<const Chain>& chain) {
  if (!chain || chain == chain_) return;
  chain_ = chain;
  const TimePoint now = SteadyClock::now();
  std::vector<std::shared_ptr<ToxicRun>> next;
  next.reserve(chain->size());
  for (const auto& toxic : *chain) {
    std::shared_ptr<ToxicRun> run;
    for (const auto& old : runs_) {
      if (old->toxic->id == toxic->id) run = old;
    }
    if (run && run->toxic->revision == toxic->revision) {
      next.push_back(std::move(run));
      continue;
    }
    if (!run) run = std::make_shared<ToxicRun>();
    run->toxic = toxic;
    run->active = toxic->toxicity >= 1.0 ||
                  (toxic->toxicity > 0.0 &&
                   std::uniform_real_distribution<double>(0.0, 1.0)(conn_.rng()) < toxic->toxicity);
    run->started = now;
    run->reset_at.reset();
    next.push_back(std::move(run));
  }
  runs_ = std::move(next);
  ++gen_;
  pump_timer_.cancel();
}

std::optional<TimePoint> Link::event_due() const {
  std::optional<TimePoint> due;
  auto consider = [&](TimePoint t) { due = due ? std::min(*due, t) : t; };
  for (const auto& run : runs_) {
    if (!run->active) continue;
    if (run->toxic->type == ToxicType::kTimeout && run->toxic->attributes.timeout > 0) {
      consider(run->started + std::chrono::milliseconds(run->toxic->attributes.timeout));
    } else if (run->toxic->type == ToxicType::kResetPeer && run->reset_at) {
      consider(*run->reset_at);
    }
  }
  return due;
}

void Link::fire_event(TimePoint now) {
  for (const auto& run : runs_) {
    if (run->active && run->toxic->type == ToxicType::kResetPeer && run->reset_at &&
        *run->reset_at <= now) {
      conn_.close(/*reset=*/true, /*by_toxic=*/true);
      return;
    }
  }
  conn_.close(/*reset=*/false, /*by_toxic=*/true);  // a timeout toxic ran out
}

asio::awaitable<Wake> Link::wait_until(TimePoint due, bool wake_on_data) {
  const std::uint64_t gen = gen_;
  const auto event = event_due();
  pump_timer_.expires_at(event ? std::min(due, *event) : due);
  pump_idle_ = wake_on_data;
  co_await pump_timer_.async_wait(kNoThrow);
  pump_idle_ = false;
  if (conn_.closed()) co_return Wake::kEnded;
  if (gen != gen_) co_return Wake::kInterrupted;
  const TimePoint now = SteadyClock::now();
  if (event && now >= *event) {
    fire_event(now);
    co_return Wake::kEnded;
  }
  co_return now >= due ? Wake::kDue : Wake::kWoken;
}

asio::awaitable<Step> Link::wait_for(TimePoint due) {
  while (SteadyClock::now() < due) {
    const Wake w = co_await wait_until(due);
    if (w == Wake::kEnded) co_return Step::kEnded;
    if (w == Wake::kInterrupted) co_return Step::kInterrupted;
  }
  co_return Step::kDone;
}

asio::awaitable<void> Link::read_loop() {
  const DataPlaneOptions& options = conn_.options();
  read_buf_.resize(std::max<std::size_t>(1, options.read_chunk_bytes));
  for (;;) {
    while (queued_bytes_ >= options.buffer_bytes && !conn_.closed()) {
      reader_blocked_ = true;
      reader_timer_.expires_at(TimePoint::max());
      co_await reader_timer_.async_wait(kNoThrow);
      reader_blocked_ = false;
    }
    if (conn_.closed()) co_return;
    source_.expires_never();  // idleness is the watchdog's business
    auto [ec, n] = co_await source_.async_read_some(asio::buffer(read_buf_), kNoThrow);
    if (conn_.closed()) co_return;
    if (ec) {
      source_done_ = true;
      source_failed_ = ec != asio::error::eof;
      wake_pump();
      co_return;
    }
    Chunk chunk;
    chunk.data.assign(read_buf_.begin(), read_buf_.begin() + static_cast<std::ptrdiff_t>(n));
    chunk.received = SteadyClock::now();
    queued_bytes_ += n;
    conn_.counters().received[static_cast<std::size_t>(dir_)].fetch_add(n, std::memory_order_relaxed);
    conn_.touch();
    queue_.push_back(std::move(chunk));
    wake_pump();
  }
}

asio::awaitable<void> Link::pump() {
  for (;;) {
    if (conn_.closed()) co_return;
    if (!queue_.empty()) {
      const Step s = co_await process_front();
      if (s == Step::kEnded) co_return;
      continue;
    }
    if (source_done_) {
      co_await finish();
      co_return;
    }
    const Wake w = co_await wait_until(TimePoint::max(), /*wake_on_data=*/true);
    if (w == Wake::kEnded) co_return;
  }
}

asio::awaitable<Step> Link::process_front() {
  Chunk& chunk = queue_.front();
  while (chunk.consumed < chunk.data.size()) {
    // kInterrupted: the chain changed; what is left goes through the new one.
    const Step s = co_await stage(0, chunk, chunk.consumed, chunk.data.size(), gen_);
    if (s == Step::kEnded) co_return Step::kEnded;
  }
  queued_bytes_ -= chunk.data.size();
  queue_.pop_front();
  if (reader_blocked_) reader_timer_.cancel();
  co_return Step::kDone;
}

asio::awaitable<Step> Link::deliver(Chunk& c, std::size_t begin, std::size_t end) {
  dest_.expires_after(conn_.options().write_timeout);
  auto [ec, n] = co_await asio::async_write(
      dest_, asio::buffer(c.data.data() + begin, end - begin), kNoThrow);
  if (conn_.closed()) co_return Step::kEnded;
  if (ec) {
    conn_.close(false, false);
    co_return Step::kEnded;
  }
  c.consumed = end;
  conn_.counters().sent[static_cast<std::size_t>(dir_)].fetch_add(n, std::memory_order_relaxed);
  conn_.touch();
  co_return Step::kDone;
}

asio::awaitable<Step> Link::stage(std::size_t i, Chunk& c, std::size_t begin, std::size_t end,
                                  std::uint64_t gen) {
  if (begin >= end) co_return Step::kDone;
  if (gen != gen_) co_return Step::kInterrupted;
  if (i >= runs_.size()) co_return co_await deliver(c, begin, end);
  // Copies: set_chain may replace runs_ (and the toxic) while this stage waits.
  const std::shared_ptr<ToxicRun> run = runs_[i];
  const std::shared_ptr<const Toxic> toxic = run->toxic;
  if (!run->active) co_return co_await stage(i + 1, c, begin, end, gen);
  const ToxicAttributes& a = toxic->attributes;

  switch (toxic->type) {
    case ToxicType::kLatency: {
      const TimePoint due = c.received + std::chrono::milliseconds(latency_draw_ms(a, conn_.rng()));
      {
        const Step s = co_await wait_for(due);
        if (s != Step::kDone) co_return s;
      }
      co_return co_await stage(i + 1, c, begin, end, gen);
    }
    case ToxicType::kBandwidth: {
      if (a.rate <= 0) co_return co_await stage(i + 1, c, begin, end, gen);
      const auto slice = static_cast<std::size_t>(a.rate * kBandwidthSliceMs);  // KB/s × ms = B
      for (std::size_t at = begin; at < end;) {
        const std::size_t n = std::min(slice, end - at);
        // n bytes at rate KB/s take n / (rate × 1000) s = n × 10^6 / rate ns.
        const std::chrono::nanoseconds cost(static_cast<std::int64_t>(n) * 1'000'000 / a.rate);
        const TimePoint due = SteadyClock::now() + cost + run->carry;
        {
          const Step s = co_await wait_for(due);
          if (s != Step::kDone) co_return s;
        }
        run->carry = std::max<std::chrono::nanoseconds>(-kMaxBandwidthCarry,
                                                        due - SteadyClock::now());
        {
          const Step s = co_await stage(i + 1, c, at, at + n, gen);
          if (s != Step::kDone) co_return s;
        }
        at += n;
      }
      co_return Step::kDone;
    }
    case ToxicType::kSlowClose:  // acts on the close only (stage_eof)
      co_return co_await stage(i + 1, c, begin, end, gen);
    case ToxicType::kTimeout:
      // Data is dropped; event_due() closes `timeout` after the last drop (Toxiproxy's timer
      // restarts with every chunk it drops).
      c.consumed = end;
      run->started = SteadyClock::now();
      co_return Step::kDone;
    case ToxicType::kResetPeer: {
      if (!run->reset_at) {  // the first input arms it and is dropped, as in Toxiproxy
        run->reset_at = SteadyClock::now() + std::chrono::milliseconds(a.timeout);
        c.consumed = end;
        co_return Step::kDone;
      }
      for (;;) {  // armed: nothing passes until the reset fires
        const Wake w = co_await wait_until(TimePoint::max());
        if (w == Wake::kEnded) co_return Step::kEnded;
        if (w == Wake::kInterrupted) co_return Step::kInterrupted;
      }
    }
    case ToxicType::kSlicer: {
      const auto sizes = slice_sizes(end - begin, a.average_size, a.size_variation, conn_.rng());
      std::size_t at = begin;
      for (const std::size_t n : sizes) {
        {
          const Step s = co_await stage(i + 1, c, at, at + n, gen);
          if (s != Step::kDone) co_return s;
        }
        at += n;
        if (a.delay > 0) {
          const TimePoint due = SteadyClock::now() + std::chrono::microseconds(a.delay);
          {
            const Step s = co_await wait_for(due);
            if (s != Step::kDone) co_return s;
          }
        }
      }
      co_return Step::kDone;
    }
    case ToxicType::kLimitData: {
      const std::int64_t remaining = std::max<std::int64_t>(0, a.bytes - run->transmitted);
      const std::size_t n = std::min<std::size_t>(end - begin, static_cast<std::size_t>(remaining));
      if (n > 0) {
        const Step s = co_await stage(i + 1, c, begin, begin + n, gen);
        if (c.consumed > begin) run->transmitted += static_cast<std::int64_t>(c.consumed - begin);
        if (s != Step::kDone) co_return s;
      }
      if (run->transmitted >= a.bytes) {
        conn_.close(false, /*by_toxic=*/true);
        co_return Step::kEnded;
      }
      co_return Step::kDone;
    }
  }
  co_return co_await stage(i + 1, c, begin, end, gen);
}

asio::awaitable<Step> Link::stage_eof() {
  for (std::size_t i = 0; i < runs_.size(); ++i) {
    const std::shared_ptr<ToxicRun> run = runs_[i];
    const std::shared_ptr<const Toxic> toxic = run->toxic;
    if (!run->active) continue;
    if (toxic->type == ToxicType::kSlowClose) {
      const TimePoint due =
          SteadyClock::now() + std::chrono::milliseconds(toxic->attributes.delay);
      {
        const Step s = co_await wait_for(due);
        if (s != Step::kDone) co_return s;
      }
    } else if (toxic->type == ToxicType::kResetPeer) {
      if (!run->reset_at) {
        run->reset_at = SteadyClock::now() + std::chrono::milliseconds(toxic->attributes.timeout);
      }
      for (;;) {
        const Wake w = co_await wait_until(TimePoint::max());
        if (w == Wake::kEnded) co_return Step::kEnded;
        if (w == Wake::kInterrupted) co_return Step::kInterrupted;
      }
    }
  }
  co_return Step::kDone;
}

asio::awaitable<void> Link::finish() {
  if (source_failed_) {  // the source reset or failed: end everything
    conn_.close(false, false);
    co_return;
  }
  for (;;) {
    const Step s = co_await stage_eof();
    if (s == Step::kEnded) co_return;
    if (s == Step::kDone) break;
  }
  conn_.finish_direction(dest_);
}

// ---------------------------------------------------------------------------------------------
// Entry points

void start_connection(std::shared_ptr<ProxyState> proxy, Shard& shard,
                      const DataPlaneOptions& options, tcp::socket client, std::uint64_t epoch) {
  auto connection =
      std::make_shared<Connection>(std::move(proxy), shard, options, std::move(client), epoch);
  asio::co_spawn(shard.ctx, Connection::run(std::move(connection)), log_if_failed);
}

void update_connections(ProxyState& proxy, Shard& shard, const Chains& chains) {
  for (Connection* c : proxy.connections[static_cast<std::size_t>(shard.index)]) {
    c->set_chains(chains);
  }
}

void close_connections(ProxyState& proxy, Shard& shard) {
  const auto& live = proxy.connections[static_cast<std::size_t>(shard.index)];
  const std::vector<Connection*> all(live.begin(), live.end());
  for (Connection* c : all) c->close(false, false);
}

}  // namespace lab::mocks::proxy::detail
