// The embedded stack: validation of `system:` and of the faults that need it (nothing starts),
// the chaos proxy between the runtime and its upstreams, and — on real Redis and PostgreSQL
// that the stack starts itself — worker processes killed and restarted, a server restarted, and
// the ledger reconciled against the store.
#include <filesystem>
#include <functional>
#include <fstream>
#include <sstream>

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include "harness/embedded/embedded_stack.hpp"
#include "harness/run/runner.hpp"

using namespace lab::harness;
using namespace std::chrono_literals;
namespace bj = boost::json;

namespace {

std::string temp_dir(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() / ("agentlab-stack-" + name + "-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

std::unique_ptr<Scenario> load(const std::string& text, Diagnostics& diag) {
  auto sc = load_scenario_text(text, diag.file(), 1.0, diag);
  EXPECT_TRUE(sc) << diag.format();
  return sc;
}

// A chat scenario on the embedded stack: `system` and `faults` blocks given, the rest fixed.
std::string chat(const std::string& system, const std::string& faults, const std::string& phases) {
  return R"(
name: stack
system:
)" + system + R"(
population: {users: 20}
auth: {secret: agentlab-dev-secret}
setup:
  - {name: create, request: {method: POST, path: /api/agents, json: {name: "a-${user.id}"}}, expect: {status: 201}, capture: {agent: /id}}
flows:
  chat:
    steps:
      - name: send
        request: {method: POST, path: /api/chat, json: {agentId: "${agent}", message: "${prompt}"}}
        expect: {status: 202}
        capture: {task: /taskId}
      - name: stream
        sse: {path: "/api/stream/${task}", until: {field: /kind, in: [done, error]}}
phases:
)" + phases + R"(
faults:
)" + faults + R"(
ledger: {task: task}
)";
}

struct Ran {
  RunOutcome outcome;
  bj::value results;
};

EmbeddedStackOptions stack_options() {
  EmbeddedStackOptions o;
  o.serve_binary = LAB_AGENTLAB_BINARY;  // this test binary is not agentlab
  return o;
}

Ran run_on(EmbeddedStack& stack, const Scenario& sc, const std::string& name,
           std::function<StoreEffects(const std::vector<std::string>&)> store_effects = {}) {
  RunOptions opt;
  opt.target = stack.target_url();
  opt.fault_base_url = stack.admin_url();
  opt.threads = 1;
  opt.out_dir = temp_dir(name);
  opt.live_progress = false;
  opt.stack_action = [&](const Fault& f, bool start) { return stack.perform(f, start); };
  opt.store_effects = store_effects ? store_effects
                                    : [&](const std::vector<std::string>& ids) { return stack.task_effects(ids); };
  Ran r;
  r.outcome = run_scenario(sc, opt);
  std::ifstream in(r.outcome.results_path);
  std::stringstream ss;
  ss << in.rdbuf();
  r.results = bj::parse(ss.str());
  return r;
}

std::vector<bj::object> events(const bj::value& results, const std::string& kind) {
  std::vector<bj::object> out;
  for (const auto& e : results.at("events").as_array())
    if (e.at("kind").as_string() == kind) out.push_back(e.as_object());
  return out;
}

std::int64_t ledger(const bj::value& results, const char* key) { return results.at("ledger").at(key).to_number<std::int64_t>(); }

}  // namespace

TEST(EmbeddedStack, RefusesWhatItCannotDoWithFileLineAndField) {
  Diagnostics diag("bad.yaml");
  auto sc = load(chat(R"(  llm: {ttft: 1ms}
  runtime: {workers: 1, queue: redis://127.0.0.1:1, store: memory}
  worker_processes: 2
  chaos_proxy: [redis, postgres, kafka])",
                      R"(  - {at: 1s, action: process.kill, role: gateway}
  - {at: 1s, action: process.kill, role: worker, count: 3}
  - {at: 1s, action: service.restart, service: redis}
  - {at: 1s, action: service.restart, service: postgres}
  - {at: 1s, duration: 1s, action: proxy.down, proxy: llm})",
                      "  - {executor: constant-vus, vus: 1, duration: 1s}"),
                 diag);
  ASSERT_TRUE(sc);
  Diagnostics sys("bad.yaml");
  auto stack = EmbeddedStack::start(*sc, 1, sys);
  EXPECT_FALSE(stack);
  const std::string text = sys.format();
  auto has = [&](const std::string& s) { return text.find(s) != std::string::npos; };
  EXPECT_TRUE(has("bad.yaml:6:21: system.worker_processes: needs backends the processes share")) << text;
  EXPECT_TRUE(has("store 'memory'")) << text;
  EXPECT_TRUE(has("bad.yaml:7:24: system.chaos_proxy[1]: 'postgres': the runtime has no PostgreSQL")) << text;
  EXPECT_TRUE(has("bad.yaml:7:34: system.chaos_proxy[2]: 'kafka' is not redis, postgres or llm")) << text;
  EXPECT_TRUE(has("bad.yaml:24:5: faults[0].role: 'gateway': in the embedded stack the gateway runs inside agentlab")) << text;
  EXPECT_TRUE(has("bad.yaml:25:5: faults[1].count: 3: more than the 2 worker processes")) << text;
  EXPECT_TRUE(has("bad.yaml:26:5: faults[2].service: 'redis': service.restart needs a server the stack owns, but "
                  "system.runtime.queue is a URL ('redis://127.0.0.1:1')")) << text;
  EXPECT_TRUE(has("bad.yaml:27:5: faults[3].service: 'postgres': the runtime does not use postgres")) << text;
  EXPECT_TRUE(has("bad.yaml:28:5: faults[4].proxy: 'llm': no such proxy in the embedded stack")) << text;
  EXPECT_EQ(sys.items().size(), 8u) << text;
}

