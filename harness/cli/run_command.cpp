#include "harness/cli/run_command.hpp"

#include <sched.h>
#include <sys/resource.h>

#include <charconv>
#include <cstdio>
#include <ctime>
#include <string>
#include <string_view>
#include <vector>

#include "harness/embedded/embedded_stack.hpp"
#include "harness/run/runner.hpp"
#include "harness/scenario/scenario.hpp"

namespace lab::harness {

namespace {

constexpr const char* kUsage =
    "usage: agentlab run SCENARIO.yaml [--target URL] [--time-scale X] [--out DIR] [--seed N]\n"
    "                    [--shard I/N] [--threads N] [--quiet]\n"
    "  --target URL      system under test (default: the scenario's target:, else the embedded stack)\n"
    "  --time-scale X    multiply every duration and fault time by X (rates are not scaled)\n"
    "  --out DIR         where results.json goes (default: results/<scenario>-<timestamp>)\n"
    "  --seed N          seed for every random choice (default 1)\n"
    "  --shard I/N       run shard I of N (0-based): 1/N of the arrivals, VUs and users\n"
    "  --threads N       load-generator threads (default: the CPUs this process may use)\n"
    "  --quiet           no progress line\n";

int cpus_available() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) return std::max(1, CPU_COUNT(&set));
  return 1;
}

// Many concurrent streams need many sockets: lift the soft limit to the hard one.
void raise_open_file_limit() {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    setrlimit(RLIMIT_NOFILE, &lim);
  }
}

template <class T>
bool parse_number(std::string_view s, T& out) {
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && ptr == s.data() + s.size();
}

}  // namespace

