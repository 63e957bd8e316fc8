#include "harness/embedded/embedded_stack.hpp"

#include <cmath>

#include "mocks/llm/mock_llm.hpp"
#include "mocks/llm/profile.hpp"
#include "runtime/service/runtime.hpp"
#include "runtime/service/runtime_config.hpp"

namespace lab::harness {

namespace {

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

}  // namespace

std::unique_ptr<EmbeddedStack> EmbeddedStack::start(const Scenario& sc, std::uint64_t seed, Diagnostics& diag) {
  const YAML::Node& sys = sc.system;
  if (!sys.IsDefined() || sys.IsNull() || !sys.IsMap()) {
    diag.error_at(0, 0, "target",
                  "no target: give --target URL, a target: in the scenario, or a system: block for the embedded stack");
    return nullptr;
  }
  Fields f(sys, "system", diag);
  f.reject_unknown({"llm", "llm_backup", "runtime"});
  if (!sys["llm"].IsDefined()) {
    diag.error(sys, "system.llm", "missing (the mock LLM's settings, e.g. {ttft: 300ms, itl: 20ms})");
    return nullptr;
  }
  auto profile = llm_profile(sys["llm"], sc, diag);
  std::optional<mocks::llm::Profile> backup_profile;
  if (sys["llm_backup"].IsDefined()) backup_profile = llm_profile(sys["llm_backup"], sc, diag);
  runtime::RuntimeConfig config;
  const bool with_runtime = sys["runtime"].IsDefined();
  if (with_runtime) {
    config.llm_urls = {"http://127.0.0.1:1"};  // replaced below by the mocks' URLs
    if (!sc.auth_secret.empty()) config.jwt_secret = sc.auth_secret;
    config.seed = seed;
    std::vector<std::string> errors;
    runtime::apply_runtime_yaml(sys["runtime"], sc.file, config, errors);
    for (const auto& e : errors) diag.error_at(0, 0, "system.runtime", e);
    for (const auto& e : config.validate()) diag.error(sys["runtime"], "system.runtime", e);
  }
  if (!profile || !diag.ok()) return nullptr;
  Fields lf(sys["llm"], "system.llm", diag);
  const int threads = lf.has("threads") ? static_cast<int>(lf.integer("threads", true, 1).value_or(1)) : 1;

  std::unique_ptr<EmbeddedStack> stack(new EmbeddedStack());
  mocks::llm::MockLlmOptions opts;
  opts.threads = threads;
  try {
    stack->llm_ = std::make_unique<mocks::llm::MockLlm>(std::move(*profile), SteadyClock::instance(), seed, opts);
    stack->llm_->start();
    if (backup_profile) {
      stack->backup_ = std::make_unique<mocks::llm::MockLlm>(std::move(*backup_profile), SteadyClock::instance(), seed + 1, opts);
      stack->backup_->start();
    }
    if (with_runtime) {
      config.llm_urls = {stack->llm_->url()};
      if (stack->backup_) config.llm_urls.push_back(stack->backup_->url());
      config.port = 0;
      config.host = "127.0.0.1";
      stack->runtime_ = std::make_unique<runtime::Runtime>(config);
      stack->runtime_->start();
    }
  } catch (const std::exception& e) {
    diag.error(sys, "system", std::string("the embedded stack did not start: ") + e.what());
    return nullptr;
  }
  stack->admin_ = stack->llm_->url();
  stack->target_ = stack->runtime_ ? stack->runtime_->url() : stack->llm_->url();
  stack->description_ = (stack->runtime_ ? "runtime on " + stack->runtime_->url() + " (" + std::to_string(config.workers) +
                                               " workers), " : std::string()) +
                        "mock LLM on " + stack->llm_->url() +
                        (stack->backup_ ? ", backup mock LLM on " + stack->backup_->url() : std::string());
  return stack;
}

EmbeddedStack::~EmbeddedStack() { stop(); }

void EmbeddedStack::stop() {
  if (runtime_) runtime_->stop();
  if (backup_) backup_->stop();
  if (llm_) llm_->stop();
}

}  // namespace lab::harness
