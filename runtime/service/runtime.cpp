#include "runtime/service/runtime.hpp"

#include <pthread.h>

#include <cmath>
#include <cstdio>
#include <future>
#include <limits>
#include <stdexcept>

#include <boost/json/array.hpp>

#include "common/jwt/jwt.hpp"
#include "runtime/events/redis/redis_event_bus.hpp"
#include "runtime/locks/redis/redis_lock_service.hpp"
#include "runtime/locks/redis/redis_rate_limiter.hpp"
#include "runtime/queue/redis/redis_queue.hpp"
#include "runtime/stores/postgres/pg_store.hpp"
#include "runtime/worker/agent_turn.hpp"

namespace lab::runtime {

namespace bj = boost::json;
using resilience::CircuitState;

namespace {

constexpr unsigned kBackupBit = 1u << 0;
constexpr unsigned kHistoryBit = 1u << 1;
constexpr unsigned kToolsBit = 1u << 2;
constexpr unsigned kAcceptBit = 1u << 3;

unsigned to_bits(const resilience::DegradationFeatures& f) {
  return (f.use_backup_model ? kBackupBit : 0u) | (f.history_retrieval_enabled ? kHistoryBit : 0u) |
         (f.tools_enabled ? kToolsBit : 0u) | (f.accept_new_work ? kAcceptBit : 0u);
}

resilience::DegradationFeatures from_bits(unsigned b) {
  resilience::DegradationFeatures f;
  f.use_backup_model = (b & kBackupBit) != 0;
  f.history_retrieval_enabled = (b & kHistoryBit) != 0;
  f.tools_enabled = (b & kToolsBit) != 0;
  f.accept_new_work = (b & kAcceptBit) != 0;
  return f;
}

int state_value(CircuitState s) {
  switch (s) {
    case CircuitState::kClosed: return 0;
    case CircuitState::kOpen: return 1;
    case CircuitState::kHalfOpen: return 2;
    case CircuitState::kDisabled: return 3;
    case CircuitState::kForcedOpen: return 4;
  }
  return 0;
}

MemoryStoreLimits store_limits(const RuntimeConfig& c) {
  MemoryStoreLimits l;
  l.max_agents = c.max_agents;
  return l;
}

MemoryQueueConfig queue_config(const RuntimeConfig& c) {
  MemoryQueueConfig q;
  q.max_depth = c.queue_bound;
  q.max_deliveries = c.max_deliveries;
  return q;
}

MemoryEventBusConfig bus_config(const RuntimeConfig& c) {
  MemoryEventBusConfig b;
  b.max_streams = c.event_streams;
  b.max_total_bytes = std::size_t{512} << 20;
  b.retention = c.event_retention;
  b.idle_timeout = std::max<Nanos>(Seconds(600), c.stream_max_duration * 2);
  return b;
}

GatewayConfig gateway_config(const RuntimeConfig& c) {
  GatewayConfig g;
  g.jwt_secret = c.jwt_secret;
  g.webhook_secret = c.webhook_secret;
  g.max_message_bytes = c.max_message_bytes;
  g.user_rate_per_s = c.user_rate_per_s;
  g.user_burst = c.user_burst;
  g.queue_full_retry_after = c.queue_full_retry_after;
  g.degraded_retry_after = c.degraded_retry_after;
  g.stream_keepalive = c.stream_keepalive;
  g.stream_max_duration = c.stream_max_duration;
  return g;
}

WorkerConfig worker_config(const RuntimeConfig& c, std::size_t index) {
  WorkerConfig w;
  w.worker_id = (c.instance.empty() ? std::string("worker") : c.instance) + "-" + std::to_string(index + 1);
  w.concurrency = c.worker_concurrency;
  w.lease_duration = c.lease_duration;
  w.heartbeat_interval = c.heartbeat_interval;
  const auto workers = static_cast<std::size_t>(std::max(1, c.workers));
  w.scheduler.max_active_agents = std::max<std::size_t>(1, (c.max_active_agents + workers - 1) / workers);
  w.scheduler.idle_timeout = c.idle_timeout;
  // The heartbeat renews the agent's lock with its lease: a dead worker's agents free up when
  // its tasks are redelivered, not a minute later.
  w.scheduler.lock_ttl = c.lease_duration;
  w.scheduler.history_limit = c.history_limit;
  w.turn.max_tool_steps = c.max_tool_steps;
  w.turn.max_output_tokens = c.max_output_tokens;
  w.turn.history_messages = c.history_limit;
  for (std::size_t i = 0; i < c.llm_urls.size(); ++i) {
    w.llm.providers.push_back({c.llm_urls[i], i == 0 ? c.llm_model : c.llm_backup_model});
  }
  w.llm.api_key = c.llm_api_key;
  w.llm.headers = c.llm_headers;
  w.llm.connect_timeout = std::chrono::duration_cast<Millis>(c.llm_connect_timeout);
  w.llm.idle_timeout = std::chrono::duration_cast<Millis>(c.llm_timeout);
  w.llm.deadline = c.llm_deadline;
  w.llm.retry = c.llm_retry;
  w.llm.breaker = c.llm_breaker;
  w.llm.max_idle_connections = static_cast<std::size_t>(c.worker_concurrency) + 16;
  w.tool.latency = c.tool_latency;
  w.tool.error_rate = c.tool_error_rate;
  w.tool.retry = c.tool_retry;
  w.tool.breaker = c.tool_breaker;
  w.store_retry = c.store_retry;
  w.store_threads = c.store_threads >= 0 ? c.store_threads : (c.postgres_store() ? 16 : 0);
  w.shared_queue = c.durable_queue();
  w.store_breaker = c.store_breaker;
  w.seed = c.seed * 1000 + index + 1;
  return w;
}

}  // namespace

// ---- the gateway's view of the runtime ------------------------------------------------------

class Runtime::Control final : public ControlPlane {
 public:
  explicit Control(Runtime& rt) : rt_(rt) {}

