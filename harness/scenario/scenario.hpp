#pragma once
// The scenario model: what a YAML scenario file says, validated and compiled for the runner.
// The file format is documented in scenarios/README.md.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/beast/http/verb.hpp>
#include <yaml-cpp/yaml.h>

#include "common/text/units.hpp"
#include "harness/executors/executor.hpp"
#include "harness/scenario/template.hpp"

namespace lab::harness {

struct RequestSpec {
  boost::beast::http::verb method = boost::beast::http::verb::get;
  Template path;
  std::vector<std::pair<std::string, Template>> headers;
  std::optional<Template> body;
  std::string content_type;  ///< "application/json" for json:, "text/plain" for body:
  std::optional<Nanos> timeout;
};

/// Matches an SSE event: by event name, by exact data, or by a JSON field of the data.
struct EventMatch {
  enum class By { kAny, kEvent, kData, kField } by = By::kAny;
  std::string pointer;              ///< kField: JSON pointer into the data
  std::vector<std::string> values;  ///< event names / data strings / field values
  bool matches(std::string_view event, std::string_view data) const;
};

struct SseSpec {
  RequestSpec request;
  EventMatch until;         ///< the terminal event; the step ends when one matches
  std::vector<std::string> error_values{"error"};  ///< terminal values that count as a failure
  EventMatch content;       ///< events that count as content for ttft/itl (default: any non-terminal)
  /// For an event that `until` matched: whether its value (event name, data, or the field) is
  /// one of error_values, i.e. the stream ended as a failure.
  bool terminal_is_error(std::string_view event, std::string_view data) const;
};

struct Step {
  std::string name;
  enum class Kind { kRequest, kSse } kind = Kind::kRequest;
  RequestSpec request;  ///< for kSse: sse.request
  SseSpec sse;
  std::vector<unsigned> expect_status;  ///< empty: any 2xx
  std::optional<std::string> expect_body_contains;
  std::vector<std::pair<std::string, std::string>> capture;  ///< variable ← JSON pointer
  int line = 0;
};

struct Flow {
  std::string name;
  std::vector<Step> steps;
  units::DurationRange think_time;
  double weight = 1;
};

struct Phase {
  std::string name;
  std::unique_ptr<Executor> executor;
  std::string executor_name;
  std::optional<std::size_t> flow;  ///< index into flows; nullopt = weighted choice
  Nanos graceful_stop{std::chrono::seconds(30)};
  Nanos start{0};  ///< offset from the start of the run (sum of earlier phases)
};

struct HttpCall {
  boost::beast::http::verb method = boost::beast::http::verb::post;
  std::string url;  ///< absolute, or a path relative to the target
  std::string body;
  std::string content_type;
};

/// A fault on the embedded stack's own processes and servers (Fault::Kind::kStack).
struct StackAction {
  enum class Kind { kProcessKill, kServiceRestart } kind = Kind::kProcessKill;
  std::string role;         ///< process.kill: "worker" or "gateway" (the stack decides which it can kill)
  int signal = 9;           ///< process.kill: the signal number
  std::string signal_name;  ///< process.kill: "KILL", "TERM", ... (without SIG)
  int count = 1;            ///< process.kill: how many processes of the role
  std::string service;      ///< service.restart: "redis" or "postgres"
};

struct Fault {
  std::string name;
  Nanos at{0};
  std::optional<Nanos> duration;  ///< nullopt: stays until the end of the run
  /// kLlm: a rule for the mock LLM's admin API (POST /admin/faults at the start, DELETE
  /// /admin/faults/{id} at the end); http_start holds the POST.
  /// kStack: process.kill / service.restart, performed by the embedded stack (`stack`); with no
  /// `duration:` in the file the duration is 0 (the undo, a restart, follows at once).
  enum class Kind { kHttp, kExec, kLlm, kStack } kind = Kind::kHttp;
  std::optional<HttpCall> http_start, http_end;
  std::string command, undo;
  std::string action;  ///< the scenario's action name ("http", "exec", "llm.errors", ...)
  std::optional<StackAction> stack;
  /// proxy.toxic / proxy.down: the proxy's name; proxy_url_given says whether the file gave
  /// `url:` (else http_start/http_end hold paths relative to the chaos proxy's API, which the
  /// embedded stack supplies).
  std::string proxy;
  bool proxy_url_given = false;
  int line = 0;
  int column = 0;
};

struct Threshold {
  std::string expr;
  enum class Agg { kPercentile, kMean, kMin, kMax, kCount, kRate, kValue } agg = Agg::kValue;
  double percentile = 0;
  std::string metric;  ///< "flow.step.measure", or a counter/derived name for kValue
  enum class Op { kLt, kLe, kGt, kGe, kEq } op = Op::kLt;
  double value = 0;    ///< in the metric's unit (µs for times, ratio for error_rate)
  bool abort_on_fail = false;
  Nanos delay_abort_eval{0};
  int line = 0;
};

struct SampleSpec {
  std::string url;  ///< absolute, or a path relative to the target
  Nanos every{std::chrono::seconds(1)};
  std::vector<std::string> watch;  ///< JSON pointers (or Prometheus series names) to watch
};

struct Prompts {
  std::vector<std::string> list;
  units::IntRange words{8, 32};  ///< when list is empty: this many seeded pseudo-words
};

struct Scenario {
  std::string name;
  std::string description;
  std::string file;
  double time_scale = 1.0;
  std::optional<std::string> target;
  YAML::Node system;  ///< the embedded stack's configuration, validated by the stack
  std::int64_t users = 1;
  std::int64_t agents_per_user = 1;
  std::string auth_secret;  ///< empty: no tokens
  Nanos token_ttl{std::chrono::hours(24)};
  Prompts prompts;
  Nanos request_timeout{std::chrono::seconds(60)};
  Nanos connect_timeout{std::chrono::seconds(5)};
  std::vector<Step> setup;
  std::vector<Flow> flows;
  std::vector<Phase> phases;
  std::vector<Fault> faults;
  std::vector<Threshold> thresholds;
  std::vector<SampleSpec> samples;
  /// `ledger: {task: VAR}`: every value a step captures into VAR is an accepted task; the SSE
  /// step whose path uses ${VAR} shows its terminal event. Empty: no ledger.
  std::string ledger_var;
  Nanos duration() const;  ///< end of the last phase
  /// Every metric name the scenario can produce ("chat.send.latency", ...).
  std::vector<std::string> metric_names() const;
};

/// Loads and validates a scenario. On any problem returns nullptr with every problem in diag.
std::unique_ptr<Scenario> load_scenario(const std::string& path, double time_scale, Diagnostics& diag);
/// Same, from text (tests).
std::unique_ptr<Scenario> load_scenario_text(const std::string& text, const std::string& file,
                                             double time_scale, Diagnostics& diag);

/// Parses one threshold expression: "p99(chat.stream.e2e) < 5s", "error_rate < 1%",
/// "rate > 100", "dropped_iterations == 0". Error text in `error`.
std::optional<Threshold> parse_threshold(std::string_view expr, std::string* error);

}  // namespace lab::harness
