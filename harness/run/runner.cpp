#include "harness/run/runner.hpp"

#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <deque>
#include <map>
#include <unordered_map>
#include <future>
#include <memory>
#include <sstream>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/serialize.hpp>

#include "common/jwt/jwt.hpp"
#include "common/text/json_util.hpp"
#include "harness/run/worker.hpp"

extern char** environ;

namespace lab::harness {

namespace asio = boost::asio;
namespace bj = boost::json;
using namespace std::chrono_literals;

namespace {

constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

std::int64_t us(Nanos d) { return std::max<std::int64_t>(0, std::chrono::duration_cast<Micros>(d).count()); }
double seconds(Nanos d) { return static_cast<double>(d.count()) / 1e9; }

// Runs f on the worker's thread and waits for its result (control thread only; short work).
template <class F>
auto on_worker(Worker& w, F f) -> decltype(f()) {
  std::promise<decltype(f())> p;
  auto fut = p.get_future();
  asio::post(w.io(), [&] { p.set_value(f()); });
  return fut.get();
}

std::size_t pick_flow(const RunShared& sh, const Phase& ph, std::uint64_t r) {
  if (ph.flow) return *ph.flow;
  const auto& cum = sh.flow_weights_cumulative;
  if (cum.size() <= 1 || cum.back() <= 0) return 0;
  const double x = static_cast<double>(r >> 11) / static_cast<double>(1ULL << 53) * cum.back();
  return static_cast<std::size_t>(std::upper_bound(cum.begin(), cum.end(), x) - cum.begin());
}

struct Pending {
  std::int64_t iter;
  TimePoint intended;
};

// Open model on one worker: start this worker's share of the arrivals at their intended times;
// when max_in_flight is reached, later arrivals wait in order and are measured from their
// intended start (wrk2). Arrivals still waiting when the phase ends are dropped and counted.
asio::awaitable<void> open_slot(Worker& w, const Phase& ph, std::size_t phase_idx, Pending first,
                                TimePoint started, std::shared_ptr<std::deque<Pending>> waiting,
                                std::shared_ptr<std::int64_t> active, TimePoint phase_end) {
  RunShared& sh = w.shared();
  Pending p = first;
  for (;;) {
    IterationInfo info;
    info.iter = p.iter;
    info.slot = static_cast<std::size_t>(p.iter) % sh.slots.size();
    info.vu = static_cast<std::int64_t>(info.slot);
    info.phase = phase_idx;
    info.flow = pick_flow(sh, ph, FastRng(sh.seed + static_cast<std::uint64_t>(p.iter))());
    info.intended = p.intended;
    info.started = started;
    co_await w.run_iteration(info);
    if (waiting->empty() || sh.stopping.load(std::memory_order_relaxed) || sh.clock->now() >= phase_end) break;
    p = waiting->front();
    waiting->pop_front();
    started = sh.clock->now();
    w.recorder().record(sh.queue_wait_metric, phase_idx, us(started - p.intended), us(started - p.intended));
  }
  --*active;
}

asio::awaitable<void> drive_open(Worker& w, const Phase& ph, std::size_t phase_idx, TimePoint phase_start,
                                 std::int64_t offset, std::int64_t stride, std::int64_t max_local) {
  RunShared& sh = w.shared();
  auto ex = co_await asio::this_coro::executor;
  asio::steady_timer timer(ex);
  auto waiting = std::make_shared<std::deque<Pending>>();
  auto active = std::make_shared<std::int64_t>(0);
  const TimePoint phase_end = phase_start + ph.executor->duration();
  for (std::int64_t i = offset;; i += stride) {
    const auto off = ph.executor->arrival(i);
    if (!off) break;
    const TimePoint intended = phase_start + *off;
    if (intended > sh.clock->now()) {
      timer.expires_at(intended);
      co_await timer.async_wait(kTuple);
    }
    if (sh.stopping.load(std::memory_order_relaxed)) break;
    if (*active < max_local) {
      ++*active;
      const TimePoint now = sh.clock->now();
      w.recorder().record(sh.lateness_metric, phase_idx, us(now - intended), us(now - intended));
      asio::co_spawn(ex, open_slot(w, ph, phase_idx, Pending{i, intended}, now, waiting, active, phase_end),
                     asio::detached);
    } else {
      waiting->push_back(Pending{i, intended});
    }
  }
  if (phase_end > sh.clock->now() && !sh.stopping.load()) {
    timer.expires_at(phase_end);
    co_await timer.async_wait(kTuple);
  }
  w.recorder().counters(phase_idx).dropped_iterations += static_cast<std::int64_t>(waiting->size());
  waiting->clear();
}

// Closed model on one worker: local VU j is global VU shard + shards * (worker + workers * j).
asio::awaitable<void> vu_loop(Worker& w, const Phase& ph, std::size_t phase_idx, std::int64_t j,
                              std::int64_t global_vu, std::shared_ptr<std::int64_t> target,
                              std::shared_ptr<std::vector<char>> running, TimePoint phase_end) {
  RunShared& sh = w.shared();
  const Scenario& sc = *sh.scenario;
  auto ex = co_await asio::this_coro::executor;
  asio::steady_timer timer(ex);
  FastRng rng(sh.seed ^ (0x51ed27ULL * static_cast<std::uint64_t>(global_vu + 1)));
  for (std::int64_t iter = 0; j < *target && !sh.stopping.load(std::memory_order_relaxed) &&
                              sh.clock->now() < phase_end;
       ++iter) {
    IterationInfo info;
    info.iter = iter;
    info.vu = global_vu;
    info.slot = static_cast<std::size_t>(global_vu) % sh.slots.size();
    info.phase = phase_idx;
    info.flow = pick_flow(sh, ph, rng());
    info.intended = info.started = sh.clock->now();
    co_await w.run_iteration(info);
    const auto& tt = sc.flows[info.flow].think_time;
    if (tt.hi.count() > 0) {
      const Nanos think(rng.between(tt.lo.count(), tt.hi.count()));
      timer.expires_at(std::min(sh.clock->now() + think, phase_end));
      co_await timer.async_wait(kTuple);
    }
  }
  (*running)[static_cast<std::size_t>(j)] = 0;
}

asio::awaitable<void> drive_closed(Worker& w, const Phase& ph, std::size_t phase_idx, TimePoint phase_start,
                                   int shard_index, int shard_count, int workers) {
  RunShared& sh = w.shared();
  auto ex = co_await asio::this_coro::executor;
  asio::steady_timer timer(ex);
  const TimePoint phase_end = phase_start + ph.executor->duration();
  const std::int64_t first = shard_index + static_cast<std::int64_t>(shard_count) * w.index();
  const std::int64_t stride = static_cast<std::int64_t>(shard_count) * workers;
  const std::int64_t max_local = ph.executor->max_vus() > first ? (ph.executor->max_vus() - first + stride - 1) / stride : 0;
  auto target = std::make_shared<std::int64_t>(0);
  auto running = std::make_shared<std::vector<char>>(static_cast<std::size_t>(max_local), 0);
  while (!sh.stopping.load(std::memory_order_relaxed)) {
    const TimePoint now = sh.clock->now();
    if (now >= phase_end) break;
    const std::int64_t global = ph.executor->vus_at(now - phase_start);
    *target = global > first ? std::min(max_local, (global - first + stride - 1) / stride) : 0;
    for (std::int64_t j = 0; j < *target; ++j) {
      if ((*running)[static_cast<std::size_t>(j)]) continue;
      (*running)[static_cast<std::size_t>(j)] = 1;
      asio::co_spawn(ex, vu_loop(w, ph, phase_idx, j, first + stride * j, target, running, phase_end), asio::detached);
    }
    timer.expires_at(std::min(now + 100ms, phase_end));
    co_await timer.async_wait(kTuple);
  }
  *target = 0;
}

asio::awaitable<void> drive_worker(Worker& w, const Scenario& sc, TimePoint run_start, const RunOptions& opt,
                                   int workers, std::shared_ptr<std::promise<void>> done) {
  RunShared& sh = w.shared();
  auto ex = co_await asio::this_coro::executor;
  asio::steady_timer timer(ex);
  for (std::size_t p = 0; p < sc.phases.size() && !sh.stopping.load(); ++p) {
    const Phase& ph = sc.phases[p];
    const TimePoint phase_start = run_start + ph.start;
    if (phase_start > sh.clock->now()) {
      timer.expires_at(phase_start);
      co_await timer.async_wait(kTuple);
    }
    if (ph.executor->model() == LoadModel::kOpen) {
      const std::int64_t stride = static_cast<std::int64_t>(opt.shard_count) * workers;
      const std::int64_t offset = opt.shard_index + static_cast<std::int64_t>(opt.shard_count) * w.index();
      const std::int64_t max_local = std::max<std::int64_t>(1, (ph.executor->max_in_flight() + stride - 1) / stride);
      co_await drive_open(w, ph, p, phase_start, offset, stride, max_local);
    } else {
      co_await drive_closed(w, ph, p, phase_start, opt.shard_index, opt.shard_count, workers);
    }
  }
  done->set_value();
}

// A fault's start/end action. HTTP calls go out on the control thread; commands run in a thread
// of their own (bounded by a timeout) so the timeline never blocks.
struct ActionResult {
  bool ok = false;
  std::string message;
  std::string body;  ///< an HTTP action's response body
};

ActionResult run_command(const std::string& command, std::chrono::seconds timeout) {
  pid_t pid = 0;
  const char* argv[] = {"/bin/sh", "-c", command.c_str(), nullptr};
  if (posix_spawn(&pid, "/bin/sh", nullptr, nullptr, const_cast<char* const*>(argv), environ) != 0)
    return {false, "cannot spawn /bin/sh"};
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  for (;;) {
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return {false, "timed out after " + std::to_string(timeout.count()) + "s"};
    }
    std::this_thread::sleep_for(10ms);
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return {true, "exit 0"};
  if (WIFEXITED(status)) return {false, "exit " + std::to_string(WEXITSTATUS(status))};
  return {false, "killed by signal " + std::to_string(WTERMSIG(status))};
}

// "http://h:p/a/b?q" → {"http://h:p", "/a/b?q"}; a URL without a path gets "/".
std::pair<std::string, std::string> split_url(const std::string& url) {
  const auto scheme_end = url.find("://");
  const auto path_at = url.find('/', scheme_end == std::string::npos ? 0 : scheme_end + 3);
  if (path_at == std::string::npos) return {url, "/"};
  return {url.substr(0, path_at), url.substr(path_at)};
}

std::string resolve_url(const std::string& url, const std::string& base) {
  if (url.starts_with("http://") || url.starts_with("https://")) return url;
  return base + url;
}

class Controller {
 public:
  Controller(const Scenario& sc, const RunOptions& opt, RunShared& shared, std::vector<std::unique_ptr<Worker>>& workers)
      : sc_(sc), opt_(opt), sh_(shared), workers_(workers), signals_(io_, SIGINT, SIGTERM) {}

