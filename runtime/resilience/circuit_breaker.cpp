#include "runtime/resilience/circuit_breaker.hpp"
#include "runtime/resilience/ordered_delivery.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <limits>
#include <utility>

namespace lab::resilience {
namespace {

constexpr int kMaxCountWindow = 1'000'000;    // calls
constexpr int kMaxTimeWindow = 24 * 3600;     // seconds (one bucket each)

constexpr std::uint8_t kFailedBit = 1;
constexpr std::uint8_t kSlowBit = 2;

// Counts of one window, bucket or trial batch. Kept up to date by add/subtract so reading a
// snapshot is O(1) (resilience4j's subtract-on-evict).
struct Aggregate {
  std::int64_t calls = 0;
  std::int64_t failed = 0;
  std::int64_t slow = 0;
  std::int64_t slow_failed = 0;

  void add(std::uint8_t outcome) { apply(outcome, +1); }
  void subtract(std::uint8_t outcome) { apply(outcome, -1); }
  void subtract(const Aggregate& other) {
    calls -= other.calls;
    failed -= other.failed;
    slow -= other.slow;
    slow_failed -= other.slow_failed;
  }

 private:
  void apply(std::uint8_t outcome, int sign) {
    const bool is_failed = outcome & kFailedBit;
    const bool is_slow = outcome & kSlowBit;
    calls += sign;
    failed += is_failed ? sign : 0;
    slow += is_slow ? sign : 0;
    slow_failed += (is_failed && is_slow) ? sign : 0;
  }
};

// The CLOSED-state sliding window: a ring of the last N outcomes, or a ring of N one-second
// buckets indexed by epoch second.
class SlidingWindow {
 public:
  SlidingWindow(CircuitBreakerConfig::WindowType type, int size)
      : time_based_(type == CircuitBreakerConfig::WindowType::kTimeBased),
        size_(static_cast<std::size_t>(size)) {
    if (time_based_) {
      buckets_.resize(size_);
    } else {
      outcomes_.resize(size_);
    }
  }

  void record(std::int64_t second, std::uint8_t outcome) {
    if (time_based_) {
      evict_until(second);
      buckets_[index_of(head_second_)].add(outcome);
    } else {
      if (filled_ == size_) {
        total_.subtract(outcomes_[next_]);
      } else {
        ++filled_;
      }
      outcomes_[next_] = outcome;
      next_ = (next_ + 1) % size_;
    }
    total_.add(outcome);
  }

  // The aggregate of the window as seen at `second`.
  const Aggregate& aggregate(std::int64_t second) {
    if (time_based_) evict_until(second);
    return total_;
  }

  void clear() {
    total_ = {};
    filled_ = 0;
    next_ = 0;
    head_second_ = kNoSecond;
    std::fill(buckets_.begin(), buckets_.end(), Aggregate{});
  }

 private:
  static constexpr std::int64_t kNoSecond = std::numeric_limits<std::int64_t>::min();

  std::size_t index_of(std::int64_t second) const {
    const auto n = static_cast<std::int64_t>(size_);
    return static_cast<std::size_t>(((second % n) + n) % n);
  }

  // Moves the window's newest second to `second`, subtracting every bucket that falls out.
  void evict_until(std::int64_t second) {
    if (head_second_ != kNoSecond && second <= head_second_) return;
    if (head_second_ == kNoSecond ||
        second - head_second_ >= static_cast<std::int64_t>(size_)) {
      clear();
      head_second_ = second;
      return;
    }
    for (std::int64_t t = head_second_ + 1; t <= second; ++t) {
      Aggregate& bucket = buckets_[index_of(t)];
      total_.subtract(bucket);
      bucket = {};
    }
    head_second_ = second;
  }

