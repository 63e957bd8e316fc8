#include "runtime/service/runtime_metrics.hpp"

#include <chrono>

#include <prometheus/text_serializer.h>

namespace lab::runtime {

namespace {

double seconds(Nanos d) { return std::chrono::duration<double>(d).count(); }

const prometheus::Histogram::BucketBoundaries& latency_buckets() {
  static const prometheus::Histogram::BucketBoundaries b{
      0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
  return b;
}

const prometheus::Histogram::BucketBoundaries& turn_buckets() {
  static const prometheus::Histogram::BucketBoundaries b{
      0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120};
  return b;
}

}  // namespace

std::string_view to_string(Rejection r) noexcept {
  switch (r) {
    case Rejection::kUnauthorized: return "unauthorized";
    case Rejection::kBadRequest: return "bad_request";
    case Rejection::kNotFound: return "not_found";
    case Rejection::kQueueFull: return "queue_full";
    case Rejection::kRateLimited: return "rate_limited";
    case Rejection::kDegraded: return "degraded";
    case Rejection::kMembershipPaused: return "membership_paused";
    case Rejection::kStoreFull: return "store_full";
    case Rejection::kDraining: return "draining";
    case Rejection::kBodyTooLarge: return "body_too_large";
  }
  return "unknown";
}

std::string_view to_string(Route r) noexcept {
  switch (r) {
    case Route::kAgentsCreate: return "agents_create";
    case Route::kAgentsList: return "agents_list";
    case Route::kAgentGet: return "agent_get";
    case Route::kChat: return "chat";
    case Route::kFork: return "fork";
    case Route::kStreamSetup: return "stream_setup";
    case Route::kHibernate: return "hibernate";
    case Route::kMembership: return "membership";
    case Route::kSystem: return "system";
    case Route::kHealth: return "health";
    case Route::kMetrics: return "metrics";
  }
  return "unknown";
}

RuntimeMetrics::RuntimeMetrics() : registry_(std::make_shared<prometheus::Registry>()) {
  auto& reg = *registry_;
  accepted_ = &prometheus::BuildCounter()
                   .Name("agentlab_runtime_tasks_accepted_total")
                   .Help("Chat tasks accepted (202)")
                   .Register(reg)
                   .Add({});
  completed_ = &prometheus::BuildCounter()
                    .Name("agentlab_runtime_tasks_completed_total")
                    .Help("Tasks that ended with a done event")
                    .Register(reg)
                    .Add({});
  failed_ = &prometheus::BuildCounter()
                 .Name("agentlab_runtime_tasks_failed_total")
                 .Help("Tasks that ended with an error event, by reason")
                 .Register(reg);
  duplicate_terminals_ = &prometheus::BuildCounter()
                              .Name("agentlab_runtime_terminal_duplicates_total")
                              .Help("Second terminal events refused by the event bus")
                              .Register(reg)
                              .Add({});
  rejections_family_ = &prometheus::BuildCounter()
                            .Name("agentlab_runtime_rejections_total")
                            .Help("Requests refused by the gateway, by reason")
                            .Register(reg);
  for (std::size_t i = 0; i < kRejectionCount; ++i) {
    rejections_[i] = &rejections_family_->Add(
        {{"reason", std::string(to_string(static_cast<Rejection>(i)))}});
  }
  auto& latency = prometheus::BuildHistogram()
                      .Name("agentlab_runtime_http_request_duration_seconds")
                      .Help("Handler time of non-streaming API requests, by route")
                      .Register(reg);
  for (std::size_t i = 0; i < kRouteCount; ++i) {
    request_latency_[i] =
        &latency.Add({{"route", std::string(to_string(static_cast<Route>(i)))}}, latency_buckets());
  }
  sse_open_ = &prometheus::BuildGauge()
                   .Name("agentlab_runtime_sse_streams_open")
                   .Help("SSE streams being served")
                   .Register(reg)
                   .Add({});
  turn_duration_ = &prometheus::BuildHistogram()
                        .Name("agentlab_runtime_turn_duration_seconds")
                        .Help("Agent turn start to done")
                        .Register(reg)
                        .Add({}, turn_buckets());
  turn_ttft_ = &prometheus::BuildHistogram()
                    .Name("agentlab_runtime_turn_ttft_seconds")
                    .Help("Agent turn start to the first LLM token")
                    .Register(reg)
                    .Add({}, turn_buckets());
  llm_requests_ = &prometheus::BuildCounter()
                       .Name("agentlab_runtime_llm_requests_total")
                       .Help("LLM attempts by provider and outcome")
                       .Register(reg);
  failovers_ = &prometheus::BuildCounter()
                    .Name("agentlab_runtime_llm_failovers_total")
                    .Help("LLM attempts moved on to the next provider")
                    .Register(reg)
                    .Add({});
  llm_retries_ = &prometheus::BuildCounter()
                      .Name("agentlab_runtime_llm_retries_total")
                      .Help("LLM retry rounds (after every provider failed)")
                      .Register(reg)
                      .Add({});
  tool_calls_ = &prometheus::BuildCounter()
                     .Name("agentlab_runtime_tool_calls_total")
                     .Help("Simulated tool calls by outcome")
                     .Register(reg);
  redeliveries_ = &prometheus::BuildCounter()
                       .Name("agentlab_runtime_redeliveries_total")
                       .Help("Redelivered or bounced tasks, by kind")
                       .Register(reg);
  breaker_state_ = &prometheus::BuildGauge()
                        .Name("agentlab_runtime_breaker_state")
                        .Help("Circuit state: 0 closed, 1 open, 2 half-open, 3 disabled, 4 forced open")
                        .Register(reg);
  breaker_transitions_ = &prometheus::BuildCounter()
                              .Name("agentlab_runtime_breaker_transitions_total")
                              .Help("Circuit breaker transitions")
                              .Register(reg);
  degradation_level_ = &prometheus::BuildGauge()
                            .Name("agentlab_runtime_degradation_level")
                            .Help("Degradation level 0 (normal) .. 4 (maintenance)")
                            .Register(reg)
                            .Add({});
  degradation_changes_ = &prometheus::BuildCounter()
                              .Name("agentlab_runtime_degradation_changes_total")
                              .Help("Degradation level or feature changes")
                              .Register(reg)
                              .Add({});
  queue_depth_ = &prometheus::BuildGauge()
                      .Name("agentlab_runtime_queue_depth")
                      .Help("Tasks waiting in the queue")
                      .Register(reg)
                      .Add({});
  queue_in_flight_ = &prometheus::BuildGauge()
                          .Name("agentlab_runtime_queue_in_flight")
                          .Help("Tasks leased and not yet acked")
                          .Register(reg)
                          .Add({});
  active_agents_ = &prometheus::BuildGauge()
                        .Name("agentlab_runtime_active_agents")
                        .Help("Agents resident in the workers' schedulers")
                        .Register(reg)
                        .Add({});
  hibernated_agents_ = &prometheus::BuildGauge()
                            .Name("agentlab_runtime_hibernated_agents")
                            .Help("Agents in state HIBERNATED")
                            .Register(reg)
                            .Add({});
}

prometheus::Counter& RuntimeMetrics::labelled(prometheus::Family<prometheus::Counter>& family,
                                              std::map<std::string, prometheus::Counter*, std::less<>>& cache,
                                              std::string_view label_name, std::string_view value) {
  std::lock_guard lock(mutex_);
  auto it = cache.find(value);
  if (it == cache.end()) {
    auto* c = &family.Add({{std::string(label_name), std::string(value)}});
    it = cache.emplace(std::string(value), c).first;
  }
  return *it->second;
}

void RuntimeMetrics::count_accepted() {
  accepted_->Increment();
  n_accepted_.fetch_add(1, std::memory_order_relaxed);
}

void RuntimeMetrics::count_completed() {
  completed_->Increment();
  n_completed_.fetch_add(1, std::memory_order_relaxed);
}

void RuntimeMetrics::count_failed(std::string_view reason) {
  labelled(*failed_, failed_cache_, "reason", reason).Increment();
  n_failed_.fetch_add(1, std::memory_order_relaxed);
}

void RuntimeMetrics::count_duplicate_terminal() {
  duplicate_terminals_->Increment();
  n_duplicates_.fetch_add(1, std::memory_order_relaxed);
}

void RuntimeMetrics::count_commit(bool applied) {
  (applied ? n_commits_ : n_commit_duplicates_).fetch_add(1, std::memory_order_relaxed);
}

void RuntimeMetrics::count_rejection(Rejection r) {
  rejections_[static_cast<std::size_t>(r)]->Increment();
  n_rejections_[static_cast<std::size_t>(r)].fetch_add(1, std::memory_order_relaxed);
}

void RuntimeMetrics::observe_request(Route r, Nanos duration) {
  request_latency_[static_cast<std::size_t>(r)]->Observe(seconds(duration));
}

void RuntimeMetrics::observe_turn(Nanos duration, Nanos ttft) {
  turn_duration_->Observe(seconds(duration));
  turn_ttft_->Observe(seconds(ttft));
}

void RuntimeMetrics::count_llm(std::string_view provider, std::string_view outcome) {
  std::string key(provider);
  key += '\x1f';
  key += outcome;
  std::lock_guard lock(mutex_);
  auto it = llm_cache_.find(key);
  if (it == llm_cache_.end()) {
    auto* c = &llm_requests_->Add({{"provider", std::string(provider)}, {"outcome", std::string(outcome)}});
    it = llm_cache_.emplace(std::move(key), c).first;
  }
  it->second->Increment();
}

void RuntimeMetrics::count_failover() { failovers_->Increment(); }
void RuntimeMetrics::count_llm_retry() { llm_retries_->Increment(); }

void RuntimeMetrics::count_tool(std::string_view outcome) {
  labelled(*tool_calls_, tool_cache_, "outcome", outcome).Increment();
}

void RuntimeMetrics::count_redelivery(std::string_view kind) {
  labelled(*redeliveries_, redelivery_cache_, "kind", kind).Increment();
}

void RuntimeMetrics::count_breaker_transition(std::string_view breaker, std::string_view from,
                                              std::string_view to) {
  std::string key(breaker);
  key += '\x1f';
  key += from;
  key += '\x1f';
  key += to;
  std::lock_guard lock(mutex_);
  auto it = transition_cache_.find(key);
  if (it == transition_cache_.end()) {
    auto* c = &breaker_transitions_->Add(
        {{"breaker", std::string(breaker)}, {"from", std::string(from)}, {"to", std::string(to)}});
    it = transition_cache_.emplace(std::move(key), c).first;
  }
  it->second->Increment();
}

void RuntimeMetrics::count_degradation_change() { degradation_changes_->Increment(); }

void RuntimeMetrics::set_breaker_state(std::string_view breaker, int state) {
  std::lock_guard lock(mutex_);
  auto it = breaker_cache_.find(breaker);
  if (it == breaker_cache_.end()) {
    auto* g = &breaker_state_->Add({{"breaker", std::string(breaker)}});
    it = breaker_cache_.emplace(std::string(breaker), g).first;
  }
  it->second->Set(state);
}

void RuntimeMetrics::set_degradation_level(int level) { degradation_level_->Set(level); }

void RuntimeMetrics::set_queue(std::size_t depth, std::size_t in_flight) {
  queue_depth_->Set(static_cast<double>(depth));
  queue_in_flight_->Set(static_cast<double>(in_flight));
}

void RuntimeMetrics::set_agents(std::size_t active, std::size_t hibernated) {
  active_agents_->Set(static_cast<double>(active));
  hibernated_agents_->Set(static_cast<double>(hibernated));
}

void RuntimeMetrics::set_body_too_large(std::uint64_t total) {
  const std::uint64_t before = n_body_too_large_.exchange(total, std::memory_order_relaxed);
  if (total > before) {
    const auto delta = total - before;
    rejections_[static_cast<std::size_t>(Rejection::kBodyTooLarge)]->Increment(static_cast<double>(delta));
    n_rejections_[static_cast<std::size_t>(Rejection::kBodyTooLarge)].fetch_add(delta, std::memory_order_relaxed);
  }
}

LedgerCounters RuntimeMetrics::ledger() const {
  LedgerCounters c;
  c.accepted = n_accepted_.load(std::memory_order_relaxed);
  c.completed = n_completed_.load(std::memory_order_relaxed);
  c.failed = n_failed_.load(std::memory_order_relaxed);
  c.duplicate_terminals = n_duplicates_.load(std::memory_order_relaxed);
  c.commits_applied = n_commits_.load(std::memory_order_relaxed);
  c.commits_duplicate = n_commit_duplicates_.load(std::memory_order_relaxed);
  return c;
}

std::uint64_t RuntimeMetrics::rejections(Rejection r) const {
  return n_rejections_[static_cast<std::size_t>(r)].load(std::memory_order_relaxed);
}

std::string RuntimeMetrics::render() { return prometheus::TextSerializer().Serialize(registry_->Collect()); }

}  // namespace lab::runtime