  RunOutcome run();

 private:
  asio::awaitable<void> ticker();
  asio::awaitable<void> sampler(const SampleSpec& spec, std::size_t index);
  asio::awaitable<void> fault(const Fault& f);
  asio::awaitable<ActionResult> perform(const Fault& f, bool start);
  asio::awaitable<ActionResult> http_call(const HttpCall& call);
  /// For each fault: when every watched field was back at its value from before the fault, and
  /// the first second after the fault's end with no errors.
  bj::array recovery_json() const;
  /// Re-reads every accepted task's stream (replay) and settles the ledger.
  bj::object reconcile_ledger();
  void event(bj::object e) {
    e["t"] = std::max(0.0, std::round(seconds(sh_.clock->now() - run_start_) * 1000) / 1000);
    events_.push_back(std::move(e));
  }
  void abort(std::string reason) {
    if (aborted_) return;
    aborted_ = true;
    abort_reason_ = reason;
    bj::object e;
    e["kind"] = "abort";
    e["reason"] = reason;
    event(std::move(e));
    sh_.stopping = true;
  }
  MetricSet gather_total() {
    MetricSet total(sh_.metrics.size());
    for (auto& w : workers_) total.merge(on_worker(*w, [&] { return w->recorder().total(); }));
    return total;
  }
  std::int64_t in_flight() {
    std::int64_t n = 0;
    for (auto& w : workers_) n += on_worker(*w, [&] { return w->recorder().in_flight; });
    return n;
  }
  std::string phase_name_at(Nanos t) const {
    for (const auto& p : sc_.phases)
      if (t >= p.start && t < p.start + p.executor->duration()) return p.name;
    return t >= sc_.duration() ? "drain" : "";
  }