  bool time_based_;
  std::size_t size_;
  Aggregate total_;
  // Count-based.
  std::vector<std::uint8_t> outcomes_;
  std::size_t next_ = 0;
  std::size_t filled_ = 0;
  // Time-based.
  std::vector<Aggregate> buckets_;
  std::int64_t head_second_ = kNoSecond;
};

std::int64_t epoch_second(TimePoint t) {
  const auto ns = t.time_since_epoch().count();
  constexpr std::int64_t kNsPerSecond = 1'000'000'000;
  // Floor division, so negative epochs (never produced by our clocks) still bucket correctly.
  return ns >= 0 ? ns / kNsPerSecond : -((-ns + kNsPerSecond - 1) / kNsPerSecond);
}

double percent(std::int64_t part, std::int64_t whole) {
  return whole == 0 ? 0.0 : 100.0 * static_cast<double>(part) / static_cast<double>(whole);
}

std::string format_double(double value) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%g", value);
  return buffer;
}

CircuitBreakerConfig seed_row(int failures, int window_seconds) {
  CircuitBreakerConfig config;
  config.window_type = CircuitBreakerConfig::WindowType::kTimeBased;
  config.window_size = window_seconds;
  config.failure_count_threshold = failures;
  return config;
}

}  // namespace

std::string_view to_string(CircuitState state) {
  switch (state) {
    case CircuitState::kClosed: return "CLOSED";
    case CircuitState::kOpen: return "OPEN";
    case CircuitState::kHalfOpen: return "HALF_OPEN";
    case CircuitState::kDisabled: return "DISABLED";
    case CircuitState::kForcedOpen: return "FORCED_OPEN";
  }
  return "UNKNOWN";
}

std::string_view to_string(TransitionReason reason) {
  switch (reason) {
    case TransitionReason::kFailureRateExceeded: return "failure_rate_exceeded";
    case TransitionReason::kSlowCallRateExceeded: return "slow_call_rate_exceeded";
    case TransitionReason::kFailureCountExceeded: return "failure_count_exceeded";
    case TransitionReason::kWaitDurationElapsed: return "wait_duration_elapsed";
    case TransitionReason::kTrialCallsSucceeded: return "trial_calls_succeeded";
    case TransitionReason::kTrialCallsFailed: return "trial_calls_failed";
    case TransitionReason::kManual: return "manual";
  }
  return "unknown";
}

std::vector<std::string> CircuitBreakerConfig::validate() const {
  std::vector<std::string> problems;
  const bool count_based = window_type == WindowType::kCountBased;
  const int max_window = count_based ? kMaxCountWindow : kMaxTimeWindow;
  if (window_size < 1 || window_size > max_window) {
    problems.push_back("window_size must be in [1, " + std::to_string(max_window) + "] " +
                       (count_based ? "calls" : "seconds") + ", got " +
                       std::to_string(window_size));
  }
  if (minimum_number_of_calls < 1) {
    problems.push_back("minimum_number_of_calls must be >= 1, got " +
                       std::to_string(minimum_number_of_calls));
  }
  if (!(failure_rate_threshold > 0.0 && failure_rate_threshold <= 100.0)) {
    problems.push_back("failure_rate_threshold must be in (0, 100] percent, got " +
                       format_double(failure_rate_threshold));
  }
  if (!(slow_call_rate_threshold > 0.0 && slow_call_rate_threshold <= 100.0)) {
    problems.push_back("slow_call_rate_threshold must be in (0, 100] percent, got " +
                       format_double(slow_call_rate_threshold));
  }
  if (failure_count_threshold < 0) {
    problems.push_back("failure_count_threshold must be >= 0 (0 disables it), got " +
                       std::to_string(failure_count_threshold));
  } else if (count_based && failure_count_threshold > window_size && window_size >= 1) {
    problems.push_back("failure_count_threshold " + std::to_string(failure_count_threshold) +
                       " can never be reached in a count window of " +
                       std::to_string(window_size) + " calls");
  }
  if (slow_call_duration_threshold <= Millis::zero()) {
    problems.push_back("slow_call_duration_threshold must be > 0, got " +
                       std::to_string(slow_call_duration_threshold.count()) + " ms");
  }
  if (wait_duration_in_open < Millis::zero()) {
    problems.push_back("wait_duration_in_open must be >= 0, got " +
                       std::to_string(wait_duration_in_open.count()) + " ms");
  }
  if (permitted_calls_in_half_open < 1) {
    problems.push_back("permitted_calls_in_half_open must be >= 1, got " +
                       std::to_string(permitted_calls_in_half_open));
  }
  if (half_open_call_timeout <= Millis::zero()) {
    problems.push_back("half_open_call_timeout must be > 0, got " +
                       std::to_string(half_open_call_timeout.count()) + " ms");
  }
  return problems;
}

