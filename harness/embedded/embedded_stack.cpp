#include "harness/embedded/embedded_stack.hpp"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "harness/embedded/local_services.hpp"
#include "harness/embedded/process_supervisor.hpp"
#include "mocks/llm/mock_llm.hpp"
#include "mocks/llm/profile.hpp"
#include "mocks/proxy/chaos_proxy.hpp"
#include "runtime/service/runtime.hpp"
#include "runtime/service/runtime_config.hpp"

namespace lab::harness {

namespace {

using namespace std::chrono_literals;

double ms(std::chrono::nanoseconds d) { return static_cast<double>(d.count()) / 1e6; }

// `system.llm`: either `profile: FILE` (the mock's own profile format, mocks/llm/README.md) or
// the scenario shorthand {ttft, itl, output_tokens, max_num_seqs, jitter}, or both (the
// shorthand overrides the file).
std::optional<mocks::llm::Profile> llm_profile(const YAML::Node& n, const Scenario& sc, Diagnostics& diag) {
  Fields f(n, "system.llm", diag);
  f.reject_unknown({"profile", "ttft", "itl", "output_tokens", "max_num_seqs", "max_waiting", "jitter", "threads"});
  mocks::llm::Profile profile;
  if (auto path = f.string("profile", false)) {
    std::string full = *path;
    if (!full.empty() && full.front() != '/') {
      auto slash = sc.file.rfind('/');
      if (slash != std::string::npos) full = sc.file.substr(0, slash + 1) + full;
    }
    auto loaded = mocks::llm::load_profile(full);
    if (auto* errors = std::get_if<std::vector<std::string>>(&loaded)) {
      for (const auto& e : *errors) diag.error(n["profile"], "system.llm.profile", e);
      return std::nullopt;
    }
    profile = std::get<mocks::llm::Profile>(loaded);
  }
  const double jitter = f.has("jitter") ? f.number("jitter", true, 0).value_or(0) : 0.0;
  auto dist = [&](double mean_ms) {
    return jitter > 0 ? mocks::llm::Distribution::normal(mean_ms, mean_ms * jitter)
                      : mocks::llm::Distribution::constant(mean_ms);
  };
  if (f.has("ttft"))
    if (auto d = f.duration("ttft", true, false)) {
      profile.latency.ttft_ms = dist(ms(*d));
      profile.latency.prefill_ms_per_token = 0;
    }
  if (f.has("itl"))
    if (auto d = f.duration("itl", true, false)) profile.latency.itl_ms = dist(ms(*d));
  if (f.has("output_tokens"))
    if (auto r = f.int_range("output_tokens", true)) {
      if (r->lo < 1) {
        diag.error(n["output_tokens"], "system.llm.output_tokens", "must be at least 1");
      } else {
        // A uniform-ish spread over [lo, hi]: a normal clamped to the range.
        const double lo = static_cast<double>(r->lo), hi = static_cast<double>(r->hi);
        auto d = lo == hi ? mocks::llm::Distribution::constant(lo) : mocks::llm::Distribution::normal((lo + hi) / 2, (hi - lo) / 4);
        d.min = lo;
        d.max = hi;
        profile.output.tokens = d;
      }
    }
  if (f.has("max_num_seqs"))
    if (auto v = f.integer("max_num_seqs", true, 1)) profile.load.max_num_seqs = static_cast<int>(*v);
  if (f.has("max_waiting"))
    if (auto v = f.integer("max_waiting", true, 0)) profile.load.max_waiting = static_cast<int>(*v);
  if (!diag.ok()) return std::nullopt;
  return profile;
}

// Placeholders that pass RuntimeConfig::validate until the stack's own servers have URLs.
constexpr const char* kOwnRedisPlaceholder = "redis://127.0.0.1:6379";
constexpr const char* kOwnPostgresPlaceholder = "postgresql://postgres@127.0.0.1:5432/agentlab";

// "scheme://[user@]host:port[/path]" → host:port.
std::string authority(const std::string& url) {
  auto begin = url.find("://");
  begin = begin == std::string::npos ? 0 : begin + 3;
  auto end = url.find('/', begin);
  std::string auth = url.substr(begin, end == std::string::npos ? std::string::npos : end - begin);
  if (auto at = auth.rfind('@'); at != std::string::npos) auth.erase(0, at + 1);
  return auth;
}

// The URL with its host:port replaced (user and path kept).
std::string with_authority(const std::string& url, const std::string& host_port) {
  auto begin = url.find("://");
  begin = begin == std::string::npos ? 0 : begin + 3;
  auto end = url.find('/', begin);
  const std::string auth = url.substr(begin, end == std::string::npos ? std::string::npos : end - begin);
  const auto at = auth.rfind('@');
  const std::string user = at == std::string::npos ? "" : auth.substr(0, at + 1);
  return url.substr(0, begin) + user + host_port + (end == std::string::npos ? "" : url.substr(end));
}

// A Redis key prefix no other run uses: the scenario's (or "agentlab"), the pid and the time.
std::string fresh_namespace(const std::string& base) {
  const auto now = std::chrono::system_clock::now().time_since_epoch().count();
  char suffix[48];
  std::snprintf(suffix, sizeof suffix, ".%d.%llx", static_cast<int>(::getpid()),
                static_cast<unsigned long long>(now) & 0xffffffffffULL);
  return base.substr(0, 64 - std::strlen(suffix)) + suffix;
}

std::string make_temp_dir() {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/agentlab-run.XXXXXX";
  if (!::mkdtemp(pattern.data())) throw std::runtime_error("cannot create a temporary directory: " + std::string(std::strerror(errno)));
  return pattern;
}

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::round(std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count() * 100) / 100;
}

std::string fmt_seconds(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f s", s);
  return buf;
}

// What `system:` asks for beyond the runtime's own keys.
struct Plan {
  runtime::RuntimeConfig config;
  YAML::Node runtime_yaml;       // system.runtime without the keys the stack sets itself
  bool with_runtime = false;
  bool own_redis = false, own_postgres = false;
  int worker_processes = 0;
  std::vector<std::string> proxied;  // "redis", "postgres", "llm"
  bool proxies(std::string_view name) const { return std::find(proxied.begin(), proxied.end(), name) != proxied.end(); }
};

// Reads system.worker_processes, system.chaos_proxy and the faults that need the stack.
void plan_extras(const Scenario& sc, Plan& plan, Diagnostics& diag) {
  const YAML::Node& sys = sc.system;
  const bool redis = plan.config.redis_queue(), postgres = plan.config.postgres_store();
  if (const YAML::Node n = sys["worker_processes"]; n.IsDefined()) {
    Fields f(sys, "system", diag);
    if (auto v = f.integer("worker_processes", true, 1)) {
      if (*v > 64) diag.error(n, "system.worker_processes", std::to_string(*v) + ": at most 64");
      else plan.worker_processes = static_cast<int>(*v);
    }
    if (!plan.with_runtime)
      diag.error(n, "system.worker_processes", "needs system.runtime (the processes run the reference runtime's workers)");
    else if (!redis || !postgres)
      diag.error(n, "system.worker_processes",
                 "needs backends the processes share: system.runtime.queue: redis (or redis://...) and "
                 "system.runtime.store: postgres (or postgresql://...); got queue '" +
                     plan.config.queue + "', store '" + plan.config.store + "'");
  }
  if (const YAML::Node n = sys["chaos_proxy"]; n.IsDefined()) {
    if (!n.IsSequence()) {
      diag.error(n, "system.chaos_proxy", "expected a list of upstreams: [redis, postgres, llm]");
    } else {
      for (std::size_t i = 0; i < n.size(); ++i) {
        const std::string field = "system.chaos_proxy[" + std::to_string(i) + "]";
        const std::string name = n[i].IsScalar() ? n[i].Scalar() : "";
        if (name != "redis" && name != "postgres" && name != "llm") {
          diag.error(n[i], field, "'" + name + "' is not redis, postgres or llm");
          continue;
        }
        if (plan.proxies(name)) {
          diag.error(n[i], field, "'" + name + "' is listed twice");
          continue;
        }
        if (!plan.with_runtime) {
          diag.error(n[i], field, "'" + name + "': the chaos proxy sits between the runtime and its upstreams; add system.runtime");
          continue;
        }
        if (name == "redis" && !redis)
          diag.error(n[i], field, "'redis': the runtime has no Redis (system.runtime.queue: redis or redis://...)");
        else if (name == "postgres" && !postgres)
          diag.error(n[i], field, "'postgres': the runtime has no PostgreSQL (system.runtime.store: postgres or postgresql://...)");
        plan.proxied.push_back(name);
      }
    }
  }
  for (std::size_t i = 0; i < sc.faults.size(); ++i) {
    const Fault& f = sc.faults[i];
    const std::string path = "faults[" + std::to_string(i) + "]";
    if (f.kind == Fault::Kind::kStack && f.stack) {
      const StackAction& a = *f.stack;
      if (a.kind == StackAction::Kind::kProcessKill) {
        if (a.role == "gateway") {
          diag.error_at(f.line, f.column, path + ".role",
                        "'gateway': in the embedded stack the gateway runs inside agentlab itself and cannot be "
                        "killed; kill role: worker (system.worker_processes), or aim at a deployment (--target) "
                        "and kill its gateway with an exec: fault");
        } else if (plan.worker_processes == 0) {
          diag.error_at(f.line, f.column, path + ".action",
                        "'process.kill' needs worker processes to kill: add system.worker_processes: N");
        } else if (a.count > plan.worker_processes) {
          diag.error_at(f.line, f.column, path + ".count",
                        std::to_string(a.count) + ": more than the " + std::to_string(plan.worker_processes) +
                            " worker processes (system.worker_processes)");
        }
      } else {
        const bool own = a.service == "redis" ? plan.own_redis : plan.own_postgres;
        const bool has = a.service == "redis" ? redis : postgres;
        const std::string key = a.service == "redis" ? "queue" : "store";
        if (!has)
          diag.error_at(f.line, f.column, path + ".service",
                        "'" + a.service + "': the runtime does not use " + a.service + " (system.runtime." + key + ")");
        else if (!own)
          diag.error_at(f.line, f.column, path + ".service",
                        "'" + a.service + "': service.restart needs a server the stack owns, but system.runtime." + key +
                            " is a URL ('" + (a.service == "redis" ? plan.config.queue : plan.config.store) +
                            "'); write " + key + ": " + a.service + " to let the stack start one");
      }
    }
    if (!f.proxy.empty() && !f.proxy_url_given && !plan.proxies(f.proxy))
      diag.error_at(f.line, f.column, path + ".proxy",
                    "'" + f.proxy + "': no such proxy in the embedded stack; list it in system.chaos_proxy "
                    "(redis, postgres, llm) or give url: of a Toxiproxy API");
  }
}

void write_yaml(const std::string& path, const YAML::Node& node) {
  YAML::Emitter out;
  out << node;
  std::ofstream file(path);
  file << out.c_str() << "\n";
  if (!file) throw std::runtime_error("cannot write " + path);
}

}  // namespace

