#include "harness/run/worker.hpp"

#include <algorithm>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>

#include "common/text/json_util.hpp"

namespace lab::harness {

namespace asio = boost::asio;

namespace {

constexpr std::string_view kSyllables[] = {
    "ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "xe", "ya", "zu", "pe", "qua", "dri", "fen",
    "gol", "hap", "jex", "mor", "nix", "pla", "rin", "sto", "tur", "vel", "wix", "bro", "cla"};

// Per-iteration state reached from template callbacks.
struct IterState {
  FastRng* rng;
  const Prompts* prompts;
  std::string prompt;
  bool prompt_made = false;
  std::string uuid;
};

std::string_view make_prompt(void* p) {
  auto& st = *static_cast<IterState*>(p);
  if (!st.prompt_made) {
    st.prompt_made = true;
    if (!st.prompts->list.empty()) {
      st.prompt = st.prompts->list[static_cast<std::size_t>((*st.rng)() % st.prompts->list.size())];
    } else {
      const auto words = st.rng->between(st.prompts->words.lo, st.prompts->words.hi);
      st.prompt.clear();
      for (std::int64_t w = 0; w < words; ++w) {
        if (w) st.prompt += ' ';
        const auto syl = st.rng->between(1, 3);
        for (std::int64_t s = 0; s < syl; ++s)
          st.prompt += kSyllables[(*st.rng)() % std::size(kSyllables)];
      }
    }
  }
  return st.prompt;
}

std::string make_uuid(void* p) {
  auto& rng = *static_cast<IterState*>(p)->rng;
  const std::uint64_t a = rng(), b = rng();
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(36, '-');
  int nibble = 0;
  for (int i = 0; i < 36; ++i) {
    if (i == 8 || i == 13 || i == 18 || i == 23) continue;
    std::uint64_t word = nibble < 16 ? a : b;
    int shift = (15 - nibble % 16) * 4;
    unsigned v = static_cast<unsigned>((word >> shift) & 0xf);
    if (i == 14) v = 4;                    // version 4
    if (i == 19) v = 8 | (v & 3);          // variant 10xx
    out[static_cast<std::size_t>(i)] = kHex[v];
    ++nibble;
  }
  return out;
}

std::int64_t us(Nanos d) { return std::max<std::int64_t>(0, std::chrono::duration_cast<Micros>(d).count()); }

bool status_ok(const Step& step, unsigned status) {
  if (step.expect_status.empty()) return status / 100 == 2;
  return std::find(step.expect_status.begin(), step.expect_status.end(), status) != step.expect_status.end();
}

ErrorKind kind_of(http::ErrorClass c) {
  switch (c) {
    case http::ErrorClass::kConnect: return ErrorKind::kConnect;
    case http::ErrorClass::kTimeout: return ErrorKind::kTimeout;
    default: return ErrorKind::kProtocol;
  }
}

}  // namespace

Worker::Worker(int index, RunShared& shared, std::size_t phases)
    : index_(index), shared_(shared), recorder_(shared.metrics.size(), phases) {
  http::ClientOptions opts;
  opts.request_timeout = std::chrono::duration_cast<std::chrono::milliseconds>(shared.scenario->request_timeout);
  opts.connect_timeout = std::chrono::duration_cast<std::chrono::milliseconds>(shared.scenario->connect_timeout);
  opts.stream_idle_timeout = opts.request_timeout;
  pool_ = std::make_unique<http::ConnectionPool>(io_.get_executor(), shared.target, opts, *shared.clock);
}

void Worker::start_thread() {
  thread_ = std::thread([this] {
    auto guard = asio::make_work_guard(io_);
    io_.run();
  });
}

void Worker::join() {
  if (thread_.joinable()) thread_.join();
}

asio::awaitable<bool> Worker::run_steps(const std::vector<Step>& steps,
                                        const std::vector<StepMetrics>& metrics,
                                        const IterationInfo& info, FastRng& rng,
                                        std::vector<std::pair<std::string, std::string>>& vars,
                                        const std::vector<std::pair<std::string, std::string>>* user_vars) {
  const Scenario& sc = *shared_.scenario;
  const Clock& clock = *shared_.clock;
  const UserSlot& slot = shared_.slots[info.slot];
  // The iteration's own lateness: every measurement from it is also shown shifted by this, so
  // a generator (or a server) that delays the start cannot hide the delay (wrk2's correction).
  const Nanos delay = std::max(Nanos(0), info.started - info.intended);

  IterState st{&rng, &sc.prompts, {}, false, {}};
  TemplateContext ctx;
  ctx.user_id = slot.user_id;
  ctx.user_token = slot.token;
  ctx.vu = info.vu;
  ctx.iter = info.iter;
  ctx.user_vars = user_vars;
  ctx.iter_vars = &vars;
  ctx.prompt = &make_prompt;
  ctx.uuid = &make_uuid;
  ctx.state = &st;

  std::string rendered;
  for (std::size_t i = 0; i < steps.size(); ++i) {
    const Step& step = steps[i];
    const StepMetrics& m = metrics[i];
    auto fail = [&](ErrorKind kind, std::int64_t latency_us) {
      recorder_.request_done(info.phase, latency_us, true, kind);
    };

    http::ClientRequest req;
    req.method = step.request.method;
    if (auto missing = render(step.request.path, ctx, req.target)) {
      fail(ErrorKind::kExpectation, 0);
      co_return false;
    }
    bool has_auth = false;
    for (const auto& [name, tmpl] : step.request.headers) {
      if (render(tmpl, ctx, rendered)) {
        fail(ErrorKind::kExpectation, 0);
        co_return false;
      }
      has_auth = has_auth || boost::beast::iequals(name, "authorization");
      req.headers.emplace_back(name, rendered);
    }
    if (!has_auth && !slot.token.empty()) req.headers.emplace_back("Authorization", "Bearer " + slot.token);
    if (step.request.body) {
      if (render(*step.request.body, ctx, req.body)) {
        fail(ErrorKind::kExpectation, 0);
        co_return false;
      }
      req.content_type = step.request.content_type;
    }
    const Nanos timeout = step.request.timeout.value_or(sc.request_timeout);
    req.timeout = std::chrono::duration_cast<std::chrono::milliseconds>(timeout);

    http::ClientResponse res;
    const TimePoint t0 = clock.now();
    const std::string* capture_source = &res.body;
    std::string terminal_data;

    http::ClientResult r;
    if (step.kind == Step::Kind::kRequest) {
      r = co_await pool_->request(req, res);
    } else {
      bool terminal = false, terminal_error = false, any_content = false;
      TimePoint last_content{};
      auto on_event = [&](http::SseEvent&& e, TimePoint t) {
        if (step.sse.until.matches(e.event, e.data)) {
          terminal = true;
          // Which value matched decides success: e.g. kind "error" ends the stream as a failure.
          terminal_error = step.sse.terminal_is_error(e.event, e.data);
          terminal_data = std::move(e.data);
          recorder_.record(m.e2e, info.phase, us(t - t0 + delay), us(t - t0));
          return false;
        }
        if (step.sse.content.by != EventMatch::By::kAny && !step.sse.content.matches(e.event, e.data)) return true;
        if (!any_content) {
          any_content = true;
          recorder_.record(m.ttft, info.phase, us(t - t0 + delay), us(t - t0));
        } else {
          const auto gap = us(t - last_content);
          recorder_.record(m.itl, info.phase, gap, gap);
        }
        last_content = t;
        return true;
      };
      r = co_await pool_->stream_sse(req, res, on_event, timeout);
      if (terminal && &step == shared_.ledger_stream) {
        // The stream of an accepted task ended: note which terminal event it showed.
        const std::string* id = nullptr;
        for (auto it = vars.rbegin(); it != vars.rend() && !id; ++it)
          if (it->first == shared_.ledger_var) id = &it->second;
        if (id) {
          auto& entry = ledger_.try_emplace(*id, LedgerEntry{static_cast<std::uint32_t>(info.slot), 0, 0}).first->second;
          if (terminal_error) ++entry.error;
          else ++entry.done;
        }
      }
      if (r.ok() && res.status / 100 == 2 && !terminal) {
        r = {http::ErrorClass::kProtocol, "stream ended before the terminal event"};
      }
      if (r.ok() && terminal_error) {
        const auto lat = us(res.done_at - t0);
        recorder_.record(m.latency, info.phase, lat + us(delay), lat);
        fail(ErrorKind::kExpectation, lat);
        co_return false;
      }
      capture_source = &terminal_data;
    }
    const TimePoint t1 = clock.now();
    const std::int64_t lat = us(t1 - t0);
    if (!r.ok()) {
      fail(kind_of(r.error), lat);
      co_return false;
    }
    recorder_.record(m.latency, info.phase, lat + us(delay), lat);
    if (res.first_byte_at != TimePoint{}) {
      const auto ttfb = us(res.first_byte_at - t0);
      recorder_.record(m.ttfb, info.phase, ttfb + us(delay), ttfb);
    }
    recorder_.counters(info.phase).bytes_received += static_cast<std::int64_t>(res.body.size());
    if (!status_ok(step, res.status)) {
      fail(ErrorKind::kStatus, lat);
      co_return false;
    }
    if (step.expect_body_contains && res.body.find(*step.expect_body_contains) == std::string::npos) {
      fail(ErrorKind::kExpectation, lat);
      co_return false;
    }
    if (!step.capture.empty()) {
      auto doc = json::parse(*capture_source);
      bool captured = doc.has_value();
      if (doc) {
        for (const auto& [var, ptr] : step.capture) {
          const auto* v = json::at_pointer(*doc, ptr);
          if (!v) {
            captured = false;
            break;
          }
          vars.emplace_back(var, json::to_text(*v));
          if (!shared_.ledger_var.empty() && var == shared_.ledger_var)
            ledger_.try_emplace(vars.back().second, LedgerEntry{static_cast<std::uint32_t>(info.slot), 0, 0});
        }
      }
      if (!captured) {
        fail(ErrorKind::kExpectation, lat);
        co_return false;
      }
    }
    recorder_.request_done(info.phase, lat + us(delay), false, ErrorKind::kCount);
  }
  co_return true;
}

asio::awaitable<void> Worker::run_iteration(IterationInfo info) {
  const Scenario& sc = *shared_.scenario;
  FastRng rng(shared_.seed * 0x9e3779b97f4a7c15ULL + static_cast<std::uint64_t>(info.iter) * 7919 +
              static_cast<std::uint64_t>(info.vu));
  ++recorder_.in_flight;
  std::vector<std::pair<std::string, std::string>> vars;
  const auto& slot = shared_.slots[info.slot];
  bool ok = false;
  if (!slot.setup_ok) {
    // Its setup failed, so its variables are missing: count the iteration as failed rather than
    // sending requests that are sure to be wrong.
    recorder_.request_done(info.phase, 0, true, ErrorKind::kExpectation);
  } else {
    ok = co_await run_steps(sc.flows[info.flow].steps, shared_.flow_metrics[info.flow], info, rng, vars, &slot.vars);
  }
  const TimePoint end = shared_.clock->now();
  if (ok) {
    ++recorder_.counters(info.phase).iterations;
    recorder_.record(shared_.iteration_metric[info.flow], info.phase, us(end - info.intended), us(end - info.started));
  } else {
    ++recorder_.counters(info.phase).failed_iterations;
  }
  --recorder_.in_flight;
}

asio::awaitable<void> Worker::run_setup(std::size_t slot_index) {
  const Scenario& sc = *shared_.scenario;
  FastRng rng(shared_.seed ^ (0xa5a5a5a5ULL + slot_index));
  IterationInfo info;
  info.slot = slot_index;
  info.vu = static_cast<std::int64_t>(slot_index);
  info.phase = 0;
  info.intended = info.started = shared_.clock->now();
  auto& slot = shared_.slots[slot_index];
  std::vector<std::pair<std::string, std::string>> vars;
  slot.setup_ok = co_await run_steps(sc.setup, shared_.setup_metrics, info, rng, vars, nullptr);
  slot.vars = std::move(vars);
}

}  // namespace lab::harness