TEST(EmbeddedStack, ProcessKillNeedsWorkerProcesses) {
  Diagnostics diag("k.yaml");
  auto sc = load(chat("  llm: {ttft: 1ms}\n  runtime: {workers: 1}", "  - {at: 1s, action: process.kill, role: worker}",
                      "  - {executor: constant-vus, vus: 1, duration: 1s}"),
                 diag);
  ASSERT_TRUE(sc);
  Diagnostics sys("k.yaml");
  EXPECT_FALSE(EmbeddedStack::start(*sc, 1, sys));
  EXPECT_NE(sys.format().find("faults[0].action: 'process.kill' needs worker processes to kill: add system.worker_processes"),
            std::string::npos)
      << sys.format();
}

// The in-process runtime reaches the mock LLM through the chaos proxy; proxy.down without url:
// goes to that proxy, and the runtime's tasks fail while it is down (each still ends once).
TEST(EmbeddedStack, RoutesTheRuntimeThroughTheChaosProxy) {
  Diagnostics diag("proxy.yaml");
  auto sc = load(chat(R"(  llm: {ttft: 5ms, itl: 1ms, output_tokens: 3..5}
  runtime: {workers: 1, tools: false, llm_retry: {max_retries: 0}, llm_timeout: 1s,
            breakers: {llm: {wait_in_open: 300ms}}, degradation: {recovery_hold: 200ms}, maintenance_interval: 100ms}
  chaos_proxy: [llm])",
                      "  - {name: cut, at: 1s, duration: 1s, action: proxy.down, proxy: llm}",
                      "  - {executor: constant-arrival-rate, rate: 20/s, duration: 5s, max_in_flight: 50}"),
                 diag);
  ASSERT_TRUE(sc);
  Diagnostics sys("proxy.yaml");
  auto stack = EmbeddedStack::start(*sc, 7, sys);
  ASSERT_TRUE(stack) << sys.format();
  ASSERT_FALSE(stack->proxy_api_url().empty());
  EXPECT_NE(stack->describe().find("chaos proxy API " + stack->proxy_api_url() + " (llm 127.0.0.1:"), std::string::npos)
      << stack->describe();
  // What run_command does: faults without url: go to the stack's proxy.
  for (auto& f : sc->faults) {
    f.http_start->url = stack->proxy_api_url() + f.http_start->url;
    f.http_end->url = stack->proxy_api_url() + f.http_end->url;
  }
  auto r = run_on(*stack, *sc, "proxy");
  const auto starts = events(r.results, "fault_start");
  ASSERT_EQ(starts.size(), 1u);
  EXPECT_TRUE(starts[0].at("ok").as_bool()) << starts[0];
  EXPECT_GE(ledger(r.results, "accepted"), 60);  // of 100: not while the runtime refused work (no LLM)
  EXPECT_GT(ledger(r.results, "failed"), 0);     // the LLM was unreachable for a second
  EXPECT_GT(ledger(r.results, "completed"), 40);  // and reachable before and after
  EXPECT_EQ(ledger(r.results, "lost"), 0);
  EXPECT_EQ(ledger(r.results, "duplicated"), 0);
  // The in-memory store answers the store check too: one turn per completed task.
  const auto& store = r.results.at("ledger").at("store");
  EXPECT_EQ(store.at("checked").to_number<std::int64_t>(), ledger(r.results, "accepted")) << store;
  EXPECT_EQ(store.at("committed").to_number<std::int64_t>(), ledger(r.results, "completed")) << store;
  EXPECT_EQ(store.at("done_without_effects").to_number<std::int64_t>(), 0) << store;
  stack->stop();
}

