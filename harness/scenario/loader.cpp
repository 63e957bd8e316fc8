// YAML → Scenario, reporting every problem with file, line and field.
#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

#include <boost/beast/http/verb.hpp>

#include "common/text/json_util.hpp"
#include "harness/scenario/scenario.hpp"

namespace lab::harness {

namespace bhttp = boost::beast::http;

bool EventMatch::matches(std::string_view event, std::string_view data) const {
  switch (by) {
    case By::kAny: return true;
    case By::kEvent: return std::find(values.begin(), values.end(), event) != values.end();
    case By::kData: return std::find(values.begin(), values.end(), data) != values.end();
    case By::kField: {
      // Most events of a stream cannot match (a text chunk never contains "done" as a value):
      // skip the JSON parse unless one of the values appears in the text at all.
      if (!values.empty() &&
          std::none_of(values.begin(), values.end(), [&](const std::string& v) { return data.find(v) != std::string_view::npos; }))
        return false;
      auto doc = json::parse(data);
      if (!doc) return false;
      const auto* v = json::at_pointer(*doc, pointer);
      if (!v) return false;
      if (values.empty()) return !v->is_null() && !(v->is_string() && v->get_string().empty());
      const std::string text = json::to_text(*v);
      return std::find(values.begin(), values.end(), text) != values.end();
    }
  }
  return false;
}

bool SseSpec::terminal_is_error(std::string_view event, std::string_view data) const {
  std::string value(until.by == EventMatch::By::kData ? data : event);
  if (until.by == EventMatch::By::kField)
    if (auto doc = json::parse(data))
      if (const auto* v = json::at_pointer(*doc, until.pointer)) value = json::to_text(*v);
  return std::find(error_values.begin(), error_values.end(), value) != error_values.end();
}

Nanos Scenario::duration() const {
  Nanos end{0};
  for (const auto& p : phases) end = std::max(end, p.start + p.executor->duration());
  return end;
}

std::vector<std::string> Scenario::metric_names() const {
  std::vector<std::string> names;
  auto add_step = [&](const std::string& flow, const Step& s) {
    const std::string base = flow + "." + s.name + ".";
    names.push_back(base + "latency");
    names.push_back(base + "ttfb");
    if (s.kind == Step::Kind::kSse) {
      names.push_back(base + "ttft");
      names.push_back(base + "itl");
      names.push_back(base + "e2e");
    }
  };
  for (const auto& s : setup) add_step("setup", s);
  for (const auto& f : flows) {
    for (const auto& s : f.steps) add_step(f.name, s);
    names.push_back(f.name + ".iteration.duration");
  }
  names.push_back("generator.lateness");
  names.push_back("generator.queue_wait");
  return names;
}

namespace {

// Scalar typing for json: bodies. yaml-cpp tags quoted scalars "!" and plain ones "?".
bool plain_scalar_is_json_literal(const std::string& s) {
  if (s == "true" || s == "false" || s == "null") return true;
  if (s.empty()) return false;
  double d;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), d);
  return ec == std::errc() && ptr == s.data() + s.size();
}

// Writes a YAML node as JSON text; string contents are JSON-escaped but ${...} is kept so the
// text compiles into a template whose substitutions are escaped at render time.
void yaml_to_json_template(const YAML::Node& n, std::string& out) {
  switch (n.Type()) {
    case YAML::NodeType::Null: out += "null"; break;
    case YAML::NodeType::Scalar:
      if (n.Tag() != "!" && plain_scalar_is_json_literal(n.Scalar())) {
        out += n.Scalar();
      } else {
        out += '"';
        json::append_escaped(out, n.Scalar());
        out += '"';
      }
      break;
    case YAML::NodeType::Sequence: {
      out += '[';
      bool first = true;
      for (const auto& e : n) {
        if (!first) out += ',';
        first = false;
        yaml_to_json_template(e, out);
      }
      out += ']';
      break;
    }
    case YAML::NodeType::Map: {
      out += '{';
      bool first = true;
      for (auto it = n.begin(); it != n.end(); ++it) {
        if (!first) out += ',';
        first = false;
        out += '"';
        json::append_escaped(out, it->first.Scalar());
        out += "\":";
        yaml_to_json_template(it->second, out);
      }
      out += '}';
      break;
    }
    case YAML::NodeType::Undefined: break;
  }
}

std::optional<bhttp::verb> parse_method(const std::string& m) {
  auto v = bhttp::string_to_verb(m);
  if (v == bhttp::verb::unknown) return std::nullopt;
  return v;
}

class Loader {
 public:
  Loader(Diagnostics& diag, double time_scale) : diag_(diag), scale_(time_scale) {
    register_builtin_executors(executors_);
  }

  std::unique_ptr<Scenario> load(const YAML::Node& root, const std::string& file);

 private:
  std::optional<Template> compile(const YAML::Node& at, const std::string& field, const std::string& text,
                                  Escape escape, std::set<std::string>* known_vars) {
    std::string error;
    auto t = Template::compile(text, escape, &error);
    if (!t) {
      diag_.error(at, field, error);
      return std::nullopt;
    }
    if (known_vars) {
      for (const auto& name : t->captured_names())
        if (!known_vars->count(name))
          diag_.error(at, field, "variable '${" + name + "}' is not captured by any earlier step "
                                 "(built-ins: user.id, user.token, vu, iter, uuid, prompt, env.NAME)");
    }
    return t;
  }