CircuitBreakerConfig CircuitBreakerConfig::seed_llm_api() { return seed_row(5, 30); }
CircuitBreakerConfig CircuitBreakerConfig::seed_tool_calls() { return seed_row(10, 60); }
CircuitBreakerConfig CircuitBreakerConfig::seed_memory_query() { return seed_row(20, 60); }
CircuitBreakerConfig CircuitBreakerConfig::seed_database() { return seed_row(10, 30); }

struct CircuitBreaker::Impl {
  struct Trial {
    std::uint64_t id;
    TimePoint acquired_at;
  };

  Impl(const std::string& breaker_name, Clock& time_source, const CircuitBreakerConfig& cfg)
      : name(breaker_name),
        clock(time_source),
        config(cfg),
        window(cfg.window_type, cfg.window_size),
        minimum_calls(cfg.window_type == CircuitBreakerConfig::WindowType::kCountBased
                          ? std::min(cfg.minimum_number_of_calls, cfg.window_size)
                          : cfg.minimum_number_of_calls),
        state_since(time_source.now()) {}

  // --- everything below runs with `mutex` held ---

  // Applies the time-driven transitions due at `now`, oldest first.
  void advance(TimePoint now) {
    for (;;) {
      if (state == CircuitState::kOpen) {
        const TimePoint due = state_since + config.wait_duration_in_open;
        if (now < due) return;
        transition(CircuitState::kHalfOpen, TransitionReason::kWaitDurationElapsed, due);
        continue;
      }
      if (state == CircuitState::kHalfOpen && !trials.empty()) {
        auto oldest = std::min_element(trials.begin(), trials.end(),
                                       [](const Trial& a, const Trial& b) {
                                         return a.acquired_at < b.acquired_at;
                                       });
        const TimePoint due = oldest->acquired_at + config.half_open_call_timeout;
        if (now <= due) return;  // a call fails only by taking strictly longer than the timeout
        trials.erase(oldest);
        ++total_trial_timeouts;
        record_trial(kFailedBit, due);
        continue;
      }
      return;
    }
  }

  void transition(CircuitState to, TransitionReason reason, TimePoint at) {
    const CircuitState from = state;
    events.push(CircuitTransition{name, from, to, reason, at});
    state = to;
    state_since = at;
    ++generation;
    ++total_transitions;
    not_permitted = 0;
    trials.clear();
    trials_issued = 0;
    switch (to) {
      case CircuitState::kOpen:
        // Keep what tripped it visible: the sliding window after CLOSED, the trials after
        // HALF_OPEN.
        window_is_trial = from == CircuitState::kHalfOpen;
        break;
      case CircuitState::kHalfOpen:
        trial_aggregate = {};
        window_is_trial = true;
        window.clear();
        break;
      case CircuitState::kClosed:
      case CircuitState::kDisabled:
      case CircuitState::kForcedOpen:
        window.clear();
        trial_aggregate = {};
        window_is_trial = false;
        break;
    }
  }

  void record_closed(std::uint8_t outcome, TimePoint now) {
    const std::int64_t second = epoch_second(now);
    window.record(second, outcome);
    const Aggregate& total = window.aggregate(second);
    if (total.calls >= minimum_calls) {
      if (percent(total.failed, total.calls) >= config.failure_rate_threshold) {
        transition(CircuitState::kOpen, TransitionReason::kFailureRateExceeded, now);
        return;
      }
      if (percent(total.slow, total.calls) >= config.slow_call_rate_threshold) {
        transition(CircuitState::kOpen, TransitionReason::kSlowCallRateExceeded, now);
        return;
      }
    }
    if (config.failure_count_threshold > 0 && total.failed >= config.failure_count_threshold) {
      transition(CircuitState::kOpen, TransitionReason::kFailureCountExceeded, now);
    }
  }