std::unique_ptr<EmbeddedStack> EmbeddedStack::start(const Scenario& sc, std::uint64_t seed, Diagnostics& diag,
                                                     const EmbeddedStackOptions& options) {
  const YAML::Node& sys = sc.system;
  if (!sys.IsDefined() || sys.IsNull() || !sys.IsMap()) {
    diag.error_at(0, 0, "target",
                  "no target: give --target URL, a target: in the scenario, or a system: block for the embedded stack");
    return nullptr;
  }
  Fields f(sys, "system", diag);
  f.reject_unknown({"llm", "llm_backup", "runtime", "worker_processes", "chaos_proxy"});
  if (!sys["llm"].IsDefined()) {
    diag.error(sys, "system.llm", "missing (the mock LLM's settings, e.g. {ttft: 300ms, itl: 20ms})");
    return nullptr;
  }
  auto profile = llm_profile(sys["llm"], sc, diag);
  std::optional<mocks::llm::Profile> backup_profile;
  if (sys["llm_backup"].IsDefined()) backup_profile = llm_profile(sys["llm_backup"], sc, diag);

  Plan plan;
  runtime::RuntimeConfig& config = plan.config;
  plan.with_runtime = sys["runtime"].IsDefined();
  if (plan.with_runtime) {
    config.llm_urls = {"http://127.0.0.1:1"};  // replaced below by the mocks' URLs
    if (!sc.auth_secret.empty()) config.jwt_secret = sc.auth_secret;
    config.seed = seed;
    std::vector<std::string> errors;
    runtime::apply_runtime_yaml(sys["runtime"], sc.file, config, errors);
    for (const auto& e : errors) diag.error_at(0, 0, "system.runtime", e);
    // `queue: redis` / `store: postgres` without a URL: the stack's own servers (placeholders
    // until they run).
    if (config.queue == "redis") {
      plan.own_redis = true;
      config.queue = kOwnRedisPlaceholder;
    }
    if (config.store == "postgres" || config.store == "postgresql") {
      plan.own_postgres = true;
      config.store = kOwnPostgresPlaceholder;
    }
    for (const auto& e : config.validate()) diag.error(sys["runtime"], "system.runtime", e);
    if (sys["runtime"].IsMap()) {
      // The worker processes' --config: the block without what the stack sets by flag.
      plan.runtime_yaml = YAML::Clone(sys["runtime"]);
      for (const char* key : {"queue", "store", "namespace", "instance", "role", "port", "host", "llm", "seed"})
        plan.runtime_yaml.remove(key);
    }
  }
  plan_extras(sc, plan, diag);
  if (!profile || !diag.ok()) return nullptr;
  Fields lf(sys["llm"], "system.llm", diag);
  const int threads = lf.has("threads") ? static_cast<int>(lf.integer("threads", true, 1).value_or(1)) : 1;

  std::unique_ptr<EmbeddedStack> stack(new EmbeddedStack());
  stack->seed_ = seed;
  stack->worker_drain = config.drain;
  std::vector<std::string> parts;  // the description
  try {
    const bool needs_dir = plan.own_redis || plan.own_postgres || plan.worker_processes > 0;
    if (needs_dir) stack->temp_dir_ = make_temp_dir();

    // The stack's own servers.
    if (plan.own_redis || plan.own_postgres) {
      stack->services_ = std::make_unique<LocalServices>(stack->temp_dir_);
      const auto t0 = std::chrono::steady_clock::now();
      if (auto problem = stack->services_->start(plan.own_redis, plan.own_postgres); !problem.empty()) {
        stack->keep_temp_ = true;
        diag.error(sys["runtime"], "system.runtime", "the stack's own servers did not start: " + problem);
        return nullptr;
      }
      if (plan.own_redis) config.queue = stack->services_->redis_url();
      if (plan.own_postgres) config.store = stack->services_->postgres_url();
      parts.push_back(std::string("own ") + (plan.own_redis ? "Redis " + config.queue : "") +
                      (plan.own_redis && plan.own_postgres ? " and " : "") +
                      (plan.own_postgres ? "PostgreSQL " + config.store : "") + " (started in " +
                      fmt_seconds(seconds_since(t0)) + ")");
    }
    if (config.redis_queue()) config.namespace_ = fresh_namespace(config.namespace_);

    mocks::llm::MockLlmOptions opts;
    opts.threads = threads;
    stack->llm_ = std::make_unique<mocks::llm::MockLlm>(std::move(*profile), SteadyClock::instance(), seed, opts);
    stack->llm_->start();
    if (backup_profile) {
      stack->backup_ = std::make_unique<mocks::llm::MockLlm>(std::move(*backup_profile), SteadyClock::instance(), seed + 1, opts);
      stack->backup_->start();
    }

    if (plan.with_runtime) {
      config.llm_urls = {stack->llm_->url()};
      if (stack->backup_) config.llm_urls.push_back(stack->backup_->url());
      config.port = 0;
      config.host = "127.0.0.1";

      // The upstreams as the worker-running processes see them: through the chaos proxy when
      // it is asked for.
      std::string worker_queue = config.queue, worker_store = config.store;
      std::vector<std::string> worker_llm = config.llm_urls;
      if (!plan.proxied.empty()) {
        mocks::proxy::ChaosProxyOptions po;
        po.data.seed = seed;
        po.data.threads = 1;
        stack->proxy_ = std::make_unique<mocks::proxy::ChaosProxy>(po);
        stack->proxy_->start();
        std::string routes;
        for (const auto& name : plan.proxied) {
          std::string& url = name == "redis" ? worker_queue : name == "postgres" ? worker_store : worker_llm.front();
          mocks::proxy::ProxyConfig pc;
          pc.name = name;
          pc.listen = "127.0.0.1:0";
          pc.upstream = authority(url);
          auto created = stack->proxy_->registry().create_proxy(pc);
          if (!created.ok()) throw std::runtime_error("chaos proxy '" + name + "': " + created.error().message);
          routes += (routes.empty() ? "" : ", ") + name + " " + created.value().listen + " → " + pc.upstream;
          url = with_authority(url, created.value().listen);
        }
        parts.push_back("chaos proxy API " + stack->proxy_->url() + " (" + routes + ")");
      }

      runtime::RuntimeConfig gateway = config;
      if (plan.worker_processes > 0) {
        gateway.role = runtime::ServiceRole::kGateway;
      } else {
        gateway.queue = worker_queue;
        gateway.store = worker_store;
        gateway.llm_urls = worker_llm;
      }
      stack->runtime_ = std::make_unique<runtime::Runtime>(gateway);
      stack->runtime_->start();
      parts.insert(parts.begin(), plan.worker_processes > 0
                                      ? "runtime gateway on " + stack->runtime_->url()
                                      : "runtime on " + stack->runtime_->url() + " (" + std::to_string(config.workers) +
                                            " workers, queue " + gateway.queue + ", store " + gateway.store + ")");

      if (plan.worker_processes > 0) {
        SupervisorOptions so;
        so.ready_timeout = options.worker_ready_timeout;
        stack->workers_ = std::make_unique<ProcessSupervisor>(so);
        std::string llm_flag;
        for (const auto& u : worker_llm) llm_flag += (llm_flag.empty() ? "" : ",") + u;
        std::vector<std::size_t> all;
        for (int k = 1; k <= plan.worker_processes; ++k) {
          const std::string name = "w" + std::to_string(k);
          const std::string base = stack->temp_dir_ + "/" + name;
          YAML::Node yaml = YAML::Clone(plan.runtime_yaml.IsDefined() ? plan.runtime_yaml : YAML::Node(YAML::NodeType::Map));
          yaml["seed"] = seed + static_cast<std::uint64_t>(k) * 7919;
          write_yaml(base + ".yaml", yaml);
          ChildSpec spec;
          spec.name = name;
          spec.binary = options.serve_binary;
          spec.args = {"serve",     "--role",  "worker", "--instance", name,     "--config",    base + ".yaml",
                       "--queue",   worker_queue,      "--store",    worker_store, "--namespace", config.namespace_,
                       "--llm",     llm_flag,          "--host",     "127.0.0.1",  "--port",      "0"};
          spec.stdout_path = base + ".stdout";
          spec.stderr_path = base + ".stderr";
          all.push_back(stack->workers_->add(std::move(spec)));
        }
        const auto t0 = std::chrono::steady_clock::now();
        if (auto problem = stack->workers_->start(all); !problem.empty()) {
          stack->keep_temp_ = true;
          diag.error(sys["worker_processes"], "system.worker_processes", "worker processes did not start:\n" + problem);
          return nullptr;
        }
        std::string pids;
        for (std::size_t i : all) pids += (pids.empty() ? "" : ", ") + stack->workers_->name(i) + " pid " + std::to_string(stack->workers_->pid(i));
        parts.push_back(std::to_string(plan.worker_processes) + " worker processes × " + std::to_string(config.workers) +
                        " workers (" + pids + "; up in " + fmt_seconds(seconds_since(t0)) + "; logs in " +
                        stack->temp_dir_ + ")");
      }
      if (config.redis_queue()) parts.push_back("namespace " + config.namespace_);
    }
  } catch (const std::exception& e) {
    stack->keep_temp_ = !stack->temp_dir_.empty();
    diag.error(sys, "system", std::string("the embedded stack did not start: ") + e.what());
    return nullptr;
  }
  stack->admin_ = stack->llm_->url();
  stack->target_ = stack->runtime_ ? stack->runtime_->url() : stack->llm_->url();
  parts.push_back("mock LLM on " + stack->llm_->url());
  if (stack->backup_) parts.push_back("backup mock LLM on " + stack->backup_->url());
  for (const auto& p : parts) stack->description_ += (stack->description_.empty() ? "" : ", ") + p;
  return stack;
}