  std::optional<RequestSpec> parse_request(const YAML::Node& n, const std::string& path,
                                           std::set<std::string>& vars, bool default_get);
  std::optional<EventMatch> parse_match(const YAML::Node& n, const std::string& path);
  std::optional<Step> parse_step(const YAML::Node& n, const std::string& path, std::set<std::string>& vars);
  void parse_steps(const YAML::Node& list, const std::string& path, std::set<std::string>& vars,
                   std::vector<Step>& out);
  std::optional<HttpCall> parse_http_call(const YAML::Node& n, const std::string& path);
  std::optional<StackAction> parse_stack_action(Fields& f, const std::string& action);

  Diagnostics& diag_;
  double scale_;
  ExecutorRegistry executors_;
};

std::optional<RequestSpec> Loader::parse_request(const YAML::Node& n, const std::string& path,
                                                 std::set<std::string>& vars, bool default_get) {
  if (!n.IsMap()) {
    diag_.error(n, path, "expected a mapping {method, path, headers, json|body, timeout}");
    return std::nullopt;
  }
  Fields f(n, path, diag_, scale_);
  f.reject_unknown({"method", "path", "headers", "json", "body", "timeout", "until", "content",
                    "error_in"});
  RequestSpec r;
  bool ok = true;
  auto method = f.string("method", false);
  if (method) {
    auto m = parse_method(*method);
    if (!m) {
      diag_.error(n["method"], f.path("method"), "'" + *method + "' is not an HTTP method");
      ok = false;
    } else {
      r.method = *m;
    }
  } else {
    r.method = default_get ? bhttp::verb::get : bhttp::verb::post;
  }
  auto p = f.string("path", true);
  if (p) {
    if (p->empty() || (p->front() != '/' && p->front() != '$')) {
      diag_.error(n["path"], f.path("path"), "'" + *p + "' must start with '/' (it is relative to the target)");
      ok = false;
    } else if (auto t = compile(n["path"], f.path("path"), *p, Escape::kNone, &vars)) {
      r.path = std::move(*t);
    } else {
      ok = false;
    }
  } else {
    ok = false;
  }
  if (const YAML::Node h = n["headers"]; h.IsDefined()) {
    if (!h.IsMap()) {
      diag_.error(h, f.path("headers"), "expected a mapping of header name to value");
      ok = false;
    } else {
      for (auto it = h.begin(); it != h.end(); ++it) {
        auto t = compile(it->second, f.path("headers") + "." + it->first.Scalar(), it->second.Scalar(),
                         Escape::kNone, &vars);
        if (t) r.headers.emplace_back(it->first.Scalar(), std::move(*t));
        else ok = false;
      }
    }
  }
  if (f.has("json") && f.has("body")) {
    diag_.error(n, path, "give either json: or body:, not both");
    ok = false;
  } else if (const YAML::Node j = n["json"]; j.IsDefined()) {
    std::string text;
    yaml_to_json_template(j, text);
    if (auto t = compile(j, f.path("json"), text, Escape::kJsonString, &vars)) {
      r.body = std::move(*t);
      r.content_type = "application/json";
    } else {
      ok = false;
    }
  } else if (auto body = f.string("body", false)) {
    if (auto t = compile(n["body"], f.path("body"), *body, Escape::kNone, &vars)) {
      r.body = std::move(*t);
      r.content_type = "text/plain";
    } else {
      ok = false;
    }
  }
  if (f.has("timeout")) {
    auto t = f.duration("timeout", true, false);
    if (t) r.timeout = *t;
    else ok = false;
  }
  if (!ok) return std::nullopt;
  return r;
}

std::optional<EventMatch> Loader::parse_match(const YAML::Node& n, const std::string& path) {
  if (!n.IsMap()) {
    diag_.error(n, path, "expected {event: NAME} or {data: TEXT} or {field: /pointer, in: [values]}");
    return std::nullopt;
  }
  Fields f(n, path, diag_, scale_);
  f.reject_unknown({"event", "data", "field", "in"});
  EventMatch m;
  auto values_of = [&](const YAML::Node& v, const std::string& field) -> std::optional<std::vector<std::string>> {
    std::vector<std::string> out;
    if (v.IsScalar()) out.push_back(v.Scalar());
    else if (v.IsSequence()) for (const auto& e : v) out.push_back(e.Scalar());
    else {
      diag_.error(v, field, "expected a value or a list of values");
      return std::nullopt;
    }
    return out;
  };
  int given = f.has("event") + f.has("data") + f.has("field");
  if (given != 1) {
    diag_.error(n, path, "give exactly one of event:, data:, field:");
    return std::nullopt;
  }
  if (f.has("event")) {
    auto v = values_of(n["event"], f.path("event"));
    if (!v) return std::nullopt;
    m.by = EventMatch::By::kEvent;
    m.values = *v;
  } else if (f.has("data")) {
    auto v = values_of(n["data"], f.path("data"));
    if (!v) return std::nullopt;
    m.by = EventMatch::By::kData;
    m.values = *v;
  } else {
    auto ptr = f.string("field", true);
    if (!ptr) return std::nullopt;
    if (!ptr->empty() && ptr->front() != '/') {
      diag_.error(n["field"], f.path("field"), "'" + *ptr + "' is not a JSON pointer (it starts with '/')");
      return std::nullopt;
    }
    m.by = EventMatch::By::kField;
    m.pointer = *ptr;
    if (f.has("in")) {  // without in: the field matches when present, non-null and non-empty
      auto v = values_of(n["in"], f.path("in"));
      if (!v) return std::nullopt;
      m.values = *v;
    }
  }
  return m;
}