  bool accept_new_work() override { return (rt_.features_bits_.load(std::memory_order_relaxed) & kAcceptBit) != 0; }
  bool draining() override { return rt_.draining_.load(); }

  std::string hibernate(std::string_view agent_id) override {
    bool deferred = false;
    for (auto& w : rt_.workers_) {
      switch (w->hibernate(agent_id)) {
        case HibernateOutcome::kHibernated: return "hibernated";
        case HibernateOutcome::kDeferred: deferred = true; break;
        case HibernateOutcome::kNotResident: break;
      }
    }
    return deferred ? "deferred" : "not_resident";
  }

  Result<std::size_t> set_membership(std::string_view user_id, bool paused) override {
    auto changed = rt_.agents_->set_membership_paused(user_id, paused);
    if (!changed.ok()) return changed.error();
    for (auto& w : rt_.workers_) {
      auto r = paused ? w->pause_user(user_id) : w->renew_user(user_id);
      if (!r.ok()) return r.error();
    }
    return *changed;
  }

  bj::object system_snapshot() override { return rt_.system_snapshot(); }
  std::string metrics_text() override { return rt_.metrics_text(); }

 private:
  Runtime& rt_;
};

// ---- backends -------------------------------------------------------------------------------

template <typename Store>
void Runtime::adopt_store(std::unique_ptr<Store> store) {
  agents_ = store.get();
  messages_ = store.get();
  turn_stats_ = store.get();
  store_owner_ = std::shared_ptr<Store>(std::move(store));
}

void Runtime::make_backends() {
  if (config_.postgres_store()) {
    PgStoreConfig pc;
    pc.db.url = config_.store;
    pc.db.schema = config_.pg_schema;
    pc.db.application_name = "agentlab-" + std::string(to_string(config_.role));
    pc.db.pool_size = config_.backend_connections;
    auto opened = PgStore::open(pc, clock_);
    if (!opened.ok()) {
      throw std::runtime_error("store: cannot open " + config_.store + ": " + opened.error().message());
    }
    adopt_store(std::move(*opened));
  } else {
    adopt_store(std::make_unique<MemoryStore>(store_limits(config_)));
  }
  if (config_.redis_queue()) {
    // The queue, the event bus and the locks share one pool; every key under the namespace.
    auto options = redis::parse_redis_url(config_.queue);
    if (!options.ok()) throw std::runtime_error("queue: " + config_.queue + ": " + options.error().message());
    options->client_name = config_.instance.empty() ? std::string(to_string(config_.role)) : config_.instance;
    redis::RedisPoolOptions po;
    po.size = config_.backend_connections;
    redis_pool_ = std::make_unique<redis::RedisPool>(*options, po, clock_);
    RedisQueueConfig qc;
    qc.name = config_.namespace_;
    qc.max_depth = config_.queue_bound;
    qc.max_deliveries = config_.max_deliveries;
    queue_ = std::make_unique<RedisTaskQueue>(qc, *redis_pool_, clock_);
    RedisEventBusConfig bc;
    bc.key_prefix = config_.namespace_ + ":";
    bc.retention = config_.event_retention;
    bc.idle_timeout = std::max<Nanos>(Seconds(600), config_.stream_max_duration * 2);
    bc.max_subscriptions = std::max<std::size_t>(10'000, config_.max_connections / 4);
    bus_ = std::make_unique<RedisEventBus>(bc, *redis_pool_);
    RedisLockConfig lc;
    lc.key_prefix = config_.namespace_ + ":";
    locks_ = std::make_unique<RedisLockService>(lc, *redis_pool_, clock_);
    return;
  }
  queue_ = std::make_unique<MemoryTaskQueue>(queue_config(config_), clock_);
  auto bus = std::make_unique<MemoryEventBus>(bus_config(config_), clock_);
  memory_bus_ = bus.get();
  bus_ = std::move(bus);
  locks_ = std::make_unique<MemoryLockService>(clock_);
}

std::function<RateDecision(std::string_view)> Runtime::shared_rate() {
  if (!redis_pool_ || config_.user_rate_per_s <= 0) return {};
  // The token bucket (rate, burst) as a fixed window every gateway counts in: `burst` chats per
  // burst/rate seconds — the same long-run rate and the same largest burst.
  RedisRateLimitConfig rc;
  rc.key_prefix = config_.namespace_ + ":";
  rc.limit = static_cast<std::uint64_t>(std::max(1.0, std::floor(config_.user_burst)));
  rc.window = std::max(Millis(1), Millis(static_cast<std::int64_t>(1000.0 * static_cast<double>(rc.limit) /
                                                                   config_.user_rate_per_s)));
  auto limiter = std::make_shared<RedisRateLimiter>(rc, *redis_pool_);
  shared_rate_ = limiter;
  return [limiter](std::string_view user_id) {
    RateDecision d;
    const auto r = limiter->hit(user_id);
    if (!r.ok()) return d;  // Redis unreachable: fail open (the queue's bound still protects)
    d.allowed = r->allowed;
    d.retry_after = r->retry_after;
    return d;
  };
}

// ---- life cycle -----------------------------------------------------------------------------

Runtime::Runtime(RuntimeConfig config, Clock& clock)
    : config_(std::move(config)),
      clock_(clock),
      breakers_(clock_),
      degradation_(clock_, config_.degradation) {
  make_backends();
  features_bits_.store(to_bits(resilience::DegradationFeatures{}));
  breakers_.add_listener([this](const resilience::CircuitTransition& t) { on_breaker_transition(t); });
  degradation_.add_listener([this](const resilience::DegradationChange& c) { on_degradation_change(c); });
  // Every dependency's breaker exists from the start, so /api/system shows them all.
  (void)breakers_.get_or_create(kMemoryBreaker, config_.memory_breaker);
  (void)breakers_.get_or_create(kStoreBreaker, config_.store_breaker);
  (void)breakers_.get_or_create(kToolsBreaker, config_.tool_breaker);
  control_ = std::make_unique<Control>(*this);
  gateway_ = std::make_unique<Gateway>(gateway_config(config_),
                                       GatewayDeps{*agents_, *queue_, *bus_, *control_, metrics_, clock_, shared_rate()});
  if (config_.role != ServiceRole::kGateway) {
    for (int i = 0; i < config_.workers; ++i) {
      workers_.push_back(std::make_unique<Worker>(
          worker_config(config_, static_cast<std::size_t>(i)),
          WorkerDeps{clock_, *queue_, *bus_, *agents_, *messages_, *locks_, breakers_,
                     [this] { return degradation_view(); }, metrics_}));
    }
  }
}

Runtime::~Runtime() { stop(Nanos::zero()); }

void Runtime::start() {
  std::lock_guard lock(lifecycle_mutex_);
  if (started_) return;
  for (auto& w : workers_) w->start();
  http::ServerOptions options;
  options.address = config_.host;
  options.port = config_.port;
  options.threads = config_.http_threads;
  options.body_limit = config_.max_body_bytes;
  options.idle_timeout = std::chrono::duration_cast<Millis>(config_.idle_connection_timeout);
  options.max_connections = config_.max_connections;
  options.server_name = "agentlab-runtime";
  http::Router router;
  gateway_->add_routes(router, config_.role == ServiceRole::kWorker ? RouteSet::kOperations : RouteSet::kAll);
  server_ = std::make_unique<http::Server>(options, router.handler());
  try {
    server_->start();
  } catch (...) {
    for (auto& w : workers_) w->stop(Nanos::zero());
    server_.reset();
    throw;
  }
  refresh_degradation();
  maintenance_thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "rt-maintain");
    maintenance_loop();
  });
  started_ = true;
}