  const Scenario& sc_;
  const RunOptions& opt_;
  RunShared& sh_;
  std::vector<std::unique_ptr<Worker>>& workers_;
  asio::io_context io_{1};
  asio::signal_set signals_;
  TimePoint run_start_{};
  bool finished_ = false;
  bool aborted_ = false;
  std::string abort_reason_;
  bj::array timeseries_;
  std::vector<bj::object> events_;
  std::vector<bj::value> last_samples_;
  std::vector<std::thread> command_threads_;
  std::vector<std::unique_ptr<http::ConnectionPool>> pools_;
  std::map<const Fault*, std::string> llm_rule_ids_;
  std::int64_t prev_requests_ = 0;
};

asio::awaitable<ActionResult> Controller::http_call(const HttpCall& call) {
  std::string url = resolve_url(call.url, opt_.fault_base_url.empty() ? opt_.target : opt_.fault_base_url);
  std::string error;
  auto [origin, path] = split_url(url);
  auto parsed = http::parse_url(origin, &error);
  if (!parsed) co_return ActionResult{false, url + ": " + error};
  http::ClientOptions o;
  o.request_timeout = 10s;
  auto pool = std::make_unique<http::ConnectionPool>(io_.get_executor(), *parsed, o);
  http::ClientRequest req;
  req.method = call.method;
  req.target = path;
  req.body = call.body;
  req.content_type = call.content_type;
  http::ClientResponse res;
  auto r = co_await pool->request(req, res);
  if (!r.ok()) co_return ActionResult{false, std::string(boost::beast::http::to_string(call.method)) + " " + url + ": " + r.message};
  const bool ok = res.status / 100 == 2;
  co_return ActionResult{ok, std::string(boost::beast::http::to_string(call.method)) + " " + url + " → " + std::to_string(res.status),
                         std::move(res.body)};
}

asio::awaitable<ActionResult> Controller::perform(const Fault& f, bool start) {
  if (f.kind == Fault::Kind::kLlm) {
    if (start) {
      auto r = co_await http_call(*f.http_start);
      if (r.ok) {
        // The mock answers {"id": N, ...}; the end action deletes that rule only.
        auto doc = json::parse(r.body);
        const bj::value* id = doc ? json::at_pointer(*doc, "/id") : nullptr;
        if (id) llm_rule_ids_[&f] = json::to_text(*id);
        else r = ActionResult{false, r.message + " (no rule id in the answer)", r.body};
      }
      co_return r;
    }
    auto it = llm_rule_ids_.find(&f);
    if (it == llm_rule_ids_.end()) co_return ActionResult{false, "no rule to remove (the start failed)"};
    HttpCall del = *f.http_start;
    del.method = boost::beast::http::verb::delete_;
    del.url += "/" + it->second;
    del.body.clear();
    co_return co_await http_call(del);
  }
  if (f.kind == Fault::Kind::kHttp) {
    const auto& call = start ? f.http_start : f.http_end;
    if (!call) co_return ActionResult{true, "no end action"};
    co_return co_await http_call(*call);
  }
  if (f.kind == Fault::Kind::kStack) {
    if (!opt_.stack_action) co_return ActionResult{false, f.action + " needs the embedded stack (no target)"};
    // On a thread of its own, like a command: a restart may take seconds.
    auto result = std::make_shared<std::promise<ActionResult>>();
    auto fut = result->get_future();
    command_threads_.emplace_back([this, &f, start, result] {
      StackActionResult r = opt_.stack_action(f, start);
      result->set_value(ActionResult{r.ok, std::move(r.detail)});
    });
    asio::steady_timer timer(io_);
    while (fut.wait_for(0s) != std::future_status::ready) {
      timer.expires_after(20ms);
      co_await timer.async_wait(kTuple);
    }
    co_return fut.get();
  }
  const std::string& cmd = start ? f.command : f.undo;
  if (cmd.empty()) co_return ActionResult{true, "no undo command"};
  auto result = std::make_shared<std::promise<ActionResult>>();
  auto fut = result->get_future();
  command_threads_.emplace_back([cmd, result] { result->set_value(run_command(cmd, 60s)); });
  asio::steady_timer timer(io_);
  while (fut.wait_for(0s) != std::future_status::ready) {
    timer.expires_after(20ms);
    co_await timer.async_wait(kTuple);
  }
  co_return fut.get();
}

asio::awaitable<void> Controller::fault(const Fault& f) {
  asio::steady_timer timer(io_);
  timer.expires_at(run_start_ + f.at);
  co_await timer.async_wait(kTuple);
  if (finished_) co_return;
  auto started = co_await perform(f, true);
  bj::object e;
  e["kind"] = "fault_start";
  e["name"] = f.name;
  e["action"] = f.action;
  e["ok"] = started.ok;
  e["detail"] = started.message;
  event(std::move(e));
  if (f.duration) {
    timer.expires_at(run_start_ + f.at + *f.duration);
    co_await timer.async_wait(kTuple);  // cancelled at the end of the run: the undo runs anyway
  } else {
    while (!finished_) {
      timer.expires_after(50ms);
      co_await timer.async_wait(kTuple);
    }
  }
  auto ended = co_await perform(f, false);
  bj::object e2;
  e2["kind"] = "fault_end";
  e2["name"] = f.name;
  e2["action"] = f.action;
  e2["ok"] = ended.ok;
  e2["detail"] = ended.message;
  event(std::move(e2));
}

// Watched values that change become events; breaker and degradation fields get their own kinds.
void flatten_prometheus(std::string_view text, bj::object& out) {
  std::size_t pos = 0;
  while (pos < text.size()) {
    auto eol = text.find('\n', pos);
    std::string_view line = text.substr(pos, eol == std::string_view::npos ? std::string_view::npos : eol - pos);
    pos = eol == std::string_view::npos ? text.size() : eol + 1;
    if (line.empty() || line.front() == '#') continue;
    auto sp = line.rfind(' ');
    if (sp == std::string_view::npos) continue;
    std::string_view name = line.substr(0, sp), value = line.substr(sp + 1);
    // Drop a trailing timestamp ("name value ts").
    auto sp2 = name.rfind(' ');
    if (sp2 != std::string_view::npos && name.find('}') < sp2) {
      value = name.substr(sp2 + 1);
      name = name.substr(0, sp2);
    }
    try {
      out[std::string(name)] = std::stod(std::string(value));
    } catch (...) {
    }
  }
}

asio::awaitable<void> Controller::sampler(const SampleSpec& spec, std::size_t index) {
  std::string url = resolve_url(spec.url, opt_.target);
  auto [origin, path] = split_url(url);
  std::string error;
  auto parsed = http::parse_url(origin, &error);
  if (!parsed) co_return;
  http::ClientOptions o;
  o.request_timeout = std::chrono::duration_cast<std::chrono::milliseconds>(std::max<Nanos>(spec.every, 1s));
  pools_.push_back(std::make_unique<http::ConnectionPool>(io_.get_executor(), *parsed, o));
  auto& pool = *pools_.back();
  asio::steady_timer timer(io_);
  std::vector<std::optional<std::string>> previous(spec.watch.size());
  TimePoint next = run_start_;
  std::int64_t failures = 0;
  while (!finished_) {
    http::ClientRequest req;
    req.target = path;
    http::ClientResponse res;
    auto r = co_await pool.request(req, res);
    bj::value doc;
    if (r.ok() && res.status == 200) {
      if (auto parsed_doc = json::parse(res.body)) {
        doc = std::move(*parsed_doc);
      } else {
        bj::object flat;
        flatten_prometheus(res.body, flat);
        doc = std::move(flat);
      }
      for (std::size_t i = 0; i < spec.watch.size(); ++i) {
        const std::string& w = spec.watch[i];
        const bj::value* v = nullptr;
        if (doc.is_object() && !w.starts_with("/")) {
          if (auto* found = doc.as_object().if_contains(w)) v = found;
        } else {
          v = json::at_pointer(doc, w);
        }
        std::optional<std::string> now_text = v ? std::optional<std::string>(json::to_text(*v)) : std::nullopt;
        if (now_text != previous[i]) {
          bj::object e;
          e["kind"] = w.find("breaker") != std::string::npos ? "breaker_state"
                      : w.find("degradation") != std::string::npos ? "degradation_level" : "sample_change";
          e["field"] = w;
          e["from"] = previous[i] ? bj::value(*previous[i]) : bj::value(nullptr);
          e["to"] = now_text ? bj::value(*now_text) : bj::value(nullptr);
          if (v) e["value"] = *v;
          event(std::move(e));
          previous[i] = now_text;
        }
      }
    } else {
      ++failures;
      doc = bj::object{{"error", r.ok() ? "status " + std::to_string(res.status) : r.message}};
    }
    last_samples_[index] = std::move(doc);
    next += spec.every;
    while (next < sh_.clock->now()) next += spec.every;
    timer.expires_at(next);
    co_await timer.async_wait(kTuple);
  }
}

asio::awaitable<void> Controller::ticker() {
  asio::steady_timer timer(io_);
  const bool tty = opt_.live_progress && isatty(STDERR_FILENO);
  const Nanos total = sc_.duration();
  TimePoint next = run_start_ + 1s;
  std::int64_t tick = 0;
  bool abort_thresholds = std::any_of(sc_.thresholds.begin(), sc_.thresholds.end(), [](const Threshold& t) { return t.abort_on_fail; });
  while (!finished_) {
    timer.expires_at(next);
    co_await timer.async_wait(kTuple);
    if (finished_) break;
    ++tick;
    const Nanos t = sh_.clock->now() - run_start_;
    IntervalStats iv;
    std::int64_t inflight = 0;
    for (auto& w : workers_) {
      auto [stats, n] = on_worker(*w, [&] { return std::pair{w->recorder().take_interval(), w->recorder().in_flight}; });
      iv.merge(stats);
      inflight += n;
    }
    bj::object row;
    row["t"] = tick;
    row["phase"] = phase_name_at(t);
    row["rps"] = iv.requests;
    row["errors"] = iv.errors;
    row["p50_ms"] = static_cast<double>(iv.latency.value_at_percentile(50)) / 1000.0;
    row["p99_ms"] = static_cast<double>(iv.latency.value_at_percentile(99)) / 1000.0;
    row["in_flight"] = inflight;
    if (!last_samples_.empty()) {
      if (last_samples_.size() == 1) row["system"] = last_samples_[0];
      else {
        bj::object sys;
        for (std::size_t i = 0; i < last_samples_.size(); ++i) sys[sc_.samples[i].url] = last_samples_[i];
        row["system"] = std::move(sys);
      }
    } else if (opt_.system_snapshot) {
      row["system"] = opt_.system_snapshot();
    }
    timeseries_.push_back(std::move(row));
    prev_requests_ += iv.requests;

    // A target that refuses every connection is down: stop early rather than measure nothing.
    if (tick >= 3 && !aborted_) {
      MetricSet totals = gather_total();
      const auto& c = totals.counters;
      if (c.requests >= 20 && c.errors_by_class[static_cast<std::size_t>(ErrorKind::kConnect)] == c.requests)
        abort("target down: every one of " + std::to_string(c.requests) + " requests failed to connect");
      if (abort_thresholds && !aborted_) {
        for (const auto& th : sc_.thresholds) {
          if (!th.abort_on_fail || t < th.delay_abort_eval) continue;
          auto o = evaluate_threshold(th, totals, sh_.metrics, seconds(t), {});
          if (o.observed && !o.passed) {
            abort("threshold crossed with abort_on_fail: " + th.expr);
            break;
          }
        }
      }
    }

    if (tty || tick % 5 == 0) {
      char line[256];
      const double err_pct = iv.requests ? 100.0 * static_cast<double>(iv.errors) / static_cast<double>(iv.requests) : 0;
      std::snprintf(line, sizeof line, "[%5.1fs/%.0fs] %-10s rps %-7lld in-flight %-6lld p50 %8.2fms p99 %8.2fms errors %5.2f%%",
                    seconds(t), seconds(total), phase_name_at(t).c_str(), static_cast<long long>(iv.requests),
                    static_cast<long long>(inflight), static_cast<double>(iv.latency.value_at_percentile(50)) / 1000.0,
                    static_cast<double>(iv.latency.value_at_percentile(99)) / 1000.0, err_pct);
      if (tty) std::fprintf(stderr, "\r%s\x1b[K", line);
      else std::fprintf(stderr, "%s\n", line);
    }
    next += 1s;
    while (next < sh_.clock->now()) next += 1s;
  }
  if (tty) std::fprintf(stderr, "\n");
}

// recovery_json's latency criterion.
constexpr double kLatencyBaselineSeconds = 10;
constexpr int kLatencyStableSeconds = 3;

bj::array Controller::recovery_json() const {
  bj::array out;
  for (const auto& start : events_) {
    if (start.at("kind") != "fault_start") continue;
    const std::string name(start.at("name").as_string());
    const double t_start = start.at("t").to_number<double>();
    std::optional<double> t_end;
    for (const auto& e : events_)
      if (e.at("kind") == "fault_end" && e.at("name").as_string() == name) t_end = e.at("t").to_number<double>();
    bj::object row;
    row["fault"] = name;
    row["start_t"] = t_start;
    if (!t_end) {
      row["end_t"] = nullptr;
      out.push_back(std::move(row));
      continue;
    }
    row["end_t"] = *t_end;
    // Watched fields: value before the fault, and the first moment at or after its end when
    // they all hold it again.
    std::map<std::string, std::string> before, now;
    std::optional<double> settled;
    bool deviated = false;
    auto all_back = [&] {
      for (const auto& [k, v] : before)
        if (now[k] != v) return false;
      return true;
    };
    bool checked_at_end = false;
    for (const auto& e : events_) {
      const auto* field = e.if_contains("field");
      if (!field) continue;
      const double t = e.at("t").to_number<double>();
      if (t >= *t_end && !checked_at_end) {
        checked_at_end = true;
        if (all_back()) {
          settled = *t_end;
          break;
        }
      }
      const std::string f(field->as_string());
      const std::string to = e.at("to").is_string() ? std::string(e.at("to").as_string()) : "null";
      if (t <= t_start) before[f] = to;
      else if (before.count(f) && before[f] != to) deviated = true;
      now[f] = to;
      if (t >= *t_end && all_back()) {
        settled = t;
        break;
      }
    }
    if (!settled && !checked_at_end && all_back()) settled = *t_end;
    if (!deviated) row["watched_recovered_t"] = *t_end;
    else if (settled) row["watched_recovered_t"] = *settled;
    else row["watched_recovered_t"] = nullptr;
    // Latency: the p99 of the seconds before the fault is the baseline; recovered at the first
    // second at or after the end that starts kLatencyStableSeconds seconds in a row with
    // requests, no errors and a p99 within 1.5× the baseline (+ 50 ms for small baselines: a
  // loaded machine's p99 jitters by tens of ms).
    std::vector<double> before_p99;
    for (const auto& r : timeseries_) {
      const double t = r.at("t").to_number<double>();
      if (t >= t_start - kLatencyBaselineSeconds && t < t_start && r.at("rps").to_number<std::int64_t>() > 0)
        before_p99.push_back(r.at("p99_ms").to_number<double>());
    }
    std::optional<double> latency_back;
    if (!before_p99.empty()) {
      std::sort(before_p99.begin(), before_p99.end());
      const double baseline = before_p99[before_p99.size() / 2];
      const double bound = std::max(baseline * 1.5, baseline + 50.0);
      row["latency_baseline_p99_ms"] = baseline;
      int run = 0;
      double run_start = 0;
      for (const auto& r : timeseries_) {
        const double t = r.at("t").to_number<double>();
        if (t < *t_end) continue;
        const bool good = r.at("rps").to_number<std::int64_t>() > 0 && r.at("errors").to_number<std::int64_t>() == 0 &&
                          r.at("p99_ms").to_number<double>() <= bound;
        if (!good) {
          run = 0;
          continue;
        }
        if (run++ == 0) run_start = t;
        if (run == kLatencyStableSeconds) {
          latency_back = std::max(*t_end, run_start - 1);  // a row at t covers the second before t
          break;
        }
      }
    }
    if (latency_back) row["latency_recovered_t"] = *latency_back;
    else row["latency_recovered_t"] = nullptr;
    // Recovery: both back (the later of the two); null when either never came back in the run.
    const auto* watched = row.if_contains("watched_recovered_t");
    if (watched && watched->is_number() && (latency_back || before_p99.empty())) {
      const double back = std::max(watched->to_number<double>(), latency_back.value_or(*t_end));
      row["recovery_s"] = std::round((back - *t_end) * 1000) / 1000;
    } else {
      row["recovery_s"] = nullptr;
    }
    // Errors: the first whole second at or after the end with none.
    for (const auto& r : timeseries_) {
      const double t = r.at("t").to_number<double>();
      if (t >= *t_end + 1 && r.at("errors").to_number<std::int64_t>() == 0) {
        row["errors_clear_t"] = t;
        break;
      }
    }
    out.push_back(std::move(row));
  }
  return out;
}

bj::object Controller::reconcile_ledger() {
  // Merge what the workers saw (their threads have stopped).
  std::unordered_map<std::string, LedgerEntry> all;
  for (auto& w : workers_)
    for (auto& [id, e] : w->ledger()) {
      auto& into = all.try_emplace(id, LedgerEntry{e.slot, 0, 0}).first->second;
      into.done = static_cast<std::uint16_t>(into.done + e.done);
      into.error = static_cast<std::uint16_t>(into.error + e.error);
    }
  struct Replay {
    int done = 0, error = 0;
    bool answered = false;
  };
  std::unordered_map<std::string, Replay> replays;
  std::vector<const std::pair<const std::string, LedgerEntry>*> todo;
  for (const auto& kv : all) todo.push_back(&kv);

  // Replay each stream from the start: the server's own record of the task's terminal events.
  const Step& step = *sh_.ledger_stream;
  http::ClientOptions o;
  o.connect_timeout = 2s;
  o.stream_idle_timeout = 2s;
  http::ConnectionPool pool(io_.get_executor(), sh_.target, o, *sh_.clock);
  std::size_t next = 0;
  int running = 0;
  const TimePoint give_up = sh_.clock->now() + 90s;
  auto todo_entry_seen = [&](const std::string& id) -> bool {
    const auto& e = all.at(id);
    return e.done + e.error > 0;
  };
  auto one = [&](const std::string& id, std::uint32_t slot_index) -> asio::awaitable<void> {
    const UserSlot& slot = sh_.slots[slot_index];
    std::vector<std::pair<std::string, std::string>> vars{{sh_.ledger_var, id}};
    TemplateContext ctx;
    ctx.user_id = slot.user_id;
    ctx.user_token = slot.token;
    ctx.user_vars = &slot.vars;
    ctx.iter_vars = &vars;
    http::ClientRequest req;
    req.method = step.request.method;
    Replay rp;
    if (!render(step.request.path, ctx, req.target)) {
      std::string value;
      bool has_auth = false;
      for (const auto& [name, t] : step.request.headers) {
        render(t, ctx, value);
        has_auth = has_auth || boost::beast::iequals(name, "authorization");
        req.headers.emplace_back(name, value);
      }
      if (!has_auth && !slot.token.empty()) req.headers.emplace_back("Authorization", "Bearer " + slot.token);
      if (step.request.body && !render(*step.request.body, ctx, value)) {
        req.body = value;
        req.content_type = step.request.content_type;
      }
      http::ClientResponse res;
      auto on_event = [&](http::SseEvent&& e, TimePoint) {
        if (!step.sse.until.matches(e.event, e.data)) return true;
        (step.sse.terminal_is_error(e.event, e.data) ? rp.error : rp.done)++;
        return true;  // keep reading: a second terminal event would be a duplicate
      };
      // A task still running when the load stopped is not lost yet: give its stream time to end.
      const auto& seen = todo_entry_seen(id);
      co_await pool.stream_sse(req, res, on_event, seen ? Nanos(3s) : Nanos(30s));
      rp.answered = res.status / 100 == 2;
    }
    replays[id] = rp;
    --running;
  };
  while ((next < todo.size() || running > 0) && sh_.clock->now() < give_up) {
    while (next < todo.size() && running < 64) {
      ++running;
      const auto* kv = todo[next++];
      asio::co_spawn(io_, one(kv->first, kv->second.slot), asio::detached);
    }
    io_.run_for(10ms);
  }

  // Each task's verdict from its stream.
  enum class Verdict { kCompleted, kFailed, kLost, kDuplicated };
  std::unordered_map<std::string, Verdict> verdicts;
  std::int64_t replayed = 0, unverified = 0;
  for (const auto& [id, e] : all) {
    auto it = replays.find(id);
    const bool answered = it != replays.end() && it->second.answered;
    if (answered) ++replayed;
    // The server's record wins when it answered; otherwise what the client saw.
    const int done = answered ? std::max<int>(it->second.done, 0) : e.done;
    const int error = answered ? it->second.error : e.error;
    const int client_terminals = e.done + e.error;
    const int terminals = answered ? std::max(done + error, client_terminals) : client_terminals;
    Verdict v = Verdict::kFailed;
    if (terminals == 0) {
      v = Verdict::kLost;
      if (!answered) ++unverified;
    } else if (terminals > 1) {
      v = Verdict::kDuplicated;
    } else if (done > 0 || (!answered && e.done > 0)) {
      v = Verdict::kCompleted;
    }
    verdicts.emplace(id, v);
  }

  // Then against the store (embedded stack): a task done on its stream must have exactly one
  // committed turn, and no task may have written its effects twice.
  bj::object store;
  if (opt_.store_effects && !all.empty()) {
    std::vector<std::string> ids;
    ids.reserve(all.size());
    for (const auto& kv : all) ids.push_back(kv.first);
    StoreEffects effects = opt_.store_effects(ids);
    if (!effects.error.empty()) {
      std::fprintf(stderr, "agentlab: ledger: the store could not be checked: %s\n", effects.error.c_str());
      store["error"] = effects.error;
    } else {
      std::int64_t committed = 0, done_without = 0, duplicated_effects = 0, effects_without_done = 0;
      for (auto& [id, v] : verdicts) {
        auto it = effects.tasks.find(id);
        const TaskEffects fx = it == effects.tasks.end() ? TaskEffects{} : it->second;
        if (fx.turns > 0) ++committed;
        const bool twice = fx.turns > 1 || fx.message_rows > fx.expected_message_rows;
        if (twice) {
          ++duplicated_effects;
          v = Verdict::kDuplicated;
        } else if (v == Verdict::kCompleted && fx.turns == 0) {
          ++done_without;
          if (effects.complete) v = Verdict::kLost;
        } else if (v != Verdict::kCompleted && v != Verdict::kDuplicated && fx.turns > 0) {
          ++effects_without_done;  // reported, not folded: the stream's verdict stands
        }
      }
      store["checked"] = static_cast<std::int64_t>(ids.size());
      store["committed"] = committed;
      store["done_without_effects"] = done_without;
      store["duplicated_effects"] = duplicated_effects;
      store["effects_without_done"] = effects_without_done;
      if (!effects.complete) store["complete"] = false;  // done_without_effects not counted as lost
    }
  }

  std::int64_t completed = 0, failed = 0, lost = 0, duplicated = 0;
  for (const auto& [id, v] : verdicts) {
    switch (v) {
      case Verdict::kCompleted: ++completed; break;
      case Verdict::kFailed: ++failed; break;
      case Verdict::kLost: ++lost; break;
      case Verdict::kDuplicated: ++duplicated; break;
    }
  }
  bj::object out;
  out["accepted"] = static_cast<std::int64_t>(all.size());
  out["completed"] = completed;
  out["failed"] = failed;
  out["lost"] = lost;
  out["duplicated"] = duplicated;
  out["replayed"] = replayed;
  out["unverified"] = unverified;
  out["method"] = "every accepted task's stream replayed from the start after the run (" + sh_.ledger_var +
                  " captured by the accepting step); lost = no terminal event, duplicated = more than one";
  if (opt_.store_effects) {
    out["store"] = std::move(store);
    out["method"] = std::string(out["method"].as_string()) +
                    "; then the store's turns per task: done with no committed turn counts as lost, more than one "
                    "turn or more message rows than one commit writes as duplicated";
  }
  return out;
}

std::string format_ms(double us_value) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2fms", us_value / 1000.0);
  return buf;
}

RunOutcome Controller::run() {
  const Clock& clock = *sh_.clock;
  const int nworkers = static_cast<int>(workers_.size());
  for (auto& w : workers_) w->start_thread();

  // Setup: each slot's steps run on the worker that owns the slot, a bounded number at a time.
  if (!sc_.setup.empty()) {
    std::vector<std::future<void>> done;
    for (int wi = 0; wi < nworkers; ++wi) {
      auto p = std::make_shared<std::promise<void>>();
      done.push_back(p->get_future());
      Worker& w = *workers_[static_cast<std::size_t>(wi)];
      asio::co_spawn(w.io(), [&w, wi, nworkers, p, this]() -> asio::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        auto remaining = std::make_shared<std::int64_t>(0);
        asio::steady_timer wait(ex);
        std::vector<std::size_t> mine;
        for (std::size_t s = static_cast<std::size_t>(wi); s < sh_.slots.size(); s += static_cast<std::size_t>(nworkers)) mine.push_back(s);
        constexpr std::int64_t kSetupConcurrency = 64;
        std::size_t next = 0;
        while (next < mine.size() || *remaining > 0) {
          while (next < mine.size() && *remaining < kSetupConcurrency && !sh_.stopping) {
            ++*remaining;
            asio::co_spawn(ex, [&w, s = mine[next], remaining]() -> asio::awaitable<void> {
              co_await w.run_setup(s);
              --*remaining;
            }, asio::detached);
            ++next;
          }
          if (sh_.stopping && *remaining == 0) break;
          wait.expires_after(2ms);
          co_await wait.async_wait(kTuple);
        }
        p->set_value();
      }, asio::detached);
    }
    for (auto& f : done) f.wait();
  }

