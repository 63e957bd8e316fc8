#include "runtime/worker/worker.hpp"

#include <pthread.h>

#include <algorithm>
#include <cstdio>
#include <exception>
#include <limits>
#include <optional>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/json/value.hpp>

#include "common/text/json_util.hpp"

namespace lab::runtime {

namespace asio = boost::asio;
namespace bj = boost::json;

namespace {

constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);

void log_exception(const std::string& worker, const std::exception_ptr& e) {
  if (!e) return;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    std::fprintf(stderr, "agentlab runtime: %s: task coroutine failed: %s\n", worker.c_str(), ex.what());
  } catch (...) {
    std::fprintf(stderr, "agentlab runtime: %s: task coroutine failed\n", worker.c_str());
  }
}

bool store_unavailable(const std::error_code& ec) {
  return ec == Errc::kUnavailable || ec == Errc::kBackendError;
}

/// Names the calling thread (at most 15 characters) for top, perf and gdb.
void name_thread(const std::string& name) { pthread_setname_np(pthread_self(), name.substr(0, 15).c_str()); }

SchedulerConfig with_owner(SchedulerConfig c, const std::string& worker_id) {
  c.worker_id = worker_id;
  return c;
}

}  // namespace

Worker::Worker(WorkerConfig config, WorkerDeps deps)
    : config_(std::move(config)),
      deps_(std::move(deps)),
      scheduler_(with_owner(config_.scheduler, config_.worker_id), deps_.clock, deps_.agents, deps_.messages,
                 deps_.locks),
      store_breaker_(deps_.breakers.get_or_create(kStoreBreaker, config_.store_breaker)),
      io_(std::make_unique<asio::io_context>(1)),
      store_pool_(config_.store_threads > 0
                      ? std::make_unique<asio::thread_pool>(static_cast<std::size_t>(config_.store_threads))
                      : nullptr),
      rng_(config_.seed) {
  llm_ = std::make_unique<LlmClient>(io_->get_executor(), config_.llm, deps_.breakers, deps_.clock,
                                     config_.seed * 31 + 1, &deps_.metrics);
  tool_ = std::make_unique<SimulatedTool>(io_->get_executor(), config_.tool, deps_.breakers, deps_.clock,
                                          config_.seed * 31 + 2, &deps_.metrics);
  runner_ = std::make_unique<AgentTurnRunner>(io_->get_executor(), config_.turn, *llm_, *tool_, deps_.bus,
                                              deps_.metrics, deps_.clock);
}

Worker::~Worker() { stop(Nanos::zero()); }

void Worker::spawn(asio::awaitable<void> work) {
  asio::co_spawn(*io_, std::move(work), [id = config_.worker_id](const std::exception_ptr& e) { log_exception(id, e); });
}

template <typename F>
asio::awaitable<std::invoke_result_t<F&>> Worker::off_thread(F call) {
  using R = std::invoke_result_t<F&>;
  if (!store_pool_) co_return call();
  // The pool runs the call and posts the result back; the coroutine waits on a timer that the
  // io-thread handler cancels (a one-shot event on the io thread).
  asio::steady_timer signal(*io_, asio::steady_timer::time_point::max());
  std::optional<R> result;
  asio::post(*store_pool_, [&] {
    R r = call();
    asio::post(*io_, [&, r = std::move(r)]() mutable {
      result.emplace(std::move(r));
      signal.cancel();
    });
  });
  while (!result) {
    auto [ec] = co_await signal.async_wait(kNoThrow);
    (void)ec;
  }
  co_return std::move(*result);
}

void Worker::start() {
  std::lock_guard lock(lifecycle_mutex_);
  if (started_) return;
  started_ = true;
  (void)scheduler_.recover();
  spawn(heartbeat_loop());
  spawn(tick_loop());
  io_thread_ = std::thread([this] {
    name_thread("w" + config_.worker_id);
    auto guard = asio::make_work_guard(*io_);
    for (;;) {
      try {
        io_->run();
        return;
      } catch (const std::exception& e) {
        std::fprintf(stderr, "agentlab runtime: %s: io thread: %s\n", config_.worker_id.c_str(), e.what());
      }
    }
  });
  leaser_thread_ = std::thread([this] {
    name_thread("l" + config_.worker_id);
    leaser_loop();
  });
}