void Runtime::stop(Nanos drain) {
  std::unique_lock lock(lifecycle_mutex_);
  if (!started_ || stopped_) return;
  stopped_ = true;
  const auto deadline = std::chrono::steady_clock::now() + drain;
  draining_.store(true);
  queue_->close();  // new chats get 503; workers finish what is queued, then their leasers end
  stop_maintenance_ = true;
  lifecycle_cv_.notify_all();
  lock.unlock();
  if (maintenance_thread_.joinable()) maintenance_thread_.join();
  for (auto& w : workers_) {
    const auto left = std::max<Nanos>(Nanos::zero(), deadline - std::chrono::steady_clock::now());
    w->stop(left);
  }
  // Every accepted task ends with a terminal event: dead letters, and (the in-memory queue dies
  // with the process) tasks the drain did not reach, still queued or cut off in a worker. A
  // shared queue keeps those: unacked, they are delivered to the workers still running (or to
  // this one's successor).
  if (!config_.durable_queue()) {
    std::lock_guard ml(maintain_mutex_);
    end_dead_letters();
    auto end_task = [this](const std::string& task_id) {
      auto r = bus_->append(task_id, EventKind::kError,
                           error_data(task_id, "shutdown", "the runtime stopped before the task ended"));
      if (r.ok()) metrics_.count_failed("shutdown");
    };
    for (auto& w : workers_) {
      for (const Task& t : w->abandoned()) end_task(t.task_id);
    }
    for (;;) {
      auto lease = queue_->lease("shutdown", Seconds(60), Nanos::zero());
      if (!lease.ok()) break;
      end_task(lease->task.task_id);
      (void)queue_->ack(lease->receipt);
    }
  }
  // Streams that received their terminal events have finished; give the rest what is left.
  const auto left = std::max<Nanos>(Millis(100), deadline - std::chrono::steady_clock::now());
  if (server_) server_->stop(std::chrono::duration_cast<Millis>(std::min<Nanos>(left, Seconds(2))));
}