std::optional<Step> Loader::parse_step(const YAML::Node& n, const std::string& path,
                                       std::set<std::string>& vars) {
  if (!n.IsMap()) {
    diag_.error(n, path, "expected a step mapping {name, request|sse, expect, capture}");
    return std::nullopt;
  }
  Fields f(n, path, diag_, scale_);
  f.reject_unknown({"name", "request", "sse", "expect", "capture"});
  Step s;
  s.line = n.Mark().line + 1;
  bool ok = true;
  auto name = f.string("name", true);
  if (name) {
    if (name->empty() || name->find_first_of(". ") != std::string::npos) {
      diag_.error(n["name"], f.path("name"), "'" + *name + "' must be non-empty with no '.' or spaces (it names metrics)");
      ok = false;
    }
    s.name = *name;
  } else {
    ok = false;
  }
  const bool has_request = f.has("request"), has_sse = f.has("sse");
  if (has_request == has_sse) {
    diag_.error(n, path, "a step has exactly one of request: or sse:");
    return std::nullopt;
  }
  if (has_request) {
    auto r = parse_request(n["request"], f.path("request"), vars, true);
    if (r) s.request = std::move(*r);
    else ok = false;
  } else {
    s.kind = Step::Kind::kSse;
    const YAML::Node sse = n["sse"];
    auto r = parse_request(sse, f.path("sse"), vars, true);
    if (r) s.request = std::move(*r);
    else ok = false;
    if (sse.IsMap()) {
      if (sse["until"].IsDefined()) {
        auto m = parse_match(sse["until"], f.path("sse") + ".until");
        if (m) s.sse.until = std::move(*m);
        else ok = false;
      } else {
        diag_.error(sse, f.path("sse") + ".until", "missing: how to recognise the terminal event, e.g. "
                                                   "{field: /kind, in: [done, error]} or {data: \"[DONE]\"}");
        ok = false;
      }
      if (sse["content"].IsDefined()) {
        auto m = parse_match(sse["content"], f.path("sse") + ".content");
        if (m) s.sse.content = std::move(*m);
        else ok = false;
      }
      if (const YAML::Node e = sse["error_in"]; e.IsDefined()) {
        s.sse.error_values.clear();
        if (e.IsSequence()) for (const auto& v : e) s.sse.error_values.push_back(v.Scalar());
        else s.sse.error_values.push_back(e.Scalar());
      }
    }
  }
  if (const YAML::Node e = n["expect"]; e.IsDefined()) {
    Fields ef(e, f.path("expect"), diag_, scale_);
    ef.reject_unknown({"status", "body_contains"});
    if (const YAML::Node st = e["status"]; st.IsDefined()) {
      auto add = [&](const YAML::Node& v) {
        unsigned code = 0;
        const std::string& text = v.Scalar();
        auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), code);
        if (ec != std::errc() || ptr != text.data() + text.size() || code < 100 || code > 599) {
          diag_.error(v, ef.path("status"), "'" + text + "' is not an HTTP status code");
          ok = false;
        } else {
          s.expect_status.push_back(code);
        }
      };
      if (st.IsSequence()) for (const auto& v : st) add(v);
      else add(st);
    }
    if (auto bc = ef.string("body_contains", false)) s.expect_body_contains = *bc;
  }
  if (const YAML::Node c = n["capture"]; c.IsDefined()) {
    if (!c.IsMap()) {
      diag_.error(c, f.path("capture"), "expected a mapping of variable name to JSON pointer");
      ok = false;
    } else {
      for (auto it = c.begin(); it != c.end(); ++it) {
        const std::string var = it->first.Scalar(), ptr = it->second.Scalar();
        if (!ptr.empty() && ptr.front() != '/') {
          diag_.error(it->second, f.path("capture") + "." + var, "'" + ptr + "' is not a JSON pointer (it starts with '/')");
          ok = false;
          continue;
        }
        if (var.empty() || var.find_first_of(". ${}") != std::string::npos) {
          diag_.error(it->first, f.path("capture") + "." + var, "bad variable name");
          ok = false;
          continue;
        }
        s.capture.emplace_back(var, ptr);
        vars.insert(var);
      }
    }
  }
  if (!ok) return std::nullopt;
  return s;
}

void Loader::parse_steps(const YAML::Node& list, const std::string& path, std::set<std::string>& vars,
                         std::vector<Step>& out) {
  if (!list.IsSequence()) {
    diag_.error(list, path, "expected a list of steps");
    return;
  }
  std::set<std::string> names;
  for (std::size_t i = 0; i < list.size(); ++i) {
    auto s = parse_step(list[i], path + "[" + std::to_string(i) + "]", vars);
    if (!s) continue;
    if (!names.insert(s->name).second)
      diag_.error(list[i]["name"], path + "[" + std::to_string(i) + "].name", "duplicate step name '" + s->name + "'");
    out.push_back(std::move(*s));
  }
}