void Worker::stop(Nanos drain) {
  std::lock_guard lock(lifecycle_mutex_);
  if (!started_ || stopped_) {
    if (!started_ && !stopped_) {
      stopped_ = true;
      runner_.reset();
      tool_.reset();
      llm_.reset();
    }
    return;
  }
  stopped_ = true;
  const auto deadline = std::chrono::steady_clock::now() + drain;
  {
    // A closed queue ends the leaser by itself once it is drained; give it until the deadline.
    // A shared queue is never drained by one worker: stop leasing now.
    std::unique_lock lk(slots_mutex_);
    if (!config_.shared_queue) slots_cv_.wait_until(lk, deadline, [&] { return leaser_done_; });
    stopping_.store(true);
  }
  slots_cv_.notify_all();
  if (leaser_thread_.joinable()) leaser_thread_.join();
  {
    std::unique_lock lk(slots_mutex_);
    slots_cv_.wait_until(lk, deadline, [&] { return in_flight_.load() == 0; });
  }
  io_->stop();
  if (io_thread_.joinable()) io_thread_.join();
  // Store calls in flight finish (their resumptions are never run); the coroutines that wait
  // for them are destroyed with the io_context.
  if (store_pool_) store_pool_->join();
  // What did not finish stays unacked (a shared queue redelivers it); the caller may end it.
  for (auto& [receipt, h] : held_) abandoned_.push_back(h.lease.task);
  {
    std::lock_guard lk(incoming_mutex_);
    for (Lease& l : incoming_) abandoned_.push_back(std::move(l.task));
    incoming_.clear();
  }
  // Pools close their sockets while the io_context exists. The io_context itself lives until
  // the destructor (commands may still post to it, harmlessly): destroying it then destroys the
  // coroutines that did not finish (their leases stay unacked).
  runner_.reset();
  tool_.reset();
  llm_.reset();
}

WorkerCounts Worker::counts() const {
  WorkerCounts c;
  c.held = static_cast<std::size_t>(std::max(0, in_flight_.load()));
  c.leased = leased_.load();
  c.acked = acked_.load();
  c.nacked = nacked_.load();
  c.lease_lost = lease_lost_.load();
  return c;
}

// ---- leasing -------------------------------------------------------------------------------

void Worker::leaser_loop() {
  struct Done {
    Worker& w;
    ~Done() {
      {
        std::lock_guard lk(w.slots_mutex_);
        w.leaser_done_ = true;
      }
      w.slots_cv_.notify_all();
    }
  } done{*this};
  while (!stopping_.load()) {
    {
      std::unique_lock lk(slots_mutex_);
      slots_cv_.wait(lk, [&] { return stopping_.load() || in_flight_.load() < config_.concurrency; });
    }
    if (stopping_.load()) break;
    auto lease = deps_.queue.lease(config_.worker_id, config_.lease_duration, config_.lease_wait);
    if (!lease.ok()) {
      if (lease.error() == Errc::kClosed) {
        // Closed and nothing ready. Tasks nacked with a delay are still due: keep draining
        // them (stop() bounds how long); done when the queue is empty.
        if (deps_.queue.stats().total_depth() == 0) break;
        std::unique_lock lk(slots_mutex_);
        slots_cv_.wait_for(lk, std::min<Nanos>(config_.lease_wait, Millis(10)), [&] { return stopping_.load(); });
        continue;
      }
      if (lease.error() != Errc::kNoTask) {
        // The queue backend is unavailable: do not spin.
        std::unique_lock lk(slots_mutex_);
        slots_cv_.wait_for(lk, config_.lease_wait, [&] { return stopping_.load(); });
      }
      continue;
    }
    in_flight_.fetch_add(1);
    leased_.fetch_add(1, std::memory_order_relaxed);
    {
      // Handed over through incoming_, so a stop that comes before the io thread takes it still
      // finds the lease (and reports its task as abandoned).
      std::lock_guard lk(incoming_mutex_);
      incoming_.push_back(std::move(*lease));
    }
    asio::post(*io_, [this] { take_incoming(); });
  }
}

