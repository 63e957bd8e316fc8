#include <csignal>

#include <gtest/gtest.h>

#include "harness/scenario/scenario.hpp"

using namespace lab::harness;
using namespace std::chrono_literals;

namespace {
const char* kGood = R"(
name: chat
population: {users: 10, agents_per_user: 2}
auth: {secret: s3cret}
setup:
  - {name: create, request: {method: POST, path: /api/agents, json: {name: "a-${user.id}"}}, capture: {agent: /id}}
flows:
  chat:
    think_time: 1s..3s
    steps:
      - name: send
        request: {method: POST, path: /api/chat, json: {agentId: "${agent}", message: "${prompt}", n: 3, ok: true, q: "7"}}
        expect: {status: 202}
        capture: {task: /taskId}
      - name: stream
        sse: {path: "/api/stream/${task}", until: {field: /kind, in: [done, error]}}
phases:
  - {name: warm, executor: constant-vus, vus: 5, duration: 1m}
  - {name: peak, executor: constant-arrival-rate, rate: 50/s, duration: 2m, max_in_flight: 20}
faults:
  - {at: 90s, duration: 30s, http: {start: {method: POST, url: /admin/faults, json: {error_rate: 1.0}}, end: {method: DELETE, url: /admin/faults}}}
thresholds:
  - "p99(chat.stream.e2e) < 5s"
  - "error_rate < 1%"
  - {threshold: "p95(chat.send.latency) <= 200ms", abort_on_fail: true, delay_abort_eval: 10s}
sample: {url: /api/system, every: 1s, watch: [/degradation_level]}
)";
}  // namespace

TEST(ScenarioLoader, LoadsAFullScenario) {
  Diagnostics diag("good.yaml");
  auto sc = load_scenario_text(kGood, "good.yaml", 0.01, diag);
  ASSERT_TRUE(sc) << diag.format();
  EXPECT_EQ(sc->name, "chat");
  EXPECT_EQ(sc->users, 10);
  EXPECT_EQ(sc->agents_per_user, 2);
  ASSERT_EQ(sc->phases.size(), 2u);
  EXPECT_EQ(sc->phases[0].executor->duration(), 600ms);  // 1m × 0.01
  EXPECT_EQ(sc->phases[1].start, 600ms);
  EXPECT_EQ(sc->duration(), 1800ms);
  EXPECT_EQ(sc->flows[0].think_time.lo, 10ms);
  EXPECT_EQ(sc->faults[0].at, 900ms);
  EXPECT_EQ(sc->faults[0].duration, 300ms);
  ASSERT_EQ(sc->thresholds.size(), 3u);
  EXPECT_DOUBLE_EQ(sc->thresholds[0].value, 5e6);  // µs
  EXPECT_DOUBLE_EQ(sc->thresholds[1].value, 0.01);
  EXPECT_TRUE(sc->thresholds[2].abort_on_fail);
  EXPECT_EQ(sc->flows[0].steps[1].kind, Step::Kind::kSse);
}

TEST(ScenarioLoader, RendersJsonBodiesWithTypesAndEscaping) {
  Diagnostics diag("good.yaml");
  auto sc = load_scenario_text(kGood, "good.yaml", 1, diag);
  ASSERT_TRUE(sc) << diag.format();
  std::vector<std::pair<std::string, std::string>> iter_vars{{"agent", "ag-\"1\""}};
  TemplateContext ctx;
  ctx.iter_vars = &iter_vars;
  ctx.prompt = [](void*) -> std::string_view { return "line1\nline2"; };
  std::string out;
  EXPECT_FALSE(render(*sc->flows[0].steps[0].request.body, ctx, out));
  EXPECT_EQ(out, R"({"agentId":"ag-\"1\"","message":"line1\nline2","n":3,"ok":true,"q":"7"})");
}