std::optional<HttpCall> Loader::parse_http_call(const YAML::Node& n, const std::string& path) {
  Fields f(n, path, diag_, scale_);
  f.reject_unknown({"method", "url", "json", "body"});
  HttpCall call;
  auto url = f.string("url", true);
  auto method = f.string("method", false);
  if (!url) return std::nullopt;
  call.url = *url;
  if (method) {
    auto m = parse_method(*method);
    if (!m) {
      diag_.error(n["method"], f.path("method"), "'" + *method + "' is not an HTTP method");
      return std::nullopt;
    }
    call.method = *m;
  }
  if (const YAML::Node j = n["json"]; j.IsDefined()) {
    yaml_to_json_template(j, call.body);
    call.content_type = "application/json";
  } else if (auto b = f.string("body", false)) {
    call.body = *b;
    call.content_type = "text/plain";
  }
  return call;
}

// process.kill {role, signal, count} / service.restart {service}.
std::optional<StackAction> Loader::parse_stack_action(Fields& f, const std::string& action) {
  const YAML::Node& n = f.node();
  StackAction a;
  bool ok = true;
  if (action == "service.restart") {
    a.kind = StackAction::Kind::kServiceRestart;
    for (const char* other : {"role", "signal", "count"})
      if (f.has(other)) {
        diag_.error(n[other], f.path(other), "not a field of service.restart (service: redis|postgres)");
        ok = false;
      }
    auto service = f.string("service", true);
    if (!service) return std::nullopt;
    if (*service != "redis" && *service != "postgres") {
      diag_.error(n["service"], f.path("service"), "'" + *service + "' is not redis or postgres");
      return std::nullopt;
    }
    a.service = *service;
    return ok ? std::optional<StackAction>(a) : std::nullopt;
  }
  a.kind = StackAction::Kind::kProcessKill;
  if (f.has("service")) {
    diag_.error(n["service"], f.path("service"), "not a field of process.kill (role, signal, count)");
    ok = false;
  }
  if (auto role = f.string("role", true)) {
    if (*role != "worker" && *role != "gateway") {
      diag_.error(n["role"], f.path("role"), "'" + *role + "' is not worker or gateway");
      ok = false;
    }
    a.role = *role;
  } else {
    ok = false;
  }
  a.signal_name = "KILL";
  if (auto sig = f.string("signal", false)) {
    static constexpr std::pair<std::string_view, int> kSignals[] = {
        {"KILL", SIGKILL}, {"TERM", SIGTERM}, {"INT", SIGINT},   {"QUIT", SIGQUIT}, {"HUP", SIGHUP},
        {"ABRT", SIGABRT}, {"SEGV", SIGSEGV}, {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"STOP", SIGSTOP}};
    std::string name = *sig;
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    if (name.starts_with("SIG")) name.erase(0, 3);
    auto it = std::find_if(std::begin(kSignals), std::end(kSignals), [&](const auto& kv) { return kv.first == name; });
    if (it == std::end(kSignals)) {
      diag_.error(n["signal"], f.path("signal"), "'" + *sig + "' is not a signal this action sends "
                                                 "(KILL, TERM, INT, QUIT, HUP, ABRT, SEGV, USR1, USR2, STOP)");
      ok = false;
    } else {
      a.signal_name = name;
      a.signal = it->second;
    }
  }
  if (f.has("count")) {
    if (auto c = f.integer("count", true, 1)) a.count = static_cast<int>(std::min<std::int64_t>(*c, 1'000'000));
    else ok = false;
  }
  return ok ? std::optional<StackAction>(a) : std::nullopt;
}