void Worker::take_incoming() {
  std::vector<Lease> batch;
  {
    std::lock_guard lk(incoming_mutex_);
    batch.swap(incoming_);
  }
  for (Lease& l : batch) accept_lease(std::move(l));
}

void Worker::accept_lease(Lease lease) {
  std::string receipt = lease.receipt;
  Held h;
  h.lease = std::move(lease);
  const auto payload = json::parse(h.lease.task.payload);
  const bj::object* o = payload && payload->is_object() ? &payload->get_object() : nullptr;
  const bj::value* user = o ? o->if_contains("user") : nullptr;
  const bj::value* message = o ? o->if_contains("message") : nullptr;
  if (user == nullptr || !user->is_string() || message == nullptr || !message->is_string()) {
    const std::string task_id = h.lease.task.task_id;
    held_.emplace(receipt, std::move(h));
    (void)deps_.queue.dead_letter(receipt, "malformed task payload");
    terminal(task_id, EventKind::kError, error_data(task_id, "bad_task", "malformed task payload"), "bad_task");
    finish(receipt, /*ack=*/false);
    return;
  }
  h.user = std::string(user->get_string());
  h.message = std::string(message->get_string());
  held_.emplace(receipt, std::move(h));
  spawn(handle(std::move(receipt)));
}

void Worker::finish(const std::string& receipt, bool ack) {
  auto it = held_.find(receipt);
  if (it == held_.end()) return;
  if (ack && !it->second.lost) {
    const auto r = deps_.queue.ack(receipt);
    if (r.ok()) {
      acked_.fetch_add(1, std::memory_order_relaxed);
    } else if (r.error() == Errc::kLeaseLost) {
      lease_lost_.fetch_add(1, std::memory_order_relaxed);
    }
  }
  held_.erase(it);
  const int before = in_flight_.fetch_sub(1);
  if (before >= config_.concurrency || before == 1) {
    { std::lock_guard lk(slots_mutex_); }
    slots_cv_.notify_all();
  }
}

void Worker::nack(const std::string& receipt, Nanos delay) {
  auto it = held_.find(receipt);
  if (it != held_.end() && !it->second.lost) {
    (void)deps_.queue.nack(receipt, delay);
    nacked_.fetch_add(1, std::memory_order_relaxed);
  }
  finish(receipt, /*ack=*/false);
}

void Worker::terminal(const std::string& task_id, EventKind kind, std::string data, std::string_view reason) {
  auto r = deps_.bus.append(task_id, kind, std::move(data));
  if (r.ok()) {
    if (kind == EventKind::kDone) {
      deps_.metrics.count_completed();
    } else {
      deps_.metrics.count_failed(reason);
    }
  } else if (r.error() == Errc::kStreamFinished) {
    deps_.metrics.count_duplicate_terminal();
  } else {
    std::fprintf(stderr, "agentlab runtime: %s: terminal event for %s refused: %s\n", config_.worker_id.c_str(),
                 task_id.c_str(), r.error().message().c_str());
  }
}

// ---- the task chain ------------------------------------------------------------------------

