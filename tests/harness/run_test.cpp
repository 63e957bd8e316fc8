// The scenario driver end to end against servers started inside the test (127.0.0.1, port 0).
// These check what the runner records: counts, corrected latency, SSE timings, error classes,
// faults, sampled events, thresholds and exit codes.
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>
#include <gtest/gtest.h>

#include "common/http/router.hpp"
#include "common/http/server.hpp"
#include "common/http/sse.hpp"
#include "harness/run/runner.hpp"
#include "mocks/proxy/chaos_proxy.hpp"
#include "reports/merge/merge.hpp"

using namespace lab;
using namespace lab::harness;
using namespace std::chrono_literals;
namespace bj = boost::json;
namespace bhttp = boost::beast::http;
namespace asio = boost::asio;

namespace {

asio::awaitable<void> sleep_for(http::Exchange& ex, std::chrono::nanoseconds d) {
  asio::steady_timer t(ex.executor());
  t.expires_after(d);
  co_await t.async_wait(asio::use_awaitable);
}

std::string temp_dir(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() / ("agentlab-test-" + name + "-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

struct Ran {
  RunOutcome outcome;
  bj::value results;
};

Ran run_text(const std::string& yaml, const std::string& target, const std::string& name, int threads = 2) {
  Diagnostics diag(name + ".yaml");
  auto sc = load_scenario_text(yaml, name + ".yaml", 1.0, diag);
  EXPECT_TRUE(sc) << diag.format();
  if (!sc) return {};
  RunOptions opt;
  opt.target = target;
  opt.threads = threads;
  opt.out_dir = temp_dir(name);
  opt.live_progress = false;
  Ran r;
  r.outcome = run_scenario(*sc, opt);
  std::ifstream in(r.outcome.results_path);
  std::stringstream ss;
  ss << in.rdbuf();
  r.results = bj::parse(ss.str());
  return r;
}

double metric(const bj::value& results, const std::string& name, const char* field, bool uncorrected = false) {
  const auto& m = results.at("metrics").at(name);
  const auto& src = uncorrected && m.as_object().contains("uncorrected") ? m.at("uncorrected") : m;
  return src.at(field).to_number<double>();
}

std::int64_t counter(const bj::value& results, const char* name) { return results.at("counters").at(name).to_number<std::int64_t>(); }

}  // namespace

TEST(HarnessRun, OpenModelStartsExactlyThePlannedArrivals) {
  http::Router router;
  router.add(bhttp::verb::get, "/ok", [](http::Exchange& ex, const http::PathParams&) -> asio::awaitable<void> {
    co_await ex.respond(http::Status::ok, R"({"ok":true})");
  });
  http::Server server({}, router.handler());
  server.start();
  auto r = run_text(R"(
name: count
flows: {f: {steps: [{name: get, request: {path: /ok}}]}}
phases: [{executor: constant-arrival-rate, rate: 200/s, duration: 2s, max_in_flight: 50}]
thresholds: ["error_rate == 0", "dropped_iterations == 0"]
)", server.url(), "count");
  EXPECT_EQ(r.outcome.exit_code, kExitPass) << r.outcome.summary;
  EXPECT_EQ(r.results.at("schema"), kResultsSchema);
  EXPECT_EQ(counter(r.results, "requests"), 400);
  EXPECT_EQ(counter(r.results, "iterations"), 400);
  EXPECT_EQ(counter(r.results, "dropped_iterations"), 0);
  EXPECT_EQ(metric(r.results, "f.get.latency", "count"), 400);
  EXPECT_EQ(metric(r.results, "generator.lateness", "count"), 400);
  // The encoded histogram decodes to the same count: results merge exactly.
  auto h = Histogram::decode(std::string(r.results.at("metrics").at("f.get.latency").at("hdr").as_string()));
  ASSERT_TRUE(h);
  EXPECT_EQ(h->count(), 400);
  EXPECT_GE(r.results.at("timeseries").as_array().size(), 1u);
}

// A target that stalls for 1 s: with max_in_flight 10 at 500/s, 500 arrivals pile up behind the
// stall. Measured from their intended start (wrk2), the stall shows in the tail; measured from
// the actual send it would mostly vanish.
TEST(HarnessRun, StallIsNotHiddenByCoordinatedOmission) {
  std::atomic<std::int64_t> first_ns{0};
  http::Router router;
  router.add(bhttp::verb::get, "/x", [&](http::Exchange& ex, const http::PathParams&) -> asio::awaitable<void> {
    const auto now = std::chrono::steady_clock::now().time_since_epoch();
    std::int64_t expected = 0;
    first_ns.compare_exchange_strong(expected, now.count());
    const auto since = std::chrono::nanoseconds(now.count() - first_ns.load());
    if (since >= 1s && since < 2s) co_await sleep_for(ex, 2s - since);
    co_await ex.respond(http::Status::ok, "{}");
  });
  http::ServerOptions so;
  so.threads = 1;
  http::Server server(so, router.handler());
  server.start();
  auto r = run_text(R"(
name: stall
flows: {f: {steps: [{name: get, request: {path: /x}}]}}
phases: [{executor: constant-arrival-rate, rate: 500/s, duration: 3s, max_in_flight: 10}]
)", server.url(), "stall");
  EXPECT_EQ(r.outcome.exit_code, kExitPass) << r.outcome.summary;
  const double p99 = metric(r.results, "f.get.latency", "p99");
  const double p99_uncorrected = metric(r.results, "f.get.latency", "p99", true);
  EXPECT_GE(p99, 800) << r.outcome.summary;
  EXPECT_LT(p99_uncorrected, p99 / 2) << r.outcome.summary;
  EXPECT_GT(metric(r.results, "generator.queue_wait", "count"), 100);
}

TEST(HarnessRun, SseStepsMeasureTtftItlAndEndToEnd) {
  http::Router router;
  std::atomic<int> next_id{0};
  router.add(bhttp::verb::post, "/chat", [&](http::Exchange& ex, const http::PathParams&) -> asio::awaitable<void> {
    const bool fail = ex.request().body().find("fail") != std::string::npos;
    co_await ex.respond(http::Status::accepted,
                        std::string(R"({"taskId":")") + (fail ? "bad-" : "t-") + std::to_string(next_id++) + "\"}");
  });
  router.add(bhttp::verb::get, "/stream/{id}", [](http::Exchange& ex, const http::PathParams& p) -> asio::awaitable<void> {
    co_await ex.start_stream(http::Status::ok, "text/event-stream");
    co_await sleep_for(ex, 50ms);
    co_await ex.write_chunk(": keep-alive\n\n");
    for (int i = 0; i < 5; ++i) {
      if (i) co_await sleep_for(ex, 20ms);
      co_await ex.write_chunk(http::format_sse("text_chunk", R"({"kind":"text_chunk","text":"hi"})", std::to_string(i + 1)));
    }
    const bool fail = p.at("id").starts_with("bad-");
    co_await ex.write_chunk(http::format_sse(fail ? "error" : "done", fail ? R"({"kind":"error"})" : R"({"kind":"done","tokens":5})", "6"));
    co_await ex.finish_stream();
  });
  http::Server server({}, router.handler());
  server.start();
  auto r = run_text(R"(
name: sse
population: {users: 4}
flows:
  chat:
    steps:
      - {name: send, request: {method: POST, path: /chat, json: {message: "${prompt}"}}, expect: {status: 202}, capture: {task: /taskId}}
      - name: stream
        sse: {path: "/stream/${task}", until: {field: /kind, in: [done, error]}, content: {event: text_chunk}}
        capture: {tokens: /tokens}
  failing:
    weight: 0
    steps:
      - {name: send, request: {method: POST, path: /chat, json: {message: "please fail"}}, capture: {task: /taskId}}
      - {name: stream, sse: {path: "/stream/${task}", until: {field: /kind, in: [done, error]}}}
phases:
  - {name: ok, executor: constant-vus, vus: 4, duration: 1s, flow: chat}
  - {name: bad, executor: constant-arrival-rate, rate: 10/s, duration: 500ms, flow: failing}
)", server.url(), "sse");
  EXPECT_EQ(r.outcome.exit_code, kExitPass) << r.outcome.summary;
  const double n = metric(r.results, "chat.stream.e2e", "count");
  EXPECT_GE(n, 8);
  EXPECT_EQ(metric(r.results, "chat.stream.ttft", "count"), n);
  EXPECT_EQ(metric(r.results, "chat.stream.itl", "count"), 4 * n);  // 5 chunks → 4 gaps each
  EXPECT_GE(metric(r.results, "chat.stream.ttft", "p50"), 45);
  EXPECT_GE(metric(r.results, "chat.stream.itl", "p50"), 15);
  EXPECT_LT(metric(r.results, "chat.stream.itl", "p50"), 60);
  EXPECT_GE(metric(r.results, "chat.stream.e2e", "p50"), 120);
  // The failing flow's terminal "error" events count as expectation errors, by phase.
  const auto& bad = r.results.at("phases").at(1).at("counters");
  EXPECT_EQ(bad.at("errors_by_class").at("expectation").to_number<int>(), 5);
  EXPECT_EQ(r.results.at("phases").at(0).at("counters").at("errors").to_number<int>(), 0);
}

TEST(HarnessRun, ErrorsAreCountedByClassAndThresholdsFailTheRun) {
  http::Router router;
  router.add(bhttp::verb::get, "/500", [](http::Exchange& ex, const http::PathParams&) -> asio::awaitable<void> {
    co_await ex.respond(http::Status::internal_server_error, "{}");
  });
  router.add(bhttp::verb::get, "/nojson", [](http::Exchange& ex, const http::PathParams&) -> asio::awaitable<void> {
    co_await ex.respond(http::Status::ok, "plain text", "text/plain");
  });
  router.add(bhttp::verb::get, "/slow", [](http::Exchange& ex, const http::PathParams&) -> asio::awaitable<void> {
    co_await sleep_for(ex, 2s);
    co_await ex.respond(http::Status::ok, "{}");
  });
  http::Server server({}, router.handler());
  server.start();
  auto r = run_text(R"(
name: errors
flows:
  s: {steps: [{name: a, request: {path: /500}}]}
  c: {steps: [{name: a, request: {path: /nojson}, capture: {x: /id}}]}
  t: {steps: [{name: a, request: {path: /slow, timeout: 100ms}}]}
phases:
  - {executor: constant-arrival-rate, rate: 20/s, duration: 500ms, flow: s}
  - {executor: constant-arrival-rate, rate: 20/s, duration: 500ms, flow: c}
  - {executor: constant-arrival-rate, rate: 20/s, duration: 500ms, flow: t}
thresholds: ["error_rate < 1%", "p99(s.a.latency) < 10s"]
)", server.url(), "errors");
  EXPECT_EQ(r.outcome.exit_code, kExitFailed) << r.outcome.summary;
  EXPECT_EQ(r.results.at("verdict"), "fail");
  const auto& by = r.results.at("counters").at("errors_by_class");
  EXPECT_EQ(by.at("status").to_number<int>(), 10);
  EXPECT_EQ(by.at("expectation").to_number<int>(), 10);
  EXPECT_EQ(by.at("timeout").to_number<int>(), 10);
  const auto& th = r.results.at("thresholds").as_array();
  EXPECT_FALSE(th[0].at("passed").as_bool());
  EXPECT_TRUE(th[1].at("passed").as_bool());
}

TEST(HarnessRun, TargetDownAbortsWithExitCode3AndStillWritesResults) {
  // A port that nothing listens on: bind, read the port, close.
  std::uint16_t port;
  {
    asio::io_context io;
    asio::ip::tcp::acceptor a(io, {asio::ip::make_address("127.0.0.1"), 0});
    port = a.local_endpoint().port();
  }
  auto r = run_text(R"(
name: down
flows: {f: {steps: [{name: a, request: {path: /}}]}}
phases: [{executor: constant-arrival-rate, rate: 50/s, duration: 30s}]
)", "http://127.0.0.1:" + std::to_string(port), "down");
  EXPECT_EQ(r.outcome.exit_code, kExitAborted) << r.outcome.summary;
  EXPECT_EQ(r.results.at("verdict"), "aborted");
  EXPECT_LT(r.results.at("duration_s").to_number<double>(), 10);
  EXPECT_GT(r.results.at("counters").at("errors_by_class").at("connect").to_number<int>(), 20);
}

TEST(HarnessRun, FaultTimelineAndSamplerRecordEvents) {
  std::atomic<int> level{0};
  std::atomic<int> starts{0}, ends{0};
  http::Router router;
  router.add(bhttp::verb::get, "/ok", [](http::Exchange& ex, const http::PathParams&) -> asio::awaitable<void> {
    co_await ex.respond(http::Status::ok, "{}");
  });
  router.add(bhttp::verb::post, "/admin/degrade", [&](http::Exchange& ex, const http::PathParams&) -> asio::awaitable<void> {
    ++starts;
    level = 2;
    co_await ex.respond(http::Status::ok, "{}");
  });
  router.add(bhttp::verb::delete_, "/admin/degrade", [&](http::Exchange& ex, const http::PathParams&) -> asio::awaitable<void> {
    ++ends;
    level = 0;
    co_await ex.respond(http::Status::ok, "{}");
  });
  router.add(bhttp::verb::get, "/api/system", [&](http::Exchange& ex, const http::PathParams&) -> asio::awaitable<void> {
    co_await ex.respond(http::Status::ok, R"({"degradation_level":)" + std::to_string(level.load()) +
                                              R"(,"breakers":{"llm":")" + (level ? "open" : "closed") + "\"}}");
  });
  http::Server server({}, router.handler());
  server.start();
  const std::string marker = temp_dir("fault-marker") + "/on";
  auto r = run_text(R"(
name: faults
flows: {f: {steps: [{name: a, request: {path: /ok}}]}}
phases: [{executor: constant-arrival-rate, rate: 20/s, duration: 3s}]
faults:
  - {name: degrade, at: 1s, duration: 1s, http: {start: {method: POST, url: /admin/degrade}, end: {method: DELETE, url: /admin/degrade}}}
  - {name: touch, at: 500ms, duration: 500ms, exec: {command: "touch )" + marker + R"(", undo: "rm )" + marker + R"("}}
sample: {url: /api/system, every: 100ms, watch: [/degradation_level, /breakers/llm]}
)", server.url(), "faults");
  EXPECT_EQ(r.outcome.exit_code, kExitPass) << r.outcome.summary;
  EXPECT_EQ(starts.load(), 1);
  EXPECT_EQ(ends.load(), 1);
  EXPECT_FALSE(std::filesystem::exists(marker));  // the undo ran
  std::vector<std::string> kinds;
  int level_changes = 0, breaker_changes = 0;
  for (const auto& e : r.results.at("events").as_array()) {
    kinds.emplace_back(e.at("kind").as_string());
    if (e.at("kind") == "degradation_level") ++level_changes;
    if (e.at("kind") == "breaker_state") ++breaker_changes;
    if (e.at("kind") == "fault_start" || e.at("kind") == "fault_end") {
      EXPECT_TRUE(e.at("ok").as_bool()) << bj::serialize(e);
    }
  }
  EXPECT_EQ(std::count(kinds.begin(), kinds.end(), "fault_start"), 2);
  EXPECT_EQ(std::count(kinds.begin(), kinds.end(), "fault_end"), 2);
  EXPECT_EQ(level_changes, 3);    // unset → 0, 0 → 2, 2 → 0
  EXPECT_EQ(breaker_changes, 3);  // unset → closed, → open, → closed
  // The time series carries the sampled system state.
  EXPECT_TRUE(r.results.at("timeseries").at(0).as_object().contains("system"));
}

TEST(HarnessRun, AbortOnFailStopsEarly) {
  http::Router router;
  router.add(bhttp::verb::get, "/500", [](http::Exchange& ex, const http::PathParams&) -> asio::awaitable<void> {
    co_await ex.respond(http::Status::internal_server_error, "{}");
  });
  http::Server server({}, router.handler());
  server.start();
  auto r = run_text(R"(
name: abort
flows: {f: {steps: [{name: a, request: {path: /500}}]}}
phases: [{executor: constant-vus, vus: 2, duration: 60s}]
thresholds: [{threshold: "error_rate < 1%", abort_on_fail: true, delay_abort_eval: 1s}]
)", server.url(), "abort");
  EXPECT_EQ(r.outcome.exit_code, kExitAborted) << r.outcome.summary;
  EXPECT_LT(r.results.at("duration_s").to_number<double>(), 10);
}

TEST(HarnessRun, LlmFaultActionsDriveTheMockAdminApi) {
  std::mutex mu;
  std::vector<std::string> calls;
  http::Router router;
  router.add(bhttp::verb::get, "/ok", [](http::Exchange& ex, const http::PathParams&) -> asio::awaitable<void> {
    co_await ex.respond(http::Status::ok, "{}");
  });
  router.add(bhttp::verb::post, "/admin/faults", [&](http::Exchange& ex, const http::PathParams&) -> asio::awaitable<void> {
    std::string id;
    {
      std::lock_guard lock(mu);
      calls.push_back("POST " + ex.request().body());
      id = std::to_string(calls.size());
    }
    co_await ex.respond(http::Status::created, R"({"id":)" + id + "}");
  });
  router.add(bhttp::verb::delete_, "/admin/faults/{id}", [&](http::Exchange& ex, const http::PathParams& p) -> asio::awaitable<void> {
    {
      std::lock_guard lock(mu);
      calls.push_back("DELETE " + p.at("id"));
    }
    co_await ex.respond(http::Status::ok, "{}");
  });
  http::Server server({}, router.handler());
  server.start();
  auto r = run_text(R"(
name: llm-faults
flows: {f: {steps: [{name: a, request: {path: /ok}}]}}
phases: [{executor: constant-arrival-rate, rate: 10/s, duration: 1s}]
faults:
  - {at: 100ms, duration: 200ms, action: llm.errors, rate: 0.5, status: 429}
  - {at: 400ms, duration: 200ms, action: llm.latency, multiplier: 10}
)", server.url(), "llm-faults");
  EXPECT_EQ(r.outcome.exit_code, kExitPass) << r.outcome.summary;
  std::lock_guard lock(mu);
  ASSERT_EQ(calls.size(), 4u);
  EXPECT_NE(calls[0].find(R"("error_rate":0.5)"), std::string::npos) << calls[0];
  EXPECT_NE(calls[0].find(R"("status":429)"), std::string::npos) << calls[0];
  EXPECT_EQ(calls[1], "DELETE 1");
  EXPECT_NE(calls[2].find(R"("latency_multiplier":10)"), std::string::npos) << calls[2];
  EXPECT_EQ(calls[3], "DELETE 3");
}

TEST(HarnessRun, ShardsSplitTheLoadAndMergeExactly) {
  http::Router router;
  router.add(bhttp::verb::get, "/ok", [](http::Exchange& ex, const http::PathParams&) -> asio::awaitable<void> {
    co_await ex.respond(http::Status::ok, "{}");
  });
  http::Server server({}, router.handler());
  server.start();
  const char* yaml = R"(
name: sharded
population: {users: 4}
flows: {f: {steps: [{name: get, request: {path: /ok}}]}}
phases:
  - {executor: constant-arrival-rate, rate: 100/s, duration: 1s}
  - {executor: constant-vus, vus: 4, duration: 500ms}
thresholds: ["requests > 150", "p99(f.get.latency) < 1s"]
)";
  std::vector<std::pair<std::string, bj::value>> shards;
  std::int64_t open_model = 0;
  for (int i = 0; i < 2; ++i) {
    Diagnostics diag("sharded.yaml");
    auto sc = load_scenario_text(yaml, "sharded.yaml", 1.0, diag);
    ASSERT_TRUE(sc) << diag.format();
    RunOptions opt;
    opt.target = server.url();
    opt.threads = 1;
    opt.shard_index = i;
    opt.shard_count = 2;
    opt.out_dir = temp_dir("shard" + std::to_string(i));
    opt.live_progress = false;
    auto out = run_scenario(*sc, opt);
    std::ifstream in(out.results_path);
    std::stringstream ss;
    ss << in.rdbuf();
    shards.emplace_back(out.results_path, bj::parse(ss.str()));
    open_model += shards.back().second.at("phases").at(0).at("counters").at("requests").to_number<std::int64_t>();
  }
  EXPECT_EQ(open_model, 100);  // each shard took half of the planned arrivals, none twice
  std::vector<std::string> errors;
  auto merged = lab::reports::merge_results(shards, errors);
  ASSERT_TRUE(merged) << (errors.empty() ? "" : errors[0]);
  const std::int64_t requests = merged->at("counters").at("requests").to_number<std::int64_t>();
  EXPECT_EQ(requests, counter(shards[0].second, "requests") + counter(shards[1].second, "requests"));
  EXPECT_EQ(metric(*merged, "f.get.latency", "count"), static_cast<double>(requests));
  EXPECT_EQ(merged->at("verdict"), "pass");
  EXPECT_TRUE(merged->at("thresholds").at(0).at("passed").as_bool());  // only the merged total passes
  EXPECT_FALSE(lab::reports::merge_results({{"x.json", bj::parse(R"({"schema":"other"})")}}, errors));
}