TEST(ScenarioLoader, ReportsEveryProblemWithLineAndField) {
  const char* bad = R"(
name: broken
flows:
  chat:
    steps:
      - name: send
        request: {method: FETCH, path: api/chat}
      - name: stream
        sse: {path: "/api/stream/${task}"}
phases:
  - {executor: constant-arrival-rate, rate: fast, duration: 10s}
  - {executor: warp-drive, duration: 10s}
thresholds:
  - "p99(chat.nope.e2e) < 5s"
  - "p99(chat.send.latency) < soon"
)";
  Diagnostics diag("bad.yaml");
  auto sc = load_scenario_text(bad, "bad.yaml", 1, diag);
  EXPECT_FALSE(sc);
  const std::string text = diag.format();
  EXPECT_NE(text.find("bad.yaml:7:"), std::string::npos) << text;
  EXPECT_NE(text.find("flows.chat.steps[0].request.method: 'FETCH' is not an HTTP method"), std::string::npos) << text;
  EXPECT_NE(text.find("flows.chat.steps[0].request.path: 'api/chat' must start with '/'"), std::string::npos) << text;
  EXPECT_NE(text.find("variable '${task}' is not captured"), std::string::npos) << text;
  EXPECT_NE(text.find("flows.chat.steps[1].sse.until: missing"), std::string::npos) << text;
  EXPECT_NE(text.find("phases[0].rate: 'fast' is not a positive rate"), std::string::npos) << text;
  EXPECT_NE(text.find("unknown executor 'warp-drive'"), std::string::npos) << text;
  EXPECT_NE(text.find("no metric 'chat.nope.e2e'"), std::string::npos) << text;
  EXPECT_NE(text.find("'soon' is not a duration"), std::string::npos) << text;
  EXPECT_GE(diag.items().size(), 8u) << text;
}

TEST(ScenarioLoader, ReportsYamlSyntaxErrorsWithTheLine) {
  Diagnostics diag("syntax.yaml");
  EXPECT_FALSE(load_scenario_text("name: x\nflows: {a: [\n", "syntax.yaml", 1, diag));
  ASSERT_EQ(diag.items().size(), 1u);
  EXPECT_NE(diag.format().find("YAML syntax"), std::string::npos);
}

TEST(Thresholds, ParsesAggregatesOperatorsAndUnits) {
  std::string err;
  auto t = parse_threshold("p99.9(a.b.latency) <= 250ms", &err);
  ASSERT_TRUE(t) << err;
  EXPECT_EQ(t->agg, Threshold::Agg::kPercentile);
  EXPECT_DOUBLE_EQ(t->percentile, 99.9);
  EXPECT_EQ(t->op, Threshold::Op::kLe);
  EXPECT_DOUBLE_EQ(t->value, 250000);
  t = parse_threshold("dropped_iterations == 0", &err);
  ASSERT_TRUE(t) << err;
  EXPECT_EQ(t->op, Threshold::Op::kEq);
  EXPECT_FALSE(parse_threshold("p99(x.y.z) 5s", &err));
  EXPECT_FALSE(parse_threshold("median(x.y.z) < 5s", &err));
  EXPECT_FALSE(parse_threshold("vibes < 3", &err));
}

TEST(Template, RendersBuiltinsAndCapturesAndReportsMissing) {
  std::string err;
  auto t = Template::compile("/u/${user.id}/v${vu}/i${iter}/${x}", Escape::kNone, &err);
  ASSERT_TRUE(t) << err;
  std::vector<std::pair<std::string, std::string>> user_vars{{"x", "old"}}, iter_vars{{"x", "new"}};
  TemplateContext ctx;
  ctx.user_id = "u7";
  ctx.vu = 3;
  ctx.iter = 9;
  ctx.user_vars = &user_vars;
  ctx.iter_vars = &iter_vars;
  std::string out;
  EXPECT_FALSE(render(*t, ctx, out));
  EXPECT_EQ(out, "/u/u7/v3/i9/new");
  iter_vars.clear();
  user_vars.clear();
  EXPECT_EQ(render(*t, ctx, out), "x");
  EXPECT_FALSE(Template::compile("${unclosed", Escape::kNone, &err));
  EXPECT_FALSE(Template::compile("${}", Escape::kNone, &err));
  EXPECT_FALSE(Template::compile("${env.AGENTLAB_SURELY_UNSET_VAR}", Escape::kNone, &err));
}