asio::awaitable<void> Worker::handle(std::string receipt) {
  auto it = held_.find(receipt);
  if (it == held_.end()) co_return;
  const std::string agent_id = it->second.lease.task.agent_id;
  const std::string task_id = it->second.lease.task.task_id;
  auto adm = scheduler_.submit(agent_id, task_id);
  if (!adm.ok()) {
    const auto ec = adm.error();
    if (ec == Errc::kMembershipPaused) {
      terminal(task_id, EventKind::kError, error_data(task_id, "membership_paused", "membership paused"),
               "membership_paused");
    } else {
      terminal(task_id, EventKind::kError,
               error_data(task_id, "too_many_pending", "too many tasks waiting for this agent"), "too_many_pending");
    }
    finish(receipt, /*ack=*/true);
    co_return;
  }
  if (!adm->run_now) {
    waiting_[task_id].push_back(std::move(receipt));  // parked behind the agent's running turn
    co_return;
  }
  co_await run_chain(agent_id, task_id, std::move(receipt));
}

asio::awaitable<void> Worker::run_chain(std::string agent_id, std::string task_id, std::string receipt) {
  for (;;) {
    std::optional<std::string> next = co_await run_one(agent_id, task_id, receipt);
    // The next task's lease: parked earlier under its task id. A parked task whose lease was
    // lost meanwhile was abandoned already, so the scheduler does not hand it out.
    for (;;) {
      if (!next) co_return;
      auto w = waiting_.find(*next);
      if (w != waiting_.end() && !w->second.empty()) {
        receipt = std::move(w->second.front());
        w->second.pop_front();
        if (w->second.empty()) waiting_.erase(w);
        task_id = std::move(*next);
        break;
      }
      next = scheduler_.abandon(agent_id, *next);  // no lease for it here: drop it
    }
  }
}