  run_start_ = clock.now() + 20ms;
  std::vector<std::future<void>> drivers;
  for (auto& w : workers_) {
    auto p = std::make_shared<std::promise<void>>();
    drivers.push_back(p->get_future());
    asio::co_spawn(w->io(), drive_worker(*w, sc_, run_start_, opt_, nworkers, p), asio::detached);
  }

  signals_.async_wait([this](const boost::system::error_code& ec, int sig) {
    if (!ec) abort(sig == SIGINT ? "interrupted (SIGINT)" : "terminated (SIGTERM)");
  });
  last_samples_.resize(sc_.samples.size());
  asio::co_spawn(io_, ticker(), asio::detached);
  for (std::size_t i = 0; i < sc_.samples.size(); ++i) asio::co_spawn(io_, sampler(sc_.samples[i], i), asio::detached);
  for (const auto& f : sc_.faults) asio::co_spawn(io_, fault(f), asio::detached);

  // Wait for the phases to end, then for in-flight iterations (bounded by the graceful stop).
  Nanos grace{0};
  for (const auto& p : sc_.phases) grace = std::max(grace, p.graceful_stop);
  auto phases_done = [&] {
    return std::all_of(drivers.begin(), drivers.end(), [](auto& f) { return f.wait_for(0s) == std::future_status::ready; });
  };
  TimePoint drain_deadline{};
  bool draining = false;
  while (true) {
    io_.run_for(20ms);
    if (!draining && (phases_done() || sh_.stopping)) {
      draining = true;
      drain_deadline = clock.now() + (sh_.stopping ? std::min<Nanos>(grace, 5s) : grace);
    }
    if (draining && (in_flight() == 0 || clock.now() >= drain_deadline)) break;
  }
  const TimePoint run_end = clock.now();
  // Cancel what is still running; count it, so nothing disappears from the books.
  const std::int64_t interrupted = in_flight();
  sh_.stopping = true;
  finished_ = true;
  // Let fault undo actions run before we stop (bounded).
  const TimePoint undo_deadline = clock.now() + 15s;
  auto faults_settled = [&] {
    std::size_t ends = 0, starts = 0;
    for (const auto& e : events_) {
      if (e.at("kind") == "fault_start") ++starts;
      if (e.at("kind") == "fault_end") ++ends;
    }
    return ends >= starts;
  };
  while (!faults_settled() && clock.now() < undo_deadline) io_.run_for(20ms);
  for (auto& w : workers_) {
    w->io().stop();
    w->join();
  }
  for (auto& t : command_threads_)
    if (t.joinable()) t.join();

