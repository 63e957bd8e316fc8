#include "mocks/llm/metrics.hpp"

#include <prometheus/text_serializer.h>

namespace lab::mocks::llm {

namespace {

std::size_t index_of(Api api) { return api == Api::kOpenAi ? 0 : 1; }

}  // namespace

Metrics::Metrics() : registry_(std::make_shared<prometheus::Registry>()) {
  requests_ = &prometheus::BuildCounter()
                   .Name("mock_llm_requests_total")
                   .Help("Responses sent by the mock LLM, by API and HTTP status.")
                   .Register(*registry_);
  faults_ = &prometheus::BuildCounter()
                 .Name("mock_llm_faults_injected_total")
                 .Help("Faults injected into requests, by kind.")
                 .Register(*registry_);
  rate_limited_ = &prometheus::BuildCounter()
                       .Name("mock_llm_rate_limited_total")
                       .Help("Requests refused with 429, by reason (requests, tokens, queue_full).")
                       .Register(*registry_);
  auto& input = prometheus::BuildCounter()
                    .Name("mock_llm_input_tokens_total")
                    .Help("Prompt tokens accepted (estimated), by API.")
                    .Register(*registry_);
  auto& output = prometheus::BuildCounter()
                     .Name("mock_llm_output_tokens_total")
                     .Help("Tokens generated, by API.")
                     .Register(*registry_);
  for (Api api : {Api::kOpenAi, Api::kAnthropic}) {
    input_tokens_[index_of(api)] = &input.Add({{"api", std::string(to_string(api))}});
    output_tokens_[index_of(api)] = &output.Add({{"api", std::string(to_string(api))}});
  }
  active_streams_ = &prometheus::BuildGauge()
                         .Name("mock_llm_active_streams")
                         .Help("Streaming responses open now.")
                         .Register(*registry_)
                         .Add({});
  running_ = &prometheus::BuildGauge()
                  .Name("mock_llm_running_requests")
                  .Help("Batch slots in use (sequences being generated).")
                  .Register(*registry_)
                  .Add({});
  queue_depth_ = &prometheus::BuildGauge()
                      .Name("mock_llm_queue_depth")
                      .Help("Requests waiting for a batch slot.")
                      .Register(*registry_)
                      .Add({});
  client_disconnects_ = &prometheus::BuildCounter()
                             .Name("mock_llm_client_disconnects_total")
                             .Help("Streams whose client went away before the end.")
                             .Register(*registry_)
                             .Add({});
  ttft_ = &prometheus::BuildHistogram()
               .Name("mock_llm_time_to_first_token_seconds")
               .Help("Request arrival to first token written, for streams.")
               .Register(*registry_)
               .Add({}, ttft_bounds_);
  itl_ = &prometheus::BuildHistogram()
              .Name("mock_llm_inter_token_latency_seconds")
              .Help("Time between consecutive token writes of a stream.")
              .Register(*registry_)
              .Add({}, itl_bounds_);
  lateness_ = &prometheus::BuildHistogram()
                   .Name("mock_llm_token_lateness_seconds")
                   .Help("Token write time minus the token's scheduled deadline.")
                   .Register(*registry_)
                   .Add({}, lateness_bounds_);
}

void Metrics::count_request(Api api, int status) {
  if (status < 100 || status > 599) status = 599;
  std::atomic<prometheus::Counter*>& slot = by_status_[index_of(api)][static_cast<std::size_t>(status - 100)];
  prometheus::Counter* counter = slot.load(std::memory_order_acquire);
  if (!counter) {
    std::lock_guard lock(mutex_);
    counter = slot.load(std::memory_order_acquire);
    if (!counter) {
      counter = &requests_->Add({{"api", std::string(to_string(api))}, {"status", std::to_string(status)}});
      slot.store(counter, std::memory_order_release);
    }
  }
  counter->Increment();
}

void Metrics::count_tokens(Api api, int input, int output) {
  input_tokens_[index_of(api)]->Increment(input);
  output_tokens_[index_of(api)]->Increment(output);
}

void Metrics::count_fault(std::string_view kind) {
  faults_->Add({{"kind", std::string(kind)}}).Increment();
}

void Metrics::count_rate_limited(std::string_view reason) {
  rate_limited_->Add({{"reason", std::string(reason)}}).Increment();
}

std::string Metrics::render(int running, int waiting) {
  running_->Set(running);
  queue_depth_->Set(waiting);
  return prometheus::TextSerializer().Serialize(registry_->Collect());
}

}  // namespace lab::mocks::llm