EmbeddedStack::~EmbeddedStack() { stop(); }

std::string EmbeddedStack::proxy_api_url() const { return proxy_ ? proxy_->url() : std::string(); }

std::size_t EmbeddedStack::worker_processes() const { return workers_ ? workers_->size() : 0; }

StackActionResult EmbeddedStack::perform(const Fault& fault, bool start) {
  if (!fault.stack) return {false, "not a stack action"};
  if (fault.stack->kind == StackAction::Kind::kProcessKill) return kill_workers(fault, start);
  return restart_service(fault, start);
}

StackActionResult EmbeddedStack::kill_workers(const Fault& fault, bool start) {
  const StackAction& a = *fault.stack;
  if (!workers_) return {false, "no worker processes (system.worker_processes)"};
  if (start) {
    std::vector<std::size_t> live = workers_->running();
    if (live.empty()) return {false, "no worker process is running"};
    std::vector<std::size_t> chosen;
    {
      std::lock_guard lock(faults_mutex_);
      // Chosen with the run's seed: the same run kills the same workers.
      std::mt19937_64 rng(seed_ * 0x9e3779b97f4a7c15ULL + ++kills_);
      std::shuffle(live.begin(), live.end(), rng);
      live.resize(std::min<std::size_t>(live.size(), static_cast<std::size_t>(a.count)));
      std::sort(live.begin(), live.end());
      chosen = live;
    }
    std::string detail = "SIG" + a.signal_name + " to";
    std::vector<std::size_t> done;
    for (std::size_t i : chosen) {
      const pid_t pid = workers_->pid(i);
      if (workers_->signal(i, a.signal)) {
        done.push_back(i);
        detail += " " + workers_->name(i) + " (pid " + std::to_string(pid) + ")";
      }
    }
    if (done.size() < static_cast<std::size_t>(a.count))
      detail += "; " + std::to_string(done.size()) + " of " + std::to_string(a.count) + " asked for were running";
    std::lock_guard lock(faults_mutex_);
    killed_[&fault] = done;
    return {!done.empty(), detail};
  }
  std::vector<std::size_t> which;
  {
    std::lock_guard lock(faults_mutex_);
    auto it = killed_.find(&fault);
    if (it == killed_.end() || it->second.empty()) return {true, "nothing to restart (the start signalled no process)"};
    which = it->second;
  }
  if (a.signal == SIGSTOP) {
    std::string detail = "SIGCONT to";
    bool ok = true;
    for (std::size_t i : which) {
      const bool sent = workers_->signal(i, SIGCONT);
      ok = ok && sent;
      detail += " " + workers_->name(i) + (sent ? "" : " (not running)");
    }
    return {ok, detail};
  }
  // A worker asked to drain gets its drain time; anything else is gone at once (or is made so).
  const Nanos bound = (a.signal == SIGTERM || a.signal == SIGINT) ? worker_drain + 5s : 5s;
  std::string detail;
  for (std::size_t i : which)
    detail += (detail.empty() ? "" : "; ") + workers_->name(i) + " ended: " + workers_->reap(i, bound);
  const auto t0 = std::chrono::steady_clock::now();
  const std::string problem = workers_->start(which);
  detail += "; restarted";
  for (std::size_t i : which) {
    const pid_t pid = workers_->pid(i);
    detail += " " + workers_->name(i) + (pid > 0 ? " (pid " + std::to_string(pid) + ")" : " (failed)");
  }
  detail += " in " + fmt_seconds(seconds_since(t0));
  if (!problem.empty()) {
    keep_temp_ = true;
    return {false, detail + ": " + problem};
  }
  return {true, detail};
}