  // Adds one trial outcome; when all permitted trials are in, decides CLOSED or OPEN.
  void record_trial(std::uint8_t outcome, TimePoint at) {
    trial_aggregate.add(outcome);
    if (trial_aggregate.calls < config.permitted_calls_in_half_open) return;
    const bool failed =
        percent(trial_aggregate.failed, trial_aggregate.calls) >= config.failure_rate_threshold ||
        percent(trial_aggregate.slow, trial_aggregate.calls) >= config.slow_call_rate_threshold;
    transition(failed ? CircuitState::kOpen : CircuitState::kClosed,
               failed ? TransitionReason::kTrialCallsFailed : TransitionReason::kTrialCallsSucceeded,
               at);
  }

  std::vector<Trial>::iterator find_trial(std::uint64_t id) {
    return std::find_if(trials.begin(), trials.end(),
                        [id](const Trial& t) { return t.id == id; });
  }

  void record_outcome(const Permit& permit, bool failed, Nanos duration, TimePoint now) {
    if (!permit.permitted) return;  // a rejection has no outcome
    const bool is_trial = permit.trial_id != 0;
    const bool trial_timed_out = is_trial && duration > config.half_open_call_timeout;
    if (trial_timed_out) failed = true;
    const bool slow = duration > config.slow_call_duration_threshold;
    const std::uint8_t outcome = static_cast<std::uint8_t>((failed ? kFailedBit : 0) |
                                                           (slow ? kSlowBit : 0));
    const bool current = permit.generation == generation;
    auto trial = current && is_trial ? find_trial(permit.trial_id) : trials.end();
    const bool live = current && (!is_trial || trial != trials.end());

    ++(failed ? total_failed : total_successful);
    if (slow) ++total_slow;
    if (!live) {
      ++total_stale_outcomes;
      return;
    }
    switch (state) {
      case CircuitState::kClosed:
        record_closed(outcome, now);
        break;
      case CircuitState::kHalfOpen:
        trials.erase(trial);
        if (trial_timed_out) ++total_trial_timeouts;
        record_trial(outcome, now);
        break;
      case CircuitState::kDisabled:
      case CircuitState::kOpen:        // never issue permits: a live permit cannot be OPEN's
      case CircuitState::kForcedOpen:
        break;
    }
  }

  Permit reject(TimePoint now) {
    ++not_permitted;
    ++total_not_permitted;
    Permit permit;
    permit.generation = generation;
    if (state == CircuitState::kOpen) {
      permit.retry_after = state_since + config.wait_duration_in_open - now;
    }
    return permit;
  }

  const std::string& name;
  Clock& clock;
  const CircuitBreakerConfig& config;

  std::mutex mutex;
  SlidingWindow window;
  const std::int64_t minimum_calls;
  CircuitState state = CircuitState::kClosed;
  TimePoint state_since;
  std::uint64_t generation = 1;
  bool window_is_trial = false;

  std::vector<Trial> trials;  // outstanding HALF_OPEN trial calls
  int trials_issued = 0;
  std::uint64_t next_trial_id = 1;
  Aggregate trial_aggregate;

  std::int64_t not_permitted = 0;
  std::uint64_t total_successful = 0;
  std::uint64_t total_failed = 0;
  std::uint64_t total_slow = 0;
  std::uint64_t total_not_permitted = 0;
  std::uint64_t total_trial_timeouts = 0;
  std::uint64_t total_stale_outcomes = 0;
  std::uint64_t total_released = 0;
  std::uint64_t total_transitions = 0;

  OrderedDelivery<CircuitTransition> events;  // changes not yet handed to listeners
};