asio::awaitable<std::optional<std::string>> Worker::run_one(const std::string& agent_id, const std::string& task_id,
                                                            const std::string& receipt) {
  auto hit = held_.find(receipt);
  if (hit == held_.end()) co_return scheduler_.abandon(agent_id, task_id);
  Held& held = hit->second;

  // Idempotency: a duplicate or redelivered task whose turn is already stored only needs its
  // terminal event (the bus refuses it if the first delivery appended one).
  auto check_committed = [&] { return deps_.messages.turn_committed(agent_id, task_id); };
  const auto committed = co_await off_thread(check_committed);
  if (committed.ok() && *committed) {
    deps_.metrics.count_redelivery("already_committed");
    TurnStats none;
    terminal(task_id, EventKind::kDone, done_data(task_id, agent_id, none, 0, deps_.degradation().level, "", true),
             "done");
    finish(receipt, /*ack=*/true);
    co_return scheduler_.abandon(agent_id, task_id);
  }
  if (held.lease.delivery_count > 1) {
    // An earlier delivery may have ended the task with an error before its worker died.
    auto slice = deps_.bus.read(task_id, std::numeric_limits<std::uint64_t>::max(), 1);
    if (slice.ok() && slice->finished) {
      deps_.metrics.count_redelivery("already_ended");
      finish(receipt, /*ack=*/true);
      co_return scheduler_.abandon(agent_id, task_id);
    }
  }

  auto begin = [&] { return scheduler_.begin_turn(agent_id, task_id); };
  auto turn = co_await off_thread(begin);
  if (!turn.ok()) {
    const auto ec = turn.error();
    if (ec == Errc::kLockHeld || ec == Errc::kBusy) {
      // Another worker runs this agent: come back later, behind it.
      deps_.metrics.count_redelivery("lock_held");
      nack(receipt, config_.lock_retry_delay * static_cast<int>(held.lease.delivery_count));
    } else if (ec == Errc::kMembershipPaused) {
      terminal(task_id, EventKind::kError, error_data(task_id, "membership_paused", "membership paused"),
               "membership_paused");
      finish(receipt, /*ack=*/true);
    } else if (ec == Errc::kNotFound) {
      terminal(task_id, EventKind::kError, error_data(task_id, "agent_not_found", "agent not found"),
               "agent_not_found");
      finish(receipt, /*ack=*/true);
    } else {
      // Store trouble (or a fence race): retry the task later, per the store's policy.
      if (store_unavailable(ec)) {
        const auto permit = store_breaker_.try_acquire();
        if (permit) store_breaker_.on_error(permit, Nanos::zero());
      }
      deps_.metrics.count_redelivery("begin_failed");
      nack(receipt, config_.store_retry.nominal_delay(static_cast<int>(held.lease.delivery_count)));
    }
    co_return scheduler_.abandon(agent_id, task_id);
  }

  held.fence = turn->fence;
  const DegradationView dv = deps_.degradation();
  TurnInput in{task_id, agent_id, held.message, turn->context.get(), dv.features, dv.level};
  TurnOutput out = co_await runner_->run(in);
  // `held` may be gone only through finish(), which nothing else calls for a running task.
  held.fence = 0;

  if (!out.ok) {
    auto end_failed = [&] { return scheduler_.end_turn(std::move(*turn), TurnEnd{{}, true}); };
    auto next = co_await off_thread(end_failed);
    terminal(task_id, EventKind::kError, error_data(task_id, out.error_code, out.error), out.error_code);
    finish(receipt, /*ack=*/true);
    co_return next;
  }

  TurnWrite write{agent_id, task_id, turn->fence, std::move(out.messages), std::move(out.tool_calls), out.stats};
  resilience::RetryState retry(config_.store_retry);
  asio::steady_timer timer(co_await asio::this_coro::executor);
  Result<CommitResult> commit = Errc::kUnavailable;
  for (;;) {
    const auto permit = store_breaker_.try_acquire();
    const TimePoint started = deps_.clock.now();
    auto commit_call = [&] { return deps_.messages.commit_turn(write); };
    commit = co_await off_thread(commit_call);
    if (commit.ok() || !store_unavailable(commit.error())) {
      if (permit) store_breaker_.on_success(permit, deps_.clock.now() - started);
      break;
    }
    if (permit) store_breaker_.on_error(permit, deps_.clock.now() - started);
    const auto decision = retry.on_failure(resilience::ErrorClass::kConnection, rng_);
    if (!decision.should_retry()) break;
    timer.expires_after(decision.delay);
    co_await timer.async_wait(kNoThrow);
  }
  if (!commit.ok()) {
    const auto ec = commit.error();
    auto end_uncommitted = [&] { return scheduler_.end_turn(std::move(*turn), TurnEnd{{}, false}); };
    auto next = co_await off_thread(end_uncommitted);
    if (ec == Errc::kStaleFence) {
      // Another worker took the agent (our lock expired): the task is its now.
      deps_.metrics.count_redelivery("stale_fence");
      finish(receipt, /*ack=*/false);
    } else {
      terminal(task_id, EventKind::kError, error_data(task_id, "store_failed", "commit failed: " + ec.message()),
               "store_failed");
      finish(receipt, /*ack=*/true);
    }
    co_return next;
  }

  deps_.metrics.count_commit(commit->applied);
  TurnEnd end;
  end.context_valid = commit->applied;
  if (commit->applied) {
    std::uint64_t seq = commit->first_seq;
    for (Message& m : write.messages) {
      m.seq = seq++;
      end.committed.push_back(std::move(m));
    }
  }
  auto end_committed = [&] { return scheduler_.end_turn(std::move(*turn), std::move(end)); };
  auto next = co_await off_thread(end_committed);
  terminal(task_id, EventKind::kDone,
           done_data(task_id, agent_id, write.stats, write.tool_calls.size(), dv.level, out.provider, !commit->applied),
           "done");
  finish(receipt, /*ack=*/true);
  co_return next;
}

// ---- housekeeping --------------------------------------------------------------------------