namespace {
// A minimal scenario with the given faults block.
std::string with_faults(const std::string& faults) {
  return R"(
name: chaos
flows: {f: {steps: [{name: get, request: {path: /x}}]}}
phases: [{executor: constant-vus, vus: 1, duration: 1m}]
faults:
)" + faults;
}
}  // namespace

TEST(ScenarioLoader, ParsesStackFaults) {
  Diagnostics diag("chaos.yaml");
  auto sc = load_scenario_text(with_faults(R"(
  - {name: k, at: 10s, action: process.kill, role: worker, signal: sigterm, count: 2}
  - {name: k2, at: 20s, duration: 5s, action: process.kill, role: worker}
  - {name: r, at: 30s, action: service.restart, service: postgres}
  - {name: p, at: 40s, duration: 5s, action: proxy.down, proxy: redis}
  - {name: q, at: 40s, duration: 5s, action: proxy.down, proxy: redis, url: "http://127.0.0.1:8474"}
)"), "chaos.yaml", 0.5, diag);
  ASSERT_TRUE(sc) << diag.format();
  ASSERT_EQ(sc->faults.size(), 5u);
  const Fault& k = sc->faults[0];
  EXPECT_EQ(k.kind, Fault::Kind::kStack);
  ASSERT_TRUE(k.stack);
  EXPECT_EQ(k.stack->kind, StackAction::Kind::kProcessKill);
  EXPECT_EQ(k.stack->role, "worker");
  EXPECT_EQ(k.stack->signal, SIGTERM);
  EXPECT_EQ(k.stack->signal_name, "TERM");
  EXPECT_EQ(k.stack->count, 2);
  EXPECT_EQ(k.at, 5s);
  EXPECT_EQ(k.duration, 0s);  // no duration: the restart follows at once
  EXPECT_EQ(k.line, 7);
  EXPECT_EQ(sc->faults[1].stack->signal, SIGKILL);  // the default
  EXPECT_EQ(sc->faults[1].stack->count, 1);
  EXPECT_EQ(sc->faults[1].duration, 2500ms);
  EXPECT_EQ(sc->faults[2].stack->kind, StackAction::Kind::kServiceRestart);
  EXPECT_EQ(sc->faults[2].stack->service, "postgres");
  EXPECT_EQ(sc->faults[3].proxy, "redis");
  EXPECT_FALSE(sc->faults[3].proxy_url_given);
  EXPECT_EQ(sc->faults[3].http_start->url, "/proxies/redis");  // the embedded chaos proxy's API
  EXPECT_TRUE(sc->faults[4].proxy_url_given);
  EXPECT_EQ(sc->faults[4].http_start->url, "http://127.0.0.1:8474/proxies/redis");
}

TEST(ScenarioLoader, ReportsBadStackFaultsWithLineFieldAndValue) {
  Diagnostics diag("chaos.yaml");
  auto sc = load_scenario_text(with_faults(R"(
  - {at: 10s, action: process.kill, role: scheduler}
  - {at: 10s, action: process.kill, role: worker, signal: BOOM, count: 0}
  - {at: 10s, action: service.restart, service: mysql}
  - {at: 10s, action: service.restart, service: redis, signal: KILL}
  - {at: 10s, action: process.kill}
)"), "chaos.yaml", 1.0, diag);
  EXPECT_FALSE(sc);
  const std::string text = diag.format();
  EXPECT_NE(text.find("chaos.yaml:7:"), std::string::npos) << text;
  EXPECT_NE(text.find("faults[0].role: 'scheduler' is not worker or gateway"), std::string::npos) << text;
  EXPECT_NE(text.find("chaos.yaml:8:"), std::string::npos) << text;
  EXPECT_NE(text.find("faults[1].signal: 'BOOM' is not a signal"), std::string::npos) << text;
  EXPECT_NE(text.find("faults[1].count"), std::string::npos) << text;
  EXPECT_NE(text.find("faults[2].service: 'mysql' is not redis or postgres"), std::string::npos) << text;
  EXPECT_NE(text.find("faults[3].signal: not a field of service.restart"), std::string::npos) << text;
  EXPECT_NE(text.find("faults[4].role"), std::string::npos) << text;
  EXPECT_EQ(diag.items().size(), 6u) << text;
}