// Task n: n % 4 == 0 → the stream never ends with a terminal event (lost);
//         n % 4 == 1 → two done events (duplicated); 2 → error (failed); 3 → done (completed).
TEST(HarnessRun, LedgerReconcilesEveryAcceptedTask) {
  std::atomic<int> next_id{0};
  http::Router router;
  router.add(bhttp::verb::post, "/chat", [&](http::Exchange& ex, const http::PathParams&) -> asio::awaitable<void> {
    co_await ex.respond(http::Status::accepted, R"({"taskId":")" + std::to_string(next_id++) + "\"}");
  });
  router.add(bhttp::verb::get, "/stream/{id}", [](http::Exchange& ex, const http::PathParams& p) -> asio::awaitable<void> {
    const int n = std::stoi(p.at("id"));
    co_await ex.start_stream(http::Status::ok, "text/event-stream");
    co_await ex.write_chunk(http::format_sse("text_chunk", R"({"kind":"text_chunk"})"));
    if (n % 4 == 1) {
      co_await ex.write_chunk(http::format_sse("done", R"({"kind":"done"})"));
      co_await ex.write_chunk(http::format_sse("done", R"({"kind":"done"})"));
    } else if (n % 4 == 2) {
      co_await ex.write_chunk(http::format_sse("error", R"({"kind":"error"})"));
    } else if (n % 4 == 3) {
      co_await ex.write_chunk(http::format_sse("done", R"({"kind":"done"})"));
    }
    co_await ex.finish_stream();
  });
  http::Server server({}, router.handler());
  server.start();
  auto r = run_text(R"(
name: ledger
flows:
  chat:
    steps:
      - {name: send, request: {method: POST, path: /chat, json: {m: hi}}, capture: {task: /taskId}}
      - {name: stream, sse: {path: "/stream/${task}", until: {field: /kind, in: [done, error]}}}
phases: [{executor: constant-arrival-rate, rate: 40/s, duration: 1s}]
ledger: {task: task}
thresholds: ["ledger.lost == 0"]
)", server.url(), "ledger");
  EXPECT_EQ(r.outcome.exit_code, kExitFailed) << r.outcome.summary;  // the lost tasks fail the threshold
  const auto& l = r.results.at("ledger");
  EXPECT_EQ(l.at("accepted").to_number<int>(), 40) << bj::serialize(l);
  EXPECT_EQ(l.at("lost").to_number<int>(), 10) << bj::serialize(l);
  EXPECT_EQ(l.at("duplicated").to_number<int>(), 10) << bj::serialize(l);
  EXPECT_EQ(l.at("failed").to_number<int>(), 10) << bj::serialize(l);
  EXPECT_EQ(l.at("completed").to_number<int>(), 10) << bj::serialize(l);
  EXPECT_EQ(l.at("replayed").to_number<int>(), 40) << bj::serialize(l);
}