asio::awaitable<void> Worker::heartbeat_loop() {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  for (;;) {
    timer.expires_after(config_.heartbeat_interval);
    auto [ec] = co_await timer.async_wait(kNoThrow);
    if (ec) co_return;
    std::vector<std::string> lost;
    for (auto& [receipt, h] : held_) {
      if (h.lost) continue;
      auto r = deps_.queue.extend(receipt, config_.lease_duration);
      if (!r.ok() && (r.error() == Errc::kLeaseLost || r.error() == Errc::kNotFound)) {
        h.lost = true;
        lease_lost_.fetch_add(1, std::memory_order_relaxed);
        lost.push_back(receipt);
      }
      if (h.fence != 0) {
        Turn t;
        t.agent_id = h.lease.task.agent_id;
        t.task_id = h.lease.task.task_id;
        t.fence = h.fence;
        (void)scheduler_.renew(t);  // kLockLost: the commit's fence check settles it
      }
    }
    // A parked task whose lease went elsewhere leaves this worker now; a running one finishes
    // (its commit is fenced and idempotent).
    for (const std::string& receipt : lost) {
      auto it = held_.find(receipt);
      if (it == held_.end() || it->second.fence != 0) continue;
      const std::string task_id = it->second.lease.task.task_id;
      const std::string agent_id = it->second.lease.task.agent_id;
      auto w = waiting_.find(task_id);
      if (w == waiting_.end()) continue;
      auto pos = std::find(w->second.begin(), w->second.end(), receipt);
      if (pos == w->second.end()) continue;
      w->second.erase(pos);
      if (w->second.empty()) waiting_.erase(w);
      finish(receipt, /*ack=*/false);
      if (auto next = scheduler_.abandon(agent_id, task_id)) {
        auto nw = waiting_.find(*next);
        if (nw != waiting_.end() && !nw->second.empty()) {
          std::string r = std::move(nw->second.front());
          nw->second.pop_front();
          if (nw->second.empty()) waiting_.erase(nw);
          spawn(run_chain(agent_id, *next, std::move(r)));
        }
      }
    }
  }
}

asio::awaitable<void> Worker::tick_loop() {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  for (;;) {
    timer.expires_after(config_.tick_interval);
    auto [ec] = co_await timer.async_wait(kNoThrow);
    if (ec) co_return;
    scheduler_.tick();
  }
}

// ---- commands ------------------------------------------------------------------------------

HibernateOutcome Worker::hibernate(std::string_view agent_id) { return scheduler_.hibernate(agent_id); }

void Worker::end_parked(const std::vector<std::string>& task_ids, std::string_view code, std::string_view message) {
  for (const std::string& task_id : task_ids) {
    auto w = waiting_.find(task_id);
    if (w == waiting_.end() || w->second.empty()) continue;
    std::string receipt = std::move(w->second.front());
    w->second.pop_front();
    if (w->second.empty()) waiting_.erase(w);
    terminal(task_id, EventKind::kError, error_data(task_id, code, message), code);
    finish(receipt, /*ack=*/true);
  }
}

Result<std::size_t> Worker::pause_user(std::string_view user_id) {
  auto rejected = scheduler_.pause_user(user_id);
  if (!rejected.ok()) return rejected.error();
  const std::size_t n = rejected->size();
  if (n > 0) {
    asio::post(*io_, [this, ids = std::move(*rejected)] {
      end_parked(ids, "membership_paused", "membership paused while the task waited");
    });
  }
  return n;
}

Result<std::size_t> Worker::renew_user(std::string_view user_id) { return scheduler_.renew_user(user_id); }

namespace {
std::future<bool> ready(bool value) {
  std::promise<bool> p;
  p.set_value(value);
  return p.get_future();
}
}  // namespace

std::future<bool> Worker::probe_llm(std::size_t index) {
  std::lock_guard lock(lifecycle_mutex_);
  if (!started_ || stopped_ || !llm_) return ready(false);
  return asio::co_spawn(*io_, llm_->probe(index), asio::use_future);
}

std::future<bool> Worker::probe_tool() {
  std::lock_guard lock(lifecycle_mutex_);
  if (!started_ || stopped_ || !tool_) return ready(false);
  return asio::co_spawn(*io_, tool_->probe(), asio::use_future);
}

}  // namespace lab::runtime