StackActionResult EmbeddedStack::restart_service(const Fault& fault, bool start) {
  const std::string& service = fault.stack->service;
  if (!services_) return {false, "the stack owns no " + service + " server"};
  const std::string url = service == "redis" ? services_->redis_url() : services_->postgres_url();
  const auto t0 = std::chrono::steady_clock::now();
  if (start) {
    if (auto problem = services_->stop_one(service); !problem.empty()) return {false, problem};
    return {true, "stopped " + service + " " + url + " in " + fmt_seconds(seconds_since(t0)) + " (port and data kept)"};
  }
  if (auto problem = services_->start_one(service); !problem.empty()) return {false, problem};
  return {true, service + " back on " + url + " (same data) in " + fmt_seconds(seconds_since(t0))};
}

StoreEffects EmbeddedStack::task_effects(const std::vector<std::string>& task_ids) {
  StoreEffects out;
  if (!runtime_) {
    out.error = "no runtime in the embedded stack";
    return out;
  }
  constexpr std::size_t kBatch = 500;
  for (std::size_t at = 0; at < task_ids.size(); at += kBatch) {
    const std::vector<std::string> batch(task_ids.begin() + static_cast<std::ptrdiff_t>(at),
                                         task_ids.begin() + static_cast<std::ptrdiff_t>(std::min(task_ids.size(), at + kBatch)));
    auto r = runtime_->turn_stats().audit_tasks(batch);
    if (!r.ok()) {
      out.error = "audit_tasks: " + r.error().message();
      return out;
    }
    out.complete = out.complete && r.value().complete;
    for (const auto& fx : r.value().tasks)
      out.tasks[fx.task_id] = TaskEffects{fx.turns, fx.messages, fx.expected_messages};
  }
  return out;
}

void EmbeddedStack::stop() {
  if (stopped_) return;
  stopped_ = true;
  if (workers_) {
    workers_->stop_all(worker_drain + 5s);
    if (!workers_->take_unexpected_exits().empty()) keep_temp_ = true;
  }
  if (runtime_) runtime_->stop();
  if (proxy_) proxy_->stop();
  if (backup_) backup_->stop();
  if (llm_) llm_->stop();
  if (services_) services_->stop_all();
  if (!temp_dir_.empty()) {
    if (keep_temp_) {
      std::fprintf(stderr, "agentlab: embedded stack: its logs are kept in %s\n", temp_dir_.c_str());
    } else {
      std::error_code ec;
      std::filesystem::remove_all(temp_dir_, ec);
    }
  }
}

}  // namespace lab::harness