// An HTTP server answering GET /ok with {}, behind the built-in chaos proxy as proxy "api".
struct ProxiedOkServer {
  static http::Handler ok_handler() {
    http::Router router;
    router.add(bhttp::verb::get, "/ok", [](http::Exchange& ex, const http::PathParams&) -> asio::awaitable<void> {
      co_await ex.respond(http::Status::ok, "{}");
    });
    return router.handler();
  }
  ProxiedOkServer() {
    server.start();
    proxy.start();
    lab::mocks::proxy::ProxyConfig cfg;
    cfg.name = "api";
    cfg.listen = "127.0.0.1:0";
    cfg.upstream = "127.0.0.1:" + std::to_string(server.port());
    auto created = proxy.registry().create_proxy(cfg);
    if (created.ok()) through = "http://" + created.value().listen;
  }
  http::Server server{{}, ok_handler()};
  lab::mocks::proxy::ChaosProxy proxy;
  std::string through;  ///< the proxy's listen URL; empty when it could not be created
};

// The harness drives the chaos proxy through Toxiproxy's API: a latency toxic, then the proxy
// down. Requests go through the proxy to an HTTP server.
TEST(HarnessRun, ProxyFaultActionsDriveTheChaosProxy) {
  ProxiedOkServer target;
  ASSERT_FALSE(target.through.empty());
  auto& proxy = target.proxy;
  const std::string& through = target.through;
  auto r = run_text(R"(
name: proxy-faults
flows: {f: {steps: [{name: a, request: {path: /ok, timeout: 2s}}]}}
phases:
  - {name: clean, executor: constant-arrival-rate, rate: 20/s, duration: 500ms}
  - {name: slow, executor: constant-arrival-rate, rate: 20/s, duration: 500ms}
  - {name: gap, executor: constant-arrival-rate, rate: 20/s, duration: 500ms}
  - {name: down, executor: constant-arrival-rate, rate: 20/s, duration: 500ms}
faults:
  - {name: lag, at: 450ms, duration: 600ms, action: proxy.toxic, proxy: api, type: latency, attributes: {latency: 300}, url: ")" +
                        proxy.url() + R"("}
  - {name: cut, at: 1450ms, duration: 700ms, action: proxy.down, proxy: api, url: ")" + proxy.url() + R"("}
)", through, "proxy-faults", 1);
  const auto& phases = r.results.at("phases");
  auto p50 = [&](int i) { return phases.at(i).at("metrics").at("f.a.latency").at("p50").to_number<double>(); };
  EXPECT_LT(p50(0), 100) << r.outcome.summary;
  EXPECT_GE(p50(1), 290) << r.outcome.summary;
  EXPECT_LT(p50(2), 100) << r.outcome.summary;
  EXPECT_GE(phases.at(3).at("counters").at("errors").to_number<int>(), 5) << r.outcome.summary;
  for (const auto& e : r.results.at("events").as_array())
    if (e.at("kind") == "fault_start" || e.at("kind") == "fault_end") {
      EXPECT_TRUE(e.at("ok").as_bool()) << bj::serialize(e);
    }
  EXPECT_TRUE(proxy.registry().proxy("api").value().enabled);  // the end action re-enabled it
}