  // Merge everything exactly.
  MetricSet total(sh_.metrics.size());
  std::vector<MetricSet> phases(sc_.phases.size(), MetricSet(sh_.metrics.size()));
  MetricSet setup(sh_.metrics.size());
  for (auto& w : workers_) {
    total.merge(w->recorder().total());
    for (std::size_t p = 0; p < sc_.phases.size(); ++p) phases[p].merge(w->recorder().phase(p));
    setup.merge(w->recorder().phase(w->recorder().setup_phase()));
  }
  total.counters.interrupted_iterations += interrupted;
  const double duration_s = seconds(run_end - run_start_);

  ExtraValues extra = opt_.final_values ? opt_.final_values() : ExtraValues{};
  bj::object ledger;
  if (!sh_.ledger_var.empty()) {
    ledger = reconcile_ledger();
    for (const char* k : {"accepted", "completed", "failed", "lost", "duplicated"})
      extra.emplace_back(std::string("ledger.") + k, ledger.at(k).to_number<double>());
  }
  bj::array thresholds;
  bool all_passed = true;
  for (const auto& th : sc_.thresholds) {
    auto o = evaluate_threshold(th, total, sh_.metrics, duration_s, extra);
    thresholds.push_back(threshold_json(th, o));
    all_passed = all_passed && o.passed;
  }