CircuitBreaker::CircuitBreaker(std::string name, Clock& clock, CircuitBreakerConfig config)
    : name_(std::move(name)), config_(config) {
  const auto problems = config_.validate();
  if (!problems.empty()) {
    std::fprintf(stderr, "invalid circuit breaker config for '%s':\n", name_.c_str());
    for (const auto& problem : problems) std::fprintf(stderr, "  %s\n", problem.c_str());
    std::abort();
  }
  impl_ = std::make_unique<Impl>(name_, clock, config_);
}

CircuitBreaker::~CircuitBreaker() = default;

CircuitBreaker::Permit CircuitBreaker::try_acquire() {
  Permit permit;
  {
    std::lock_guard lock(impl_->mutex);
    const TimePoint now = impl_->clock.now();
    impl_->advance(now);
    switch (impl_->state) {
      case CircuitState::kClosed:
      case CircuitState::kDisabled:
        permit.permitted = true;
        permit.generation = impl_->generation;
        break;
      case CircuitState::kHalfOpen:
        if (impl_->trials_issued < config_.permitted_calls_in_half_open) {
          ++impl_->trials_issued;
          permit.permitted = true;
          permit.generation = impl_->generation;
          permit.trial_id = impl_->next_trial_id++;
          impl_->trials.push_back(Impl::Trial{permit.trial_id, now});
        } else {
          permit = impl_->reject(now);
        }
        break;
      case CircuitState::kOpen:
      case CircuitState::kForcedOpen:
        permit = impl_->reject(now);
        break;
    }
  }
  flush_events();
  return permit;
}

void CircuitBreaker::on_success(const Permit& permit, Nanos duration) {
  {
    std::lock_guard lock(impl_->mutex);
    const TimePoint now = impl_->clock.now();
    impl_->advance(now);
    impl_->record_outcome(permit, /*failed=*/false, duration, now);
  }
  flush_events();
}

void CircuitBreaker::on_error(const Permit& permit, Nanos duration) {
  {
    std::lock_guard lock(impl_->mutex);
    const TimePoint now = impl_->clock.now();
    impl_->advance(now);
    impl_->record_outcome(permit, /*failed=*/true, duration, now);
  }
  flush_events();
}

void CircuitBreaker::release(const Permit& permit) {
  {
    std::lock_guard lock(impl_->mutex);
    impl_->advance(impl_->clock.now());
    if (permit.permitted) {
      ++impl_->total_released;
      if (permit.trial_id != 0 && permit.generation == impl_->generation) {
        auto trial = impl_->find_trial(permit.trial_id);
        if (trial != impl_->trials.end()) {
          impl_->trials.erase(trial);
          --impl_->trials_issued;
        }
      }
    }
  }
  flush_events();
}

CircuitState CircuitBreaker::state() {
  CircuitState current;
  {
    std::lock_guard lock(impl_->mutex);
    impl_->advance(impl_->clock.now());
    current = impl_->state;
  }
  flush_events();
  return current;
}

CircuitMetrics CircuitBreaker::metrics() {
  CircuitMetrics m;
  {
    std::lock_guard lock(impl_->mutex);
    const TimePoint now = impl_->clock.now();
    impl_->advance(now);
    const Aggregate& window = impl_->window_is_trial ? impl_->trial_aggregate
                                                     : impl_->window.aggregate(epoch_second(now));
    const std::int64_t minimum = impl_->window_is_trial ? config_.permitted_calls_in_half_open
                                                        : impl_->minimum_calls;
    m.state = impl_->state;
    if (window.calls >= minimum) {
      m.failure_rate = percent(window.failed, window.calls);
      m.slow_call_rate = percent(window.slow, window.calls);
    }
    m.buffered_calls = window.calls;
    m.failed_calls = window.failed;
    m.successful_calls = window.calls - window.failed;
    m.slow_calls = window.slow;
    m.slow_failed_calls = window.slow_failed;
    m.slow_successful_calls = window.slow - window.slow_failed;
    m.not_permitted_calls = impl_->not_permitted;
    m.total_successful = impl_->total_successful;
    m.total_failed = impl_->total_failed;
    m.total_slow = impl_->total_slow;
    m.total_not_permitted = impl_->total_not_permitted;
    m.total_trial_timeouts = impl_->total_trial_timeouts;
    m.total_stale_outcomes = impl_->total_stale_outcomes;
    m.total_released = impl_->total_released;
    m.total_transitions = impl_->total_transitions;
  }
  flush_events();
  return m;
}