std::unique_ptr<Scenario> Loader::load(const YAML::Node& root, const std::string& file) {
  auto sc = std::make_unique<Scenario>();
  sc->file = file;
  sc->time_scale = scale_;
  if (!root.IsMap()) {
    diag_.error(root, "", "a scenario is a YAML mapping (name, population, flows, phases, ...)");
    return nullptr;
  }
  Fields top(root, "", diag_, scale_);
  top.reject_unknown({"name", "description", "tags", "target", "system", "population", "auth", "prompts",
                      "http", "setup", "flows", "phases", "faults", "thresholds", "sample", "samples",
                      "ledger"});
  if (auto name = top.string("name", true)) sc->name = *name;
  if (auto d = top.string("description", false)) sc->description = *d;
  if (auto t = top.string("target", false)) sc->target = *t;
  // The node itself, not a clone: it keeps the document alive and its marks (lines) with it.
  if (root["system"].IsDefined()) sc->system = root["system"];

  if (const YAML::Node pop = root["population"]; pop.IsDefined()) {
    Fields f(pop, "population", diag_, scale_);
    f.reject_unknown({"users", "agents_per_user"});
    if (auto u = f.integer("users", true, 1)) sc->users = *u;
    if (f.has("agents_per_user"))
      if (auto a = f.integer("agents_per_user", true, 1)) sc->agents_per_user = *a;
  }
  if (const YAML::Node auth = root["auth"]; auth.IsDefined()) {
    Fields f(auth, "auth", diag_, scale_);
    f.reject_unknown({"secret", "secret_env", "ttl"});
    if (auto s = f.string("secret", false)) sc->auth_secret = *s;
    if (auto env = f.string("secret_env", false)) {
      const char* v = std::getenv(env->c_str());
      if (!v || !*v) diag_.error(auth["secret_env"], "auth.secret_env", "environment variable " + *env + " is not set");
      else sc->auth_secret = v;
    }
    if (sc->auth_secret.empty() && !f.has("secret_env"))
      diag_.error(auth, "auth", "needs secret: or secret_env: (the HS256 key for ${user.token})");
    if (f.has("ttl"))
      if (auto t = f.duration("ttl", true, false)) sc->token_ttl = *t;
  }
  if (const YAML::Node pr = root["prompts"]; pr.IsDefined()) {
    Fields f(pr, "prompts", diag_, scale_);
    f.reject_unknown({"list", "file", "words"});
    if (const YAML::Node l = pr["list"]; l.IsDefined()) {
      if (!l.IsSequence() || l.size() == 0) diag_.error(l, "prompts.list", "expected a non-empty list of strings");
      else for (const auto& p : l) sc->prompts.list.push_back(p.Scalar());
    }
    if (auto path = f.string("file", false)) {
      std::string full = *path;
      if (!full.empty() && full.front() != '/') {
        auto slash = file.rfind('/');
        if (slash != std::string::npos) full = file.substr(0, slash + 1) + full;
      }
      std::ifstream in(full);
      if (!in) {
        diag_.error(pr["file"], "prompts.file", "cannot read '" + full + "'");
      } else {
        std::string line;
        while (std::getline(in, line))
          if (!line.empty()) sc->prompts.list.push_back(line);
        if (sc->prompts.list.empty()) diag_.error(pr["file"], "prompts.file", "'" + full + "' has no prompts (one per line)");
      }
    }
    if (f.has("words"))
      if (auto w = f.int_range("words", true)) sc->prompts.words = *w;
  }
  if (const YAML::Node h = root["http"]; h.IsDefined()) {
    Fields f(h, "http", diag_, scale_);
    f.reject_unknown({"timeout", "connect_timeout"});
    if (f.has("timeout")) if (auto t = f.duration("timeout", true, false)) sc->request_timeout = *t;
    if (f.has("connect_timeout")) if (auto t = f.duration("connect_timeout", true, false)) sc->connect_timeout = *t;
  }

  std::set<std::string> user_vars;
  if (const YAML::Node setup = root["setup"]; setup.IsDefined()) parse_steps(setup, "setup", user_vars, sc->setup);

  const YAML::Node flows = root["flows"];
  if (!flows.IsDefined()) {
    diag_.error(root, "flows", "missing (at least one flow of steps)");
  } else if (!flows.IsMap() || flows.size() == 0) {
    diag_.error(flows, "flows", "expected a mapping of flow name to {think_time, weight, steps}");
  } else {
    for (auto it = flows.begin(); it != flows.end(); ++it) {
      const std::string fname = it->first.Scalar();
      const std::string path = "flows." + fname;
      Flow flow;
      flow.name = fname;
      if (fname.find_first_of(". ") != std::string::npos)
        diag_.error(it->first, path, "flow names may not contain '.' or spaces (they name metrics)");
      Fields f(it->second, path, diag_, scale_);
      f.reject_unknown({"think_time", "weight", "steps"});
      if (f.has("think_time")) if (auto t = f.duration_range("think_time", true, true)) flow.think_time = *t;
      if (f.has("weight")) if (auto w = f.number("weight", true, 0)) flow.weight = *w;
      std::set<std::string> vars = user_vars;
      if (!it->second["steps"].IsDefined()) diag_.error(it->second, path + ".steps", "missing (a list of steps)");
      else parse_steps(it->second["steps"], path + ".steps", vars, flow.steps);
      if (fname == "setup" || fname == "generator") diag_.error(it->first, path, "'" + fname + "' is a reserved name");
      sc->flows.push_back(std::move(flow));
    }
  }

  const YAML::Node phases = root["phases"];
  if (!phases.IsDefined()) {
    diag_.error(root, "phases", "missing (at least one phase with an executor)");
  } else if (!phases.IsSequence() || phases.size() == 0) {
    diag_.error(phases, "phases", "expected a non-empty list of phases");
  } else {
    Nanos start{0};
    for (std::size_t i = 0; i < phases.size(); ++i) {
      const std::string path = "phases[" + std::to_string(i) + "]";
      Fields f(phases[i], path, diag_, scale_);
      if (!phases[i].IsMap()) {
        diag_.error(phases[i], path, "expected a mapping {name, executor, ...}");
        continue;
      }
      Phase p;
      p.name = f.string("name", false).value_or("phase" + std::to_string(i + 1));
      auto ex = f.string("executor", true);
      if (f.has("graceful_stop")) if (auto g = f.duration("graceful_stop", true, false)) p.graceful_stop = *g;
      if (auto flow = f.string("flow", false)) {
        auto it = std::find_if(sc->flows.begin(), sc->flows.end(), [&](const Flow& fl) { return fl.name == *flow; });
        if (it == sc->flows.end()) diag_.error(phases[i]["flow"], f.path("flow"), "no flow named '" + *flow + "'");
        else p.flow = static_cast<std::size_t>(it - sc->flows.begin());
      }
      if (!ex) continue;
      const ExecutorFactory* factory = executors_.find(*ex);
      if (!factory) {
        diag_.error(phases[i]["executor"], f.path("executor"), "unknown executor '" + *ex + "' (known: " + executors_.names() + ")");
        continue;
      }
      p.executor_name = *ex;
      p.executor = (*factory)(f);
      if (!p.executor) continue;
      p.start = start;
      start += p.executor->duration();
      sc->phases.push_back(std::move(p));
    }
  }

  const YAML::Node faults = root["faults"];
  if (faults.IsDefined()) {
    if (!faults.IsSequence()) diag_.error(faults, "faults", "expected a list of faults");
    else for (std::size_t i = 0; i < faults.size(); ++i) {
      const std::string path = "faults[" + std::to_string(i) + "]";
      Fields f(faults[i], path, diag_, scale_);
      f.reject_unknown({"name", "at", "duration", "http", "exec", "action", "rate", "status", "multiplier",
                        "after_tokens", "url", "proxy", "type", "attributes", "stream", "toxicity", "role",
                        "signal", "count", "service"});
      Fault fault;
      fault.line = faults[i].Mark().line + 1;
      fault.column = faults[i].Mark().column + 1;
      fault.name = f.string("name", false).value_or("fault" + std::to_string(i + 1));
      auto at = f.duration("at", true, true);
      if (at) fault.at = *at;
      if (f.has("duration")) if (auto d = f.duration("duration", true, true)) fault.duration = *d;
      const bool has_http = f.has("http"), has_exec = f.has("exec"), has_action = f.has("action");
      if (has_http + has_exec + has_action != 1) {
        diag_.error(faults[i], path, "a fault has exactly one action: http: {start, end}, exec: {command, undo}, "
                                     "or action: llm.errors|llm.latency|llm.hang|llm.disconnect|proxy.toxic|proxy.down|"
                                     "process.kill|service.restart");
        continue;
      }
      if (has_action) {
        const std::string action = f.string("action", true).value_or("");
        fault.kind = Fault::Kind::kLlm;
        fault.action = action;
        do {  // `break` leaves this block only
          std::string body;
          if (action == "llm.errors") {
            const double rate = f.has("rate") ? f.number("rate", true, 0).value_or(1) : 1.0;
            const auto status = f.has("status") ? f.integer("status", true, 100).value_or(503) : 503;
            body = "{\"error_rate\":" + std::to_string(rate) + ",\"status\":" + std::to_string(status) + "}";
          } else if (action == "llm.latency") {
            auto m = f.number("multiplier", true, 0);
            if (!m) break;
            body = "{\"latency_multiplier\":" + std::to_string(*m) + "}";
          } else if (action == "llm.hang") {
            const double rate = f.has("rate") ? f.number("rate", true, 0).value_or(1) : 1.0;
            body = "{\"hang_rate\":" + std::to_string(rate) + "}";
          } else if (action == "llm.disconnect") {
            const double rate = f.has("rate") ? f.number("rate", true, 0).value_or(1) : 1.0;
            const auto after = f.has("after_tokens") ? f.integer("after_tokens", true, 0).value_or(0) : 0;
            body = "{\"disconnect_rate\":" + std::to_string(rate) + ",\"disconnect_after_tokens\":" +
                   std::to_string(after) + "}";
          } else if (action == "process.kill" || action == "service.restart") {
            // The embedded stack's own processes and servers; it checks what it can do.
            fault.kind = Fault::Kind::kStack;
            fault.stack = parse_stack_action(f, action);
            if (!f.has("duration")) fault.duration = Nanos{0};
            break;
          } else if (action == "proxy.toxic" || action == "proxy.down") {
            // Toxiproxy's API (the built-in chaos proxy, or a real Toxiproxy in staging). Without
            // url: the paths stay relative; the embedded stack's chaos proxy answers them.
            auto proxy = f.string("proxy", true);
            if (!proxy) break;
            fault.proxy = *proxy;
            fault.proxy_url_given = f.has("url");
            const std::string base = f.string("url", false).value_or("");
            fault.kind = Fault::Kind::kHttp;
            HttpCall start, end;
            start.method = bhttp::verb::post;
            start.content_type = end.content_type = "application/json";
            if (action == "proxy.down") {
              start.url = end.url = base + "/proxies/" + *proxy;
              end.method = bhttp::verb::post;
              start.body = R"({"enabled":false})";
              end.body = R"({"enabled":true})";
            } else {
              auto type = f.string("type", true);
              if (!type) break;
              const std::string stream = f.string("stream", false).value_or("downstream");
              if (stream != "downstream" && stream != "upstream") {
                diag_.error(faults[i]["stream"], f.path("stream"), "'" + stream + "' is not upstream or downstream");
                break;
              }
              const double toxicity = f.has("toxicity") ? f.number("toxicity", true, 0).value_or(1) : 1.0;
              std::string attributes = "{}";
              if (const YAML::Node a = faults[i]["attributes"]; a.IsDefined()) {
                if (!a.IsMap()) {
                  diag_.error(a, f.path("attributes"), "expected a mapping of toxic attributes, e.g. {latency: 500}");
                  break;
                }
                attributes.clear();
                yaml_to_json_template(a, attributes);
              }
              std::string escaped_name;
              json::append_escaped(escaped_name, fault.name);
              start.url = base + "/proxies/" + *proxy + "/toxics";
              start.body = R"({"name":")" + escaped_name + R"(","type":")" + *type + R"(","stream":")" + stream +
                           R"(","toxicity":)" + std::to_string(toxicity) + R"(,"attributes":)" + attributes + "}";
              end.method = bhttp::verb::delete_;
              end.url = base + "/proxies/" + *proxy + "/toxics/" + fault.name;
            }
            fault.http_start = start;
            fault.http_end = end;
            break;
          } else {
            diag_.error(faults[i]["action"], f.path("action"),
                        "unknown action '" + action + "' (llm.errors, llm.latency, llm.hang, llm.disconnect, "
                        "proxy.toxic, proxy.down, process.kill, service.restart)");
            break;
          }
          HttpCall call;
          call.method = bhttp::verb::post;
          call.url = f.string("url", false).value_or("") + "/admin/faults";
          call.body = body;
          call.content_type = "application/json";
          fault.http_start = call;
        } while (false);
      } else if (has_http) {
        fault.kind = Fault::Kind::kHttp;
        fault.action = "http";
        const YAML::Node h = faults[i]["http"];
        Fields hf(h, path + ".http", diag_, scale_);
        hf.reject_unknown({"start", "end"});
        if (!h["start"].IsDefined()) diag_.error(h, path + ".http.start", "missing (the call that starts the fault)");
        else fault.http_start = parse_http_call(h["start"], path + ".http.start");
        if (h["end"].IsDefined()) fault.http_end = parse_http_call(h["end"], path + ".http.end");
      } else {
        fault.kind = Fault::Kind::kExec;
        fault.action = "exec";
        Fields ef(faults[i]["exec"], path + ".exec", diag_, scale_);
        ef.reject_unknown({"command", "undo"});
        if (auto c = ef.string("command", true)) fault.command = *c;
        if (auto u = ef.string("undo", false)) fault.undo = *u;
      }
      if (at && sc->duration().count() > 0 && fault.at > sc->duration())
        diag_.error(faults[i]["at"], f.path("at"), "starts after the last phase ends (" +
                                                       units::format_duration(sc->duration()) + ")");
      sc->faults.push_back(std::move(fault));
    }
  }

  const auto metric_names = sc->metric_names();
  const YAML::Node thresholds = root["thresholds"];
  if (thresholds.IsDefined()) {
    if (!thresholds.IsSequence()) diag_.error(thresholds, "thresholds", "expected a list");
    else for (std::size_t i = 0; i < thresholds.size(); ++i) {
      const std::string path = "thresholds[" + std::to_string(i) + "]";
      const YAML::Node t = thresholds[i];
      std::string expr;
      bool abort = false;
      Nanos delay{0};
      if (t.IsScalar()) {
        expr = t.Scalar();
      } else {
        Fields f(t, path, diag_, scale_);
        f.reject_unknown({"threshold", "abort_on_fail", "delay_abort_eval"});
        expr = f.string("threshold", true).value_or("");
        abort = f.boolean("abort_on_fail", false).value_or(false);
        if (f.has("delay_abort_eval")) if (auto d = f.duration("delay_abort_eval", true, true)) delay = *d;
      }
      if (expr.empty()) continue;
      std::string error;
      auto th = parse_threshold(expr, &error);
      if (!th) {
        diag_.error(t, path, error);
        continue;
      }
      if (th->agg != Threshold::Agg::kValue &&
          std::find(metric_names.begin(), metric_names.end(), th->metric) == metric_names.end()) {
        std::string known;
        for (const auto& m : metric_names) known += (known.empty() ? "" : ", ") + m;
        diag_.error(t, path, "no metric '" + th->metric + "' in this scenario (known: " + known + ")");
        continue;
      }
      th->abort_on_fail = abort;
      th->delay_abort_eval = delay;
      th->line = t.Mark().line + 1;
      sc->thresholds.push_back(std::move(*th));
    }
  }

  auto parse_sample = [&](const YAML::Node& n, const std::string& path) {
    Fields f(n, path, diag_, scale_);
    f.reject_unknown({"url", "every", "watch"});
    SampleSpec s;
    if (auto u = f.string("url", true)) s.url = *u;
    if (f.has("every")) if (auto e = f.duration("every", true, false)) s.every = *e;
    if (const YAML::Node w = n["watch"]; w.IsDefined()) {
      if (!w.IsSequence()) diag_.error(w, path + ".watch", "expected a list of JSON pointers or metric names");
      else for (const auto& e : w) s.watch.push_back(e.Scalar());
    }
    sc->samples.push_back(std::move(s));
  };
  if (const YAML::Node s = root["sample"]; s.IsDefined()) parse_sample(s, "sample");
  if (const YAML::Node s = root["samples"]; s.IsDefined()) {
    if (!s.IsSequence()) diag_.error(s, "samples", "expected a list");
    else for (std::size_t i = 0; i < s.size(); ++i) parse_sample(s[i], "samples[" + std::to_string(i) + "]");
  }

  if (const YAML::Node l = root["ledger"]; l.IsDefined()) {
    Fields f(l, "ledger", diag_, scale_);
    f.reject_unknown({"task"});
    if (auto var = f.string("task", true)) {
      bool captured = false, streamed = false;
      for (const auto& flow : sc->flows)
        for (const auto& step : flow.steps) {
          for (const auto& [name, ptr] : step.capture) captured = captured || name == *var;
          if (step.kind == Step::Kind::kSse) {
            auto names = step.request.path.captured_names();
            streamed = streamed || std::find(names.begin(), names.end(), *var) != names.end();
          }
        }
      if (!captured) diag_.error(l["task"], "ledger.task", "no flow step captures '" + *var + "' (the accepted task id)");
      if (!streamed) diag_.error(l["task"], "ledger.task", "no sse step's path uses '${" + *var + "}' (the task's stream)");
      sc->ledger_var = *var;
    }
  }

  if (!diag_.ok()) return nullptr;
  return sc;
}

}  // namespace