  RunOutcome out;
  out.verdict = aborted_ ? "aborted" : all_passed ? "pass" : "fail";
  out.exit_code = aborted_ ? kExitAborted : all_passed ? kExitPass : kExitFailed;

  bj::object doc;
  doc["schema"] = kResultsSchema;
  doc["scenario"] = bj::object{{"name", sc_.name}, {"file", sc_.file}, {"time_scale", sc_.time_scale},
                               {"seed", opt_.seed}, {"description", sc_.description}};
  doc["target"] = opt_.target;
  {
    std::time_t now = std::time(nullptr);
    char iso[32];
    std::strftime(iso, sizeof iso, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
    doc["finished_at"] = iso;
  }
  doc["duration_s"] = std::round(duration_s * 1000) / 1000;
  doc["verdict"] = out.verdict;
  if (aborted_) doc["abort_reason"] = abort_reason_;
  doc["shard"] = bj::object{{"index", opt_.shard_index}, {"count", opt_.shard_count}};
  // The generator's own health, so a saturated generator cannot pass as a slow system.
  {
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    const double cpu_s = static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
    std::uint64_t connections = 0;
    for (auto& w : workers_) connections += w->pool().connections_opened();
    bj::object gen;
    gen["threads"] = nworkers;
    gen["connections_opened"] = connections;
    gen["cpu_seconds"] = std::round(cpu_s * 1000) / 1000;
    gen["cpu_utilisation"] = duration_s > 0 ? std::round(cpu_s / duration_s / nworkers * 1000) / 1000 : 0.0;
    gen["max_rss_mb"] = std::round(static_cast<double>(ru.ru_maxrss) / 1024.0 * 10) / 10;
    const auto& late = total.corrected[sh_.lateness_metric];
    const double late_p99_ms = static_cast<double>(late.value_at_percentile(99)) / 1000.0;
    gen["lateness_p99_ms"] = late_p99_ms;
    if (late.count() && late_p99_ms > 5.0) {
      gen["warning"] = "the generator started 1% of iterations more than 5 ms late: it may be saturated; "
                       "add --threads or shards before trusting the tail";
      std::fprintf(stderr, "agentlab: warning: generator lateness p99 %.1fms — the load generator may be saturated\n",
                   late_p99_ms);
    }
    doc["generator"] = std::move(gen);
  }
  doc["metrics"] = metrics_json(total, sh_.metrics);
  bj::object counters = counters_json(total.counters);
  doc["counters"] = std::move(counters);
  bj::array phase_rows;
  for (std::size_t p = 0; p < sc_.phases.size(); ++p) {
    const auto& ph = sc_.phases[p];
    bj::object row;
    row["name"] = ph.name;
    row["executor"] = ph.executor_name;
    row["start_s"] = seconds(ph.start);
    row["end_s"] = seconds(ph.start + ph.executor->duration());
    row["metrics"] = metrics_json(phases[p], sh_.metrics);
    row["counters"] = counters_json(phases[p].counters);
    phase_rows.push_back(std::move(row));
  }
  doc["phases"] = std::move(phase_rows);
  if (!sc_.setup.empty()) doc["setup"] = bj::object{{"metrics", metrics_json(setup, sh_.metrics)}, {"counters", counters_json(setup.counters)}};
  doc["recovery"] = recovery_json();  // reads the series: before it moves
  doc["timeseries"] = std::move(timeseries_);
  bj::array events;
  for (auto& e : events_) events.push_back(std::move(e));
  doc["events"] = std::move(events);
  doc["thresholds"] = std::move(thresholds);
  if (!ledger.empty()) doc["ledger"] = std::move(ledger);
  else if (opt_.final_ledger) doc["ledger"] = opt_.final_ledger();

  out.results_path = opt_.out_dir + "/results.json";
  if (auto err = write_json_file(out.results_path, doc)) {
    // Never lose a run: fall back to the working directory, then to stdout.
    std::fprintf(stderr, "agentlab: %s\n", err->c_str());
    out.results_path = "results-" + std::to_string(::getpid()) + ".json";
    if (auto err2 = write_json_file(out.results_path, doc)) {
      std::fprintf(stderr, "agentlab: %s; results follow on stdout\n", err2->c_str());
      std::printf("%s\n", bj::serialize(doc).c_str());
      out.results_path.clear();
    }
  }

  // Human summary.
  std::ostringstream s;
  s << "scenario " << sc_.name << " — " << out.verdict << " in " << std::round(duration_s * 10) / 10 << "s"
    << (aborted_ ? " (" + abort_reason_ + ")" : "") << "\n";
  const auto& c = total.counters;
  s << "  requests " << c.requests << "  errors " << c.errors;
  if (c.errors) {
    s << " (";
    bool first = true;
    for (std::size_t i = 0; i < c.errors_by_class.size(); ++i)
      if (c.errors_by_class[i]) {
        s << (first ? "" : ", ") << to_string(static_cast<ErrorKind>(i)) << " " << c.errors_by_class[i];
        first = false;
      }
    s << ")";
  }
  s << "  iterations " << c.iterations << "  dropped " << c.dropped_iterations;
  if (c.interrupted_iterations) s << "  interrupted " << c.interrupted_iterations;
  s << "  rate " << std::round(duration_s > 0 ? static_cast<double>(c.requests) / duration_s : 0) << "/s\n";
  for (std::size_t i = 0; i < sh_.metrics.size(); ++i) {
    const auto& h = total.corrected[i];
    if (!h.count()) continue;
    char line[256];
    std::snprintf(line, sizeof line, "  %-32s n=%-8lld p50 %10s  p90 %10s  p99 %10s  max %10s\n", sh_.metrics.name(i).c_str(),
                  static_cast<long long>(h.count()), format_ms(static_cast<double>(h.value_at_percentile(50))).c_str(),
                  format_ms(static_cast<double>(h.value_at_percentile(90))).c_str(),
                  format_ms(static_cast<double>(h.value_at_percentile(99))).c_str(),
                  format_ms(static_cast<double>(h.max())).c_str());
    s << line;
  }
  const auto& th_rows = doc["thresholds"].as_array();
  for (const auto& t : th_rows) {
    char observed[64] = "none";
    if (t.at("observed").is_number()) std::snprintf(observed, sizeof observed, "%.6g%s", t.at("observed").to_number<double>(),
                                                    t.as_object().contains("unit") ? "ms" : "");
    s << "  " << (t.at("passed").as_bool() ? "✓ " : "✗ ") << std::string(t.at("expr").as_string()) << "  (observed "
      << observed << (t.as_object().contains("note") ? "; " + std::string(t.at("note").as_string()) : "") << ")\n";
  }
  if (!out.results_path.empty()) s << "  results: " << out.results_path << "\n";
  out.summary = s.str();
  return out;
}

}  // namespace