int run_command(int argc, char** argv) {
  std::vector<std::string> problems;
  std::string scenario_path;
  std::optional<std::string> target;
  double time_scale = 1.0;
  std::string out_dir;
  RunOptions opt;
  opt.threads = cpus_available();
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    auto value = [&](const char* flag) -> std::optional<std::string_view> {
      if (i + 1 >= argc) {
        problems.push_back(std::string(flag) + " needs a value");
        return std::nullopt;
      }
      return std::string_view(argv[++i]);
    };
    if (a == "-h" || a == "--help") {
      std::fputs(kUsage, stdout);
      return kExitPass;
    } else if (a == "--target") {
      if (auto v = value("--target")) target = std::string(*v);
    } else if (a == "--time-scale") {
      if (auto v = value("--time-scale"))
        if (!parse_number(*v, time_scale) || time_scale <= 0)
          problems.push_back("--time-scale '" + std::string(*v) + "' must be a number > 0");
    } else if (a == "--out") {
      if (auto v = value("--out")) out_dir = std::string(*v);
    } else if (a == "--seed") {
      if (auto v = value("--seed"))
        if (!parse_number(*v, opt.seed)) problems.push_back("--seed '" + std::string(*v) + "' must be a non-negative integer");
    } else if (a == "--threads") {
      if (auto v = value("--threads"))
        if (!parse_number(*v, opt.threads) || opt.threads < 1 || opt.threads > 256)
          problems.push_back("--threads '" + std::string(*v) + "' must be an integer from 1 to 256");
    } else if (a == "--shard") {
      if (auto v = value("--shard")) {
        auto slash = v->find('/');
        if (slash == std::string_view::npos || !parse_number(v->substr(0, slash), opt.shard_index) ||
            !parse_number(v->substr(slash + 1), opt.shard_count) || opt.shard_count < 1 ||
            opt.shard_index < 0 || opt.shard_index >= opt.shard_count)
          problems.push_back("--shard '" + std::string(*v) + "' must be I/N with 0 <= I < N");
      }
    } else if (a == "--quiet") {
      opt.live_progress = false;
    } else if (!a.empty() && a.front() == '-') {
      problems.push_back("unknown flag '" + std::string(a) + "'");
    } else if (scenario_path.empty()) {
      scenario_path = std::string(a);
    } else {
      problems.push_back("unexpected argument '" + std::string(a) + "' (one scenario per run)");
    }
  }
  if (scenario_path.empty()) problems.push_back("no scenario file given");
  if (!problems.empty()) {
    for (const auto& p : problems) std::fprintf(stderr, "agentlab run: %s\n", p.c_str());
    std::fputs(kUsage, stderr);
    return kExitUsage;
  }

  Diagnostics diag(scenario_path);
  auto scenario = load_scenario(scenario_path, time_scale, diag);
  if (!scenario) {
    std::fprintf(stderr, "agentlab run: %zu problem%s in the scenario, nothing was started:\n%s", diag.items().size(),
                 diag.items().size() == 1 ? "" : "s", diag.format().c_str());
    return kExitUsage;
  }
  if (opt.shard_count > 1 && scenario->users * scenario->agents_per_user < opt.shard_count) {
    std::fprintf(stderr, "agentlab run: --shard %d/%d: the population has fewer slots than shards\n",
                 opt.shard_index, opt.shard_count);
    return kExitUsage;
  }

  if (out_dir.empty()) {
    std::time_t now = std::time(nullptr);
    char stamp[32];
    std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", std::localtime(&now));
    out_dir = "results/" + scenario->name + "-" + stamp;
    if (opt.shard_count > 1) out_dir += "-shard" + std::to_string(opt.shard_index);
  }
  opt.out_dir = out_dir;
  raise_open_file_limit();

  std::unique_ptr<EmbeddedStack> stack;
  if (target || scenario->target) {
    // Faults on the stack's own processes and servers have nothing to act on at a remote target.
    Diagnostics remote(scenario_path);
    for (std::size_t i = 0; i < scenario->faults.size(); ++i)
      if (scenario->faults[i].kind == Fault::Kind::kStack)
        remote.error_at(scenario->faults[i].line, scenario->faults[i].column, "faults[" + std::to_string(i) + "].action",
                        "'" + scenario->faults[i].action + "' acts on the embedded stack, and this run has a target; "
                        "against a deployment use exec: {command, undo} (e.g. kubectl delete pod ...)");
    if (!remote.ok()) {
      std::fprintf(stderr, "agentlab run: %s", remote.format().c_str());
      return kExitUsage;
    }
  }
  if (target) {
    opt.target = *target;
  } else if (scenario->target) {
    opt.target = *scenario->target;
  } else {
    Diagnostics sys_diag(scenario_path);
    stack = EmbeddedStack::start(*scenario, opt.seed, sys_diag);
    if (!stack) {
      std::fprintf(stderr, "agentlab run: %s", sys_diag.format().c_str());
      return kExitUsage;
    }
    opt.target = stack->target_url();
    opt.fault_base_url = stack->admin_url();
    EmbeddedStack* st = stack.get();
    opt.stack_action = [st](const Fault& f, bool start) { return st->perform(f, start); };
    if (stack->has_runtime())
      opt.store_effects = [st](const std::vector<std::string>& ids) { return st->task_effects(ids); };
    // proxy.toxic / proxy.down without url: go to the stack's chaos proxy (validated to exist).
    if (const std::string api = stack->proxy_api_url(); !api.empty())
      for (auto& f : scenario->faults) {
        if (f.proxy.empty() || f.proxy_url_given) continue;
        if (f.http_start) f.http_start->url = api + f.http_start->url;
        if (f.http_end) f.http_end->url = api + f.http_end->url;
      }
    if (stack->has_runtime() && scenario->samples.empty()) {
      // The embedded runtime's state goes into every second of the results, and its breaker and
      // degradation changes become events.
      SampleSpec s;
      s.url = "/api/system";
      s.watch = {"/degradation_level", "/breakers/llm_primary", "/breakers/llm_backup", "/breakers/tools"};
      scenario->samples.push_back(std::move(s));
    }
    std::fprintf(stderr, "agentlab: embedded stack: %s\n", stack->describe().c_str());
  }

  RunOutcome outcome = run_scenario(*scenario, opt);
  if (stack) stack->stop();
  std::fputs(outcome.summary.c_str(), outcome.exit_code == kExitUsage ? stderr : stdout);
  return outcome.exit_code;
}

}  // namespace lab::harness