// The store's word folds into the ledger: a task its stream says is done but whose turn the
// store does not have is lost; one stored twice is duplicated. (The store's real answer, with
// two tasks altered on the way.)
TEST(EmbeddedStack, LedgerCountsWhatTheStoreContradicts) {
  Diagnostics diag("fold.yaml");
  auto sc = load(chat("  llm: {ttft: 1ms, itl: 1ms, output_tokens: 2..3}\n  runtime: {workers: 1, tools: false}", "  []",
                      "  - {executor: constant-arrival-rate, rate: 20/s, duration: 1s, max_in_flight: 20}"),
                 diag);
  ASSERT_TRUE(sc);
  Diagnostics sys("fold.yaml");
  auto stack = EmbeddedStack::start(*sc, 1, sys);
  ASSERT_TRUE(stack) << sys.format();
  auto r = run_on(*stack, *sc, "fold", [&](const std::vector<std::string>& ids) {
    StoreEffects fx = stack->task_effects(ids);
    EXPECT_EQ(fx.tasks.size(), ids.size());
    EXPECT_GE(ids.size(), 2u);
    if (ids.size() >= 2) {
      fx.tasks[ids[0]] = TaskEffects{};                     // never stored
      fx.tasks[ids[1]].turns = 2;                           // stored twice
    }
    return fx;
  });
  EXPECT_EQ(ledger(r.results, "accepted"), 20);
  EXPECT_EQ(ledger(r.results, "completed"), 18);
  EXPECT_EQ(ledger(r.results, "lost"), 1);
  EXPECT_EQ(ledger(r.results, "duplicated"), 1);
  const auto& store = r.results.at("ledger").at("store");
  EXPECT_EQ(store.at("done_without_effects").to_number<std::int64_t>(), 1) << store;
  EXPECT_EQ(store.at("duplicated_effects").to_number<std::int64_t>(), 1) << store;
  EXPECT_EQ(store.at("committed").to_number<std::int64_t>(), 19) << store;
  EXPECT_EQ(r.outcome.exit_code, kExitPass);  // no thresholds here
}