std::string Runtime::url() const { return server_ ? server_->url() : std::string(); }

std::string Runtime::token_for(std::string_view user_id, Seconds ttl) const {
  jwt::Claims claims;
  claims.sub = std::string(user_id);
  const auto now = std::chrono::duration_cast<Seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  claims.iat = now;
  claims.exp = now + ttl.count();
  return jwt::sign_hs256(claims, config_.jwt_secret);
}

// ---- resilience state -----------------------------------------------------------------------

DegradationView Runtime::degradation_view() const {
  DegradationView v;
  v.level = level_.load(std::memory_order_relaxed);
  v.features = from_bits(features_bits_.load(std::memory_order_relaxed));
  if (!config_.tools) v.features.tools_enabled = false;
  return v;
}

void Runtime::refresh_degradation() {
  const auto states = breakers_.states();
  const auto store = states.find(kStoreBreaker);
  const bool store_ok = store == states.end() || resilience::breaker_available(store->second);
  degradation_.update(resilience::health_from_breakers(states, store_ok));
  const auto snap = degradation_.snapshot();
  level_.store(snap.level, std::memory_order_relaxed);
  features_bits_.store(to_bits(snap.features), std::memory_order_relaxed);
}

void Runtime::on_breaker_transition(const resilience::CircuitTransition& t) {
  metrics_.count_breaker_transition(t.breaker, resilience::to_string(t.from), resilience::to_string(t.to));
  metrics_.set_breaker_state(t.breaker, state_value(t.to));
  if (config_.log) {
    std::fprintf(stderr, "agentlab runtime: breaker %s %.*s -> %.*s (%.*s)\n", t.breaker.c_str(),
                 static_cast<int>(resilience::to_string(t.from).size()), resilience::to_string(t.from).data(),
                 static_cast<int>(resilience::to_string(t.to).size()), resilience::to_string(t.to).data(),
                 static_cast<int>(resilience::to_string(t.reason).size()), resilience::to_string(t.reason).data());
  }
  refresh_degradation();
}

