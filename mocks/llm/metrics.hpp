#pragma once
// The mock's Prometheus metrics (prometheus-cpp registry, text exposition on GET /metrics).
// Names follow promtool's conventions: counters end in _total, durations are _seconds.
//
//   mock_llm_requests_total{api,status}          responses by API and HTTP status
//   mock_llm_input_tokens_total{api}             prompt tokens accepted
//   mock_llm_output_tokens_total{api}            tokens generated (streamed or in bodies)
//   mock_llm_active_streams                      streaming responses open now
//   mock_llm_running_requests                    batch slots in use
//   mock_llm_queue_depth                         requests waiting for a slot
//   mock_llm_time_to_first_token_seconds         arrival → first token written (streams)
//   mock_llm_inter_token_latency_seconds         gap between token writes (streams)
//   mock_llm_token_lateness_seconds              token write time − its scheduled deadline
//   mock_llm_faults_injected_total{kind}         error, hang, disconnect, stall, malformed, latency
//   mock_llm_rate_limited_total{reason}          requests, tokens, queue_full
//   mock_llm_client_disconnects_total            streams whose peer went away mid-response

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "mocks/llm/request.hpp"

namespace lab::mocks::llm {

/// One stream's share of a histogram, accumulated without locks and added to the shared
/// histogram once (prometheus::Histogram::ObserveMultiple) when the stream ends, instead of
/// taking the histogram's lock on every token. Not thread-safe; one per stream.
class LocalHistogram {
 public:
  static constexpr std::size_t kMaxBounds = 31;
  /// `bounds` (at most kMaxBounds, ascending) must outlive the histogram.
  explicit LocalHistogram(const std::vector<double>& bounds) : bounds_(&bounds) {
    if (bounds.size() > kMaxBounds) {
      std::fprintf(stderr, "mock-llm: LocalHistogram with %zu bounds (at most %zu)\n", bounds.size(), kMaxBounds);
      std::abort();
    }
  }
  void observe(double value) {
    const auto it = std::lower_bound(bounds_->begin(), bounds_->end(), value);  // "le" buckets
    ++counts_[static_cast<std::size_t>(it - bounds_->begin())];
    sum_ += value;
    any_ = true;
  }
  /// Adds what was observed to `target` and starts over.
  void flush(prometheus::Histogram& target) {
    if (!any_) return;
    std::vector<double> counts(bounds_->size() + 1);
    for (std::size_t i = 0; i < counts.size(); ++i) counts[i] = static_cast<double>(counts_[i]);
    target.ObserveMultiple(counts, sum_);
    counts_.fill(0);
    sum_ = 0.0;
    any_ = false;
  }

 private:
  const std::vector<double>* bounds_;
  std::array<std::uint32_t, kMaxBounds + 1> counts_{};  // inline and small: few cache lines per token
  double sum_ = 0.0;
  bool any_ = false;
};

class Metrics {
 public:
  Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  /// Counts one response. Thread-safe; the (api, status) counter is cached after first use.
  void count_request(Api api, int status);
  void count_tokens(Api api, int input, int output);
  void count_fault(std::string_view kind);
  void count_rate_limited(std::string_view reason);

  prometheus::Gauge& active_streams() { return *active_streams_; }
  prometheus::Counter& client_disconnects() { return *client_disconnects_; }
  prometheus::Histogram& ttft() { return *ttft_; }
  prometheus::Histogram& itl() { return *itl_; }
  prometheus::Histogram& lateness() { return *lateness_; }
  const std::vector<double>& itl_bounds() const { return itl_bounds_; }
  const std::vector<double>& lateness_bounds() const { return lateness_bounds_; }

  /// The exposition text, after setting the batch gauges to the given values.
  std::string render(int running, int waiting);

 private:
  const std::vector<double> ttft_bounds_{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2,
                                         0.3, 0.5, 0.75, 1, 2.5, 5, 10, 30, 60};
  const std::vector<double> itl_bounds_{0.001, 0.0025, 0.005, 0.0075, 0.01, 0.0125, 0.015, 0.02, 0.025,
                                        0.03, 0.04, 0.05, 0.075, 0.1, 0.25, 0.5, 1};
  const std::vector<double> lateness_bounds_{0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01,
                                             0.025, 0.05, 0.1, 0.25, 1};
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>* requests_;
  prometheus::Family<prometheus::Counter>* faults_;
  prometheus::Family<prometheus::Counter>* rate_limited_;
  std::array<prometheus::Counter*, 2> input_tokens_{};
  std::array<prometheus::Counter*, 2> output_tokens_{};
  prometheus::Gauge* active_streams_;
  prometheus::Gauge* running_;
  prometheus::Gauge* queue_depth_;
  prometheus::Counter* client_disconnects_;
  prometheus::Histogram* ttft_;
  prometheus::Histogram* itl_;
  prometheus::Histogram* lateness_;
  // Status counters by [api][status - 100], created on first use under the mutex.
  std::mutex mutex_;
  std::array<std::array<std::atomic<prometheus::Counter*>, 500>, 2> by_status_{};
};

}  // namespace lab::mocks::llm