// The deployment shape on real servers the stack starts itself: a gateway in-process, two
// worker processes, Redis behind the chaos proxy. A worker drained with SIGTERM and restarted,
// one frozen with SIGSTOP past its lease and resumed, PostgreSQL restarted, the workers cut
// from Redis: every accepted task ends once, its turn stored once.
TEST(EmbeddedStack, WorkerProcessesSurviveKillsRestartsAndAPartition) {
  Diagnostics diag("chaos.yaml");
  auto sc = load(chat(R"(  llm: {ttft: 20ms, itl: 5ms, output_tokens: 5..10}
  runtime: {workers: 1, http_threads: 1, queue: redis, store: postgres, lease_duration: 2s, heartbeat_interval: 500ms,
            drain: 2s, tools: false}
  worker_processes: 2
  chaos_proxy: [redis])",
                      R"(  - {name: term, at: 1s, duration: 1s, action: process.kill, role: worker, signal: TERM}
  - {name: freeze, at: 3s, duration: 3s, action: process.kill, role: worker, signal: STOP}
  - {name: pg, at: 7s, duration: 1s, action: service.restart, service: postgres}
  - {name: cut, at: 9s, duration: 1s, action: proxy.down, proxy: redis})",
                      "  - {executor: constant-arrival-rate, rate: 10/s, duration: 11s, max_in_flight: 100}"),
                 diag);
  ASSERT_TRUE(sc);
  Diagnostics sys("chaos.yaml");
  auto stack = EmbeddedStack::start(*sc, 3, sys, stack_options());
  ASSERT_TRUE(stack) << sys.format();
  EXPECT_EQ(stack->worker_processes(), 2u);
  const std::string description = stack->describe();
  EXPECT_NE(description.find("own Redis redis://127.0.0.1:"), std::string::npos) << description;
  EXPECT_NE(description.find("2 worker processes"), std::string::npos) << description;
  const auto logs = description.substr(description.find("logs in ") + 8, description.find(')', description.find("logs in ")) -
                                                                            description.find("logs in ") - 8);
  ASSERT_TRUE(std::filesystem::exists(logs + "/services.env")) << logs;
  for (auto& f : sc->faults)
    if (!f.proxy.empty()) {
      f.http_start->url = stack->proxy_api_url() + f.http_start->url;
      f.http_end->url = stack->proxy_api_url() + f.http_end->url;
    }
  auto r = run_on(*stack, *sc, "chaos");
  std::map<std::string, std::pair<std::string, std::string>> detail;  // fault → start, end
  for (const auto& e : events(r.results, "fault_start")) {
    EXPECT_TRUE(e.at("ok").as_bool()) << e;
    detail[std::string(e.at("name").as_string())].first = e.at("detail").as_string();
  }
  for (const auto& e : events(r.results, "fault_end")) {
    EXPECT_TRUE(e.at("ok").as_bool()) << e;
    detail[std::string(e.at("name").as_string())].second = e.at("detail").as_string();
  }
  ASSERT_EQ(detail.size(), 4u);
  EXPECT_TRUE(detail["term"].first.starts_with("SIGTERM to w")) << detail["term"].first;
  EXPECT_NE(detail["term"].second.find("ended: exit 0; restarted w"), std::string::npos) << detail["term"].second;
  EXPECT_TRUE(detail["freeze"].first.starts_with("SIGSTOP to w")) << detail["freeze"].first;
  EXPECT_TRUE(detail["freeze"].second.starts_with("SIGCONT to w")) << detail["freeze"].second;
  EXPECT_TRUE(detail["pg"].first.starts_with("stopped postgres postgresql://postgres@127.0.0.1:")) << detail["pg"].first;
  EXPECT_NE(detail["pg"].second.find("back on"), std::string::npos) << detail["pg"].second;
  EXPECT_GE(ledger(r.results, "accepted"), 50);  // of 110: chats are refused while PostgreSQL is down
  EXPECT_EQ(ledger(r.results, "lost"), 0) << r.results.at("ledger");
  EXPECT_EQ(ledger(r.results, "duplicated"), 0) << r.results.at("ledger");
  const auto& store = r.results.at("ledger").at("store");
  EXPECT_EQ(store.at("checked").to_number<std::int64_t>(), ledger(r.results, "accepted")) << store;
  EXPECT_EQ(store.at("committed").to_number<std::int64_t>(), ledger(r.results, "completed")) << store;
  stack->stop();
  EXPECT_FALSE(std::filesystem::exists(logs)) << "the run's temporary directory outlived the stack";
}