void Runtime::on_degradation_change(const resilience::DegradationChange& c) {
  level_.store(c.to, std::memory_order_relaxed);
  features_bits_.store(to_bits(c.features), std::memory_order_relaxed);
  metrics_.set_degradation_level(c.to);
  metrics_.count_degradation_change();
  if (config_.log) {
    const auto name = resilience::level_name(c.to);
    std::fprintf(stderr, "agentlab runtime: degradation %d -> %d %.*s (%s)\n", c.from, c.to,
                 static_cast<int>(name.size()), name.data(), c.reason.c_str());
  }
}

// ---- maintenance ----------------------------------------------------------------------------

void Runtime::end_dead_letters() {
  // With a shared queue every process sees every dead letter: the gateways end them (a second
  // gateway's append is refused as a duplicate terminal), the worker processes leave them.
  if (config_.durable_queue() && config_.role == ServiceRole::kWorker) return;
  const QueueStats qs = queue_->stats();
  if (qs.dead_lettered <= dead_letters_seen_) return;
  const auto fresh = static_cast<std::size_t>(std::min<std::uint64_t>(qs.dead_lettered - dead_letters_seen_, 100'000));
  dead_letters_seen_ = qs.dead_lettered;
  for (const DeadLetter& d : queue_->dead_letters(fresh)) {
    // A stream that is gone (expired long ago) or already ended needs nothing; appending to it
    // would start a new stream for a task that ended before this process started.
    const auto state = bus_->read(d.task.task_id, std::numeric_limits<std::uint64_t>::max(), 1);
    if (!state.ok() || state->finished) continue;
    auto r = bus_->append(d.task.task_id, EventKind::kError,
                         error_data(d.task.task_id, "dead_letter",
                                    "the task failed " + std::to_string(d.delivery_count) + " deliveries: " + d.reason));
    if (r.ok()) {
      metrics_.count_failed("dead_letter");
    } else if (r.error() == Errc::kStreamFinished) {
      metrics_.count_duplicate_terminal();
    }
  }
}

void Runtime::maintain() {
  std::lock_guard lock(maintain_mutex_);
  auto states = breakers_.states();  // applies due OPEN → HALF_OPEN transitions
  for (const auto& [name, state] : states) metrics_.set_breaker_state(name, state_value(state));

  // Probe half-open dependencies that no turn may be calling.
  std::vector<std::future<bool>> probes;
  if (!workers_.empty()) {
    Worker& w = *workers_.front();
    for (std::size_t i = 0; i < config_.llm_urls.size(); ++i) {
      const auto it = states.find(llm_breaker_name(i));
      if (it != states.end() && it->second == CircuitState::kHalfOpen) probes.push_back(w.probe_llm(i));
    }
    if (const auto it = states.find(kToolsBreaker); it != states.end() && it->second == CircuitState::kHalfOpen) {
      probes.push_back(w.probe_tool());
    }
  }
  for (std::string_view name : {kStoreBreaker, kMemoryBreaker}) {
    const auto it = states.find(name);
    if (it == states.end() || it->second != CircuitState::kHalfOpen) continue;
    resilience::CircuitBreaker* b = breakers_.find(name);
    const auto permit = b->try_acquire();
    if (!permit) continue;
    const TimePoint started = clock_.now();
    const auto r = agents_->count_by_state();
    if (r.ok()) {
      b->on_success(permit, clock_.now() - started);
    } else {
      b->on_error(permit, clock_.now() - started);
    }
  }
  const auto probe_wait = config_.llm_timeout + Seconds(1);
  for (auto& f : probes) (void)f.wait_for(probe_wait);

  refresh_degradation();
  metrics_.set_degradation_level(level_.load());
  end_dead_letters();
  if (memory_bus_ != nullptr) memory_bus_->purge_expired();
  if (++rounds_ % 30 == 0) gateway_->prune();
}

void Runtime::maintenance_loop() {
  std::unique_lock lock(lifecycle_mutex_);
  while (!stop_maintenance_) {
    lifecycle_cv_.wait_for(lock, config_.maintenance_interval, [&] { return stop_maintenance_; });
    if (stop_maintenance_) break;
    lock.unlock();
    maintain();
    lock.lock();
  }
}

// ---- introspection --------------------------------------------------------------------------

RuntimeCounters Runtime::counters() {
  RuntimeCounters c;
  c.ledger = metrics_.ledger();
  c.rejected_queue_full = metrics_.rejections(Rejection::kQueueFull);
  c.rejected_rate_limited = metrics_.rejections(Rejection::kRateLimited);
  c.rejected_degraded = metrics_.rejections(Rejection::kDegraded);
  const QueueStats qs = queue_->stats();
  c.redelivered = qs.redelivered;
  c.dead_lettered = qs.dead_lettered;
  c.queue_depth = qs.total_depth();
  c.in_flight = qs.in_flight;
  return c;
}

bj::object Runtime::system_snapshot() {
  bj::object o;
  const auto snap = degradation_.snapshot();
  o["degradation_level"] = snap.level;
  {
    bj::object d;
    d["name"] = resilience::level_name(snap.level);
    d["target_level"] = snap.target_level;
    d["reason"] = snap.reason;
    bj::object f;
    f["use_backup_model"] = snap.features.use_backup_model;
    f["history_retrieval"] = snap.features.history_retrieval_enabled;
    f["tools"] = snap.features.tools_enabled && config_.tools;
    f["accept_new_work"] = snap.features.accept_new_work;
    d["features"] = std::move(f);
    o["degradation"] = std::move(d);
  }
  bj::object breakers;
  for (const auto& [name, state] : breakers_.states()) breakers[name] = resilience::to_string(state);
  o["breakers"] = std::move(breakers);
  const QueueStats qs = queue_->stats();
  o["queue_depth"] = qs.total_depth();
  o["queue_in_flight"] = qs.in_flight;
  o["dead_letters"] = qs.dead_lettered;
  o["redelivered"] = qs.redelivered;
  std::size_t active = 0;
  std::size_t busy = 0;
  std::size_t held = 0;
  for (auto& w : workers_) {
    const auto sc = w->scheduler().counts();
    active += sc.resident;
    busy += sc.busy;
    held += w->counts().held;
  }
  o["active_agents"] = active;
  o["busy_agents"] = busy;
  StateCounts sc;
  if (auto counts = agents_->count_by_state(); counts.ok()) sc = *counts;
  o["hibernated_agents"] = sc[AgentState::kHibernated];
  o["agents"] = sc.total();
  bj::object by_state;
  for (AgentState s : kAllAgentStates) by_state[to_string(s)] = sc[s];
  o["agents_by_state"] = std::move(by_state);
  o["workers"] = workers_.size();
  o["tasks_held"] = held;
  const LedgerCounters l = metrics_.ledger();
  bj::object tasks;
  tasks["accepted"] = l.accepted;
  tasks["completed"] = l.completed;
  tasks["failed"] = l.failed;
  tasks["duplicate_terminals"] = l.duplicate_terminals;
  tasks["commits_applied"] = l.commits_applied;
  tasks["commits_duplicate"] = l.commits_duplicate;
  o["tasks"] = std::move(tasks);
  bj::object rejections;
  for (std::size_t i = 0; i < kRejectionCount; ++i) {
    const auto r = static_cast<Rejection>(i);
    rejections[to_string(r)] = metrics_.rejections(r);
  }
  o["rejections"] = std::move(rejections);
  o["draining"] = draining_.load();
  return o;
}

std::string Runtime::metrics_text() {
  for (const auto& [name, state] : breakers_.states()) metrics_.set_breaker_state(name, state_value(state));
  metrics_.set_degradation_level(degradation_.level());
  const QueueStats qs = queue_->stats();
  metrics_.set_queue(qs.total_depth(), qs.in_flight);
  std::size_t active = 0;
  for (auto& w : workers_) active += w->scheduler().counts().resident;
  StateCounts sc;
  if (auto counts = agents_->count_by_state(); counts.ok()) sc = *counts;
  metrics_.set_agents(active, sc[AgentState::kHibernated]);
  if (server_) metrics_.set_body_too_large(server_->stats().body_too_large.load());
  return metrics_.render();
}

}  // namespace lab::runtime