RunOutcome run_scenario(const Scenario& sc, const RunOptions& opt) {
  RunShared shared;
  shared.scenario = &sc;
  shared.seed = opt.seed;
  std::string error;
  auto url = http::parse_url(opt.target, &error);
  if (!url) {
    RunOutcome o;
    o.exit_code = kExitUsage;
    o.verdict = "invalid";
    o.summary = "agentlab: bad target '" + opt.target + "': " + error + "\n";
    return o;
  }
  shared.target = *url;

  // Metric ids, fixed before any worker starts.
  auto step_metrics = [&](const std::string& flow, const Step& s) {
    StepMetrics m;
    const std::string base = flow + "." + s.name + ".";
    m.latency = shared.metrics.add(base + "latency");
    m.ttfb = shared.metrics.add(base + "ttfb");
    if (s.kind == Step::Kind::kSse) {
      m.ttft = shared.metrics.add(base + "ttft");
      m.itl = shared.metrics.add(base + "itl");
      m.e2e = shared.metrics.add(base + "e2e");
    }
    return m;
  };
  for (const auto& s : sc.setup) shared.setup_metrics.push_back(step_metrics("setup", s));
  double cum = 0;
  for (const auto& f : sc.flows) {
    std::vector<StepMetrics> ms;
    for (const auto& s : f.steps) ms.push_back(step_metrics(f.name, s));
    shared.flow_metrics.push_back(std::move(ms));
    shared.iteration_metric.push_back(shared.metrics.add(f.name + ".iteration.duration"));
    cum += f.weight;
    shared.flow_weights_cumulative.push_back(cum);
  }
  shared.ledger_var = sc.ledger_var;
  if (!sc.ledger_var.empty())
    for (const auto& f : sc.flows)
      for (const auto& s : f.steps) {
        auto names = s.request.path.captured_names();
        if (!shared.ledger_stream && s.kind == Step::Kind::kSse &&
            std::find(names.begin(), names.end(), sc.ledger_var) != names.end())
          shared.ledger_stream = &s;
      }
  shared.lateness_metric = shared.metrics.add("generator.lateness");
  shared.queue_wait_metric = shared.metrics.add("generator.queue_wait");

  // The population: users × agents_per_user slots, this shard's share of the setup.
  const std::int64_t slots = sc.users * sc.agents_per_user;
  shared.slots.resize(static_cast<std::size_t>(slots));
  const auto now_s = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  for (std::int64_t s = 0; s < slots; ++s) {
    auto& slot = shared.slots[static_cast<std::size_t>(s)];
    slot.user_id = std::to_string(s / sc.agents_per_user);
    if (!sc.auth_secret.empty()) {
      jwt::Claims claims;
      claims.sub = slot.user_id;
      claims.iat = now_s;
      claims.exp = now_s + std::chrono::duration_cast<std::chrono::seconds>(sc.token_ttl).count();
      slot.token = jwt::sign_hs256(claims, sc.auth_secret);
    }
  }

  std::vector<std::unique_ptr<Worker>> workers;
  for (int i = 0; i < std::max(1, opt.threads); ++i)
    workers.push_back(std::make_unique<Worker>(i, shared, sc.phases.size()));
  Controller controller(sc, opt, shared, workers);
  return controller.run();
}

}  // namespace lab::harness