// recovery[]: the latency after a fault is compared with the seconds before it. A 200 ms latency
// toxic for 2 s: the per-second p99 rises over the baseline, and comes back within a couple of
// seconds of the fault's end (no sampler: the watched fields play no part).
TEST(HarnessRun, RecoveryIsMeasuredFromLatencyBackToItsPreFaultLevel) {
  ProxiedOkServer target;
  ASSERT_FALSE(target.through.empty());
  auto& proxy = target.proxy;
  auto r = run_text(R"(
name: recovery
flows: {f: {steps: [{name: a, request: {path: /ok, timeout: 2s}}]}}
phases:
  - {executor: constant-arrival-rate, rate: 20/s, duration: 9s, max_in_flight: 50}
faults:
  - {name: lag, at: 3s, duration: 2s, action: proxy.toxic, proxy: api, type: latency, attributes: {latency: 200}, url: ")" +
                        proxy.url() + R"("}
)", target.through, "recovery", 1);
  const auto& rec = r.results.at("recovery").as_array();
  ASSERT_EQ(rec.size(), 1u) << r.outcome.summary;
  const auto& row = rec.at(0);
  EXPECT_LT(row.at("latency_baseline_p99_ms").to_number<double>(), 100) << bj::serialize(row);
  ASSERT_TRUE(row.at("latency_recovered_t").is_number()) << bj::serialize(row);
  const double end_t = row.at("end_t").to_number<double>();
  EXPECT_GE(row.at("latency_recovered_t").to_number<double>(), end_t);
  ASSERT_TRUE(row.at("recovery_s").is_number()) << bj::serialize(row);
  EXPECT_LE(row.at("recovery_s").to_number<double>(), 3.0) << bj::serialize(row);
  // During the fault the seconds were slow: the criterion could have failed.
  bool slow_second = false;
  for (const auto& t : r.results.at("timeseries").as_array()) {
    const double at = t.at("t").to_number<double>();
    if (at > row.at("start_t").to_number<double>() + 1 && at <= end_t && t.at("p99_ms").to_number<double>() >= 190)
      slow_second = true;
  }
  EXPECT_TRUE(slow_second) << r.outcome.summary;
}