void CircuitBreaker::reset() {
  {
    std::lock_guard lock(impl_->mutex);
    const TimePoint now = impl_->clock.now();
    impl_->advance(now);
    impl_->transition(CircuitState::kClosed, TransitionReason::kManual, now);
  }
  flush_events();
}

void CircuitBreaker::disable() {
  {
    std::lock_guard lock(impl_->mutex);
    const TimePoint now = impl_->clock.now();
    impl_->advance(now);
    impl_->transition(CircuitState::kDisabled, TransitionReason::kManual, now);
  }
  flush_events();
}

void CircuitBreaker::force_open() {
  {
    std::lock_guard lock(impl_->mutex);
    const TimePoint now = impl_->clock.now();
    impl_->advance(now);
    impl_->transition(CircuitState::kForcedOpen, TransitionReason::kManual, now);
  }
  flush_events();
}

void CircuitBreaker::add_listener(CircuitTransitionListener listener) {
  std::lock_guard lock(impl_->mutex);
  impl_->events.add_listener(std::move(listener));
}

// Ordered, one deliverer at a time: see ordered_delivery.hpp.
void CircuitBreaker::flush_events() { impl_->events.deliver(impl_->mutex); }

CircuitBreakerRegistry::CircuitBreakerRegistry(Clock& clock) : clock_(clock) {}

CircuitBreaker& CircuitBreakerRegistry::get_or_create(std::string_view name,
                                                      const CircuitBreakerConfig& config) {
  std::lock_guard lock(mutex_);
  auto it = breakers_.find(name);
  if (it != breakers_.end()) return *it->second;
  auto breaker = std::make_unique<CircuitBreaker>(std::string(name), clock_, config);
  breaker->add_listener([this](const CircuitTransition& transition) { dispatch(transition); });
  return *breakers_.emplace(std::string(name), std::move(breaker)).first->second;
}

CircuitBreaker* CircuitBreakerRegistry::find(std::string_view name) {
  std::lock_guard lock(mutex_);
  auto it = breakers_.find(name);
  return it == breakers_.end() ? nullptr : it->second.get();
}

std::vector<CircuitBreaker*> CircuitBreakerRegistry::all_breakers() {
  std::lock_guard lock(mutex_);
  std::vector<CircuitBreaker*> all;
  all.reserve(breakers_.size());
  for (const auto& [name, breaker] : breakers_) all.push_back(breaker.get());
  return all;
}

// The breakers are queried outside mutex_: state() may deliver transitions to listeners, and
// a listener may call back into the registry.
std::map<std::string, CircuitState, std::less<>> CircuitBreakerRegistry::states() {
  std::map<std::string, CircuitState, std::less<>> result;
  for (CircuitBreaker* breaker : all_breakers()) result.emplace(breaker->name(), breaker->state());
  return result;
}

std::map<std::string, CircuitMetrics, std::less<>> CircuitBreakerRegistry::metrics() {
  std::map<std::string, CircuitMetrics, std::less<>> result;
  for (CircuitBreaker* breaker : all_breakers()) {
    result.emplace(breaker->name(), breaker->metrics());
  }
  return result;
}

void CircuitBreakerRegistry::add_listener(CircuitTransitionListener listener) {
  std::lock_guard lock(listeners_mutex_);
  listeners_.push_back(std::make_shared<const CircuitTransitionListener>(std::move(listener)));
}

void CircuitBreakerRegistry::dispatch(const CircuitTransition& transition) {
  std::vector<std::shared_ptr<const CircuitTransitionListener>> listeners;
  {
    std::lock_guard lock(listeners_mutex_);
    listeners = listeners_;
  }
  for (const auto& listener : listeners) (*listener)(transition);
}

}  // namespace lab::resilience