std::optional<Threshold> parse_threshold(std::string_view expr, std::string* error) {
  auto fail = [&](std::string msg) -> std::optional<Threshold> {
    if (error) *error = "threshold \"" + std::string(expr) + "\": " + msg;
    return std::nullopt;
  };
  Threshold t;
  t.expr = std::string(expr);
  // Split at the operator.
  static constexpr std::pair<std::string_view, Threshold::Op> kOps[] = {
      {"<=", Threshold::Op::kLe}, {">=", Threshold::Op::kGe}, {"==", Threshold::Op::kEq},
      {"<", Threshold::Op::kLt},  {">", Threshold::Op::kGt}};
  std::size_t op_at = std::string_view::npos, op_len = 0;
  for (auto [text, op] : kOps) {
    auto at = expr.find(text);
    if (at != std::string_view::npos && (op_at == std::string_view::npos || at < op_at || (at == op_at && text.size() > op_len))) {
      op_at = at;
      op_len = text.size();
      t.op = op;
    }
  }
  if (op_at == std::string_view::npos) return fail("no comparison (use <, <=, >, >=, ==)");
  auto trim = [](std::string_view s) {
    while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
    while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
    return s;
  };
  std::string_view lhs = trim(expr.substr(0, op_at)), rhs = trim(expr.substr(op_at + op_len));
  bool is_time = false;
  auto paren = lhs.find('(');
  if (paren != std::string_view::npos) {
    if (lhs.back() != ')') return fail("unbalanced parentheses");
    std::string_view agg = lhs.substr(0, paren);
    std::string_view inner = lhs.substr(paren + 1, lhs.size() - paren - 2);
    // p(99.9)(metric) is awkward; accept p99, p999, p99.9 and p(99.9) as the aggregator.
    if (agg == "p" ) return fail("write the percentile as p99 or p99.9");
    if (agg.starts_with("p(") ) return fail("write the percentile as p99 or p99.9");
    t.metric = std::string(trim(inner));
    if (agg == "mean" || agg == "avg") t.agg = Threshold::Agg::kMean;
    else if (agg == "min") t.agg = Threshold::Agg::kMin;
    else if (agg == "max") t.agg = Threshold::Agg::kMax;
    else if (agg == "count") t.agg = Threshold::Agg::kCount;
    else if (agg == "rate") t.agg = Threshold::Agg::kRate;
    else if (agg.size() > 1 && agg.front() == 'p') {
      std::string digits(agg.substr(1));
      double p = 0;
      if (digits == "999") p = 99.9;
      else if (digits == "9999") p = 99.99;
      else {
        auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), p);
        if (ec != std::errc() || ptr != digits.data() + digits.size()) return fail("unknown aggregate '" + std::string(agg) + "'");
      }
      if (p <= 0 || p > 100) return fail("percentile out of range");
      t.agg = Threshold::Agg::kPercentile;
      t.percentile = p;
    } else {
      return fail("unknown aggregate '" + std::string(agg) + "' (p50..p999, mean, min, max, count, rate)");
    }
    is_time = t.agg == Threshold::Agg::kPercentile || t.agg == Threshold::Agg::kMean ||
              t.agg == Threshold::Agg::kMin || t.agg == Threshold::Agg::kMax;
  } else {
    t.agg = Threshold::Agg::kValue;
    t.metric = std::string(lhs);
    static constexpr std::string_view kValues[] = {
        "error_rate", "rate", "requests", "errors", "iterations", "dropped_iterations",
        "interrupted_iterations", "ledger.lost", "ledger.duplicated", "ledger.failed",
        "ledger.completed", "ledger.accepted"};
    if (std::find(std::begin(kValues), std::end(kValues), lhs) == std::end(kValues) &&
        !lhs.starts_with("errors_by_class."))
      return fail("unknown value '" + std::string(lhs) + "' (error_rate, rate, requests, errors, iterations, "
                  "dropped_iterations, errors_by_class.CLASS, ledger.lost, ...; or AGG(flow.step.measure))");
  }
  if (rhs.empty()) return fail("no value after the comparison");
  if (is_time) {
    auto d = units::parse_duration(rhs);
    if (!d) return fail("'" + std::string(rhs) + "' is not a duration (e.g. 200ms, 5s)");
    t.value = static_cast<double>(d->count()) / 1e3;  // µs, as recorded
  } else {
    auto r = units::parse_ratio(rhs);
    if (!r) return fail("'" + std::string(rhs) + "' is not a number");
    t.value = *r;
  }
  return t;
}

std::unique_ptr<Scenario> load_scenario_text(const std::string& text, const std::string& file,
                                             double time_scale, Diagnostics& diag) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::ParserException& e) {
    diag.error_at(e.mark.line + 1, e.mark.column + 1, "", "YAML syntax: " + e.msg);
    return nullptr;
  }
  try {
    Loader loader(diag, time_scale);
    return loader.load(root, file);
  } catch (const YAML::Exception& e) {
    diag.error_at(e.mark.line + 1, e.mark.column + 1, "", e.msg);
    return nullptr;
  }
}

std::unique_ptr<Scenario> load_scenario(const std::string& path, double time_scale, Diagnostics& diag) {
  std::ifstream in(path);
  if (!in) {
    diag.error_at(0, 0, "", "cannot open scenario file");
    return nullptr;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return load_scenario_text(ss.str(), path, time_scale, diag);
}

}  // namespace lab::harness
