#include "runtime/events/memory_event_bus.hpp"

#include <algorithm>

namespace lab::runtime {
namespace {

// The bus whose lock this thread holds while running callbacks, so that a callback may cancel
// its own subscription without taking the lock again.
thread_local const MemoryEventBus* tl_delivering = nullptr;

class DeliveryScope {
 public:
  explicit DeliveryScope(const MemoryEventBus* bus) : saved_(std::exchange(tl_delivering, bus)) {}
  ~DeliveryScope() { tl_delivering = saved_; }
  DeliveryScope(const DeliveryScope&) = delete;
  DeliveryScope& operator=(const DeliveryScope&) = delete;

 private:
  const MemoryEventBus* saved_;
};

}  // namespace

MemoryEventBus::MemoryEventBus(MemoryEventBusConfig config, const Clock& clock)
    : config_(config), clock_(clock), last_idle_scan_(clock.now()) {}

MemoryEventBus::~MemoryEventBus() = default;

Result<void> MemoryEventBus::open(std::string_view task_id) {
  const TimePoint now = clock_.now();
  std::lock_guard lk(mu_);
  expire_locked(now, false);
  std::error_code ec;
  find_or_create_locked(task_id, now, ec);
  if (ec) return ec;
  return {};
}

Result<std::uint64_t> MemoryEventBus::append(std::string_view task_id, EventKind kind, std::string data) {
  const TimePoint now = clock_.now();
  std::lock_guard lk(mu_);
  expire_locked(now, false);
  std::error_code ec;
  const auto it = find_or_create_locked(task_id, now, ec);
  if (ec) return ec;
  Stream& s = it->second;
  if (s.finished) return Errc::kStreamFinished;
  const std::size_t cost = data.size() + kEventOverheadBytes;
  if (!is_terminal(kind)) {
    while (bytes_ + cost > config_.max_total_bytes) {
      if (!evict_one_finished_locked()) {
        ++counters_.rejected;
        return Errc::kLimitExceeded;
      }
    }
  }
  const std::uint64_t id = s.next_id++;
  s.events.push_back(Event{id, kind, std::move(data)});
  s.bytes += cost;
  bytes_ += cost;
  while (s.events.size() > config_.max_events_per_stream) {
    const Event& old = s.events.front();
    const std::size_t old_cost = old.data.size() + kEventOverheadBytes;
    s.trimmed_through = old.id;
    s.bytes -= old_cost;
    bytes_ -= old_cost;
    s.events.pop_front();
    ++counters_.trimmed_events;
  }
  s.last_activity = now;
  if (is_terminal(kind)) {
    s.finished = true;
    s.finished_at = now;
    finished_.emplace_back(now, it->first);
  }
  ++counters_.appended;
  deliver_locked(s, s.events.back());
  return id;
}

Result<EventSlice> MemoryEventBus::read(std::string_view task_id, std::uint64_t after_id,
                                        std::size_t max_events) {
  const TimePoint now = clock_.now();
  std::lock_guard lk(mu_);
  expire_locked(now, false);
  const auto it = streams_.find(task_id);
  if (it == streams_.end()) return Errc::kNotFound;
  const Stream& s = it->second;
  EventSlice slice;
  slice.truncated = after_id < s.trimmed_through;
  slice.finished = s.finished;
  for (const Event& e : s.events) {
    if (slice.events.size() >= max_events) break;
    if (e.id > after_id) slice.events.push_back(e);
  }
  return slice;
}

Result<Subscription> MemoryEventBus::subscribe(std::string_view task_id, std::uint64_t after_id,
                                               EventCallback on_event) {
  if (!on_event) return Errc::kInvalidArgument;
  const TimePoint now = clock_.now();
  std::lock_guard lk(mu_);
  expire_locked(now, false);
  const auto it = streams_.find(task_id);
  if (it == streams_.end()) return Errc::kNotFound;
  Stream& s = it->second;
  const bool truncated = after_id < s.trimmed_through;
  {
    DeliveryScope scope(this);
    for (const Event& e : s.events) {
      if (e.id > after_id) on_event(e);
    }
  }
  if (s.finished) return Subscription(nullptr, /*ended=*/true, truncated);
  const std::uint64_t id = next_subscriber_id_++;
  s.subscribers.push_back(Subscriber{id, std::move(on_event)});
  s.last_activity = now;
  return Subscription([this, task = std::string(task_id), id] { cancel(task, id); }, false, truncated);
}

void MemoryEventBus::cancel(const std::string& task_id, std::uint64_t subscriber_id) {
  const auto mark = [&] {
    const auto it = streams_.find(task_id);
    if (it == streams_.end()) return;
    for (auto& sub : it->second.subscribers) {
      if (sub.id == subscriber_id) sub.cancelled = true;
    }
    // Drop marked subscribers unless a delivery on this stream is iterating over them.
    if (tl_delivering != this) {
      std::erase_if(it->second.subscribers, [](const Subscriber& s) { return s.cancelled; });
    }
  };
  if (tl_delivering == this) {  // inside one of our callbacks: mu_ is held by this thread
    mark();
    return;
  }
  std::lock_guard lk(mu_);
  mark();
}

void MemoryEventBus::deliver_locked(Stream& s, const Event& e) {
  {
    DeliveryScope scope(this);
    // By index: a callback may not subscribe (no growth), only mark itself cancelled.
    for (std::size_t i = 0; i < s.subscribers.size(); ++i) {
      if (!s.subscribers[i].cancelled) s.subscribers[i].on_event(e);
    }
  }
  if (is_terminal(e.kind)) {
    s.subscribers.clear();
  } else {
    std::erase_if(s.subscribers, [](const Subscriber& sub) { return sub.cancelled; });
  }
}

MemoryEventBus::Streams::iterator MemoryEventBus::find_or_create_locked(std::string_view task_id,
                                                                        TimePoint now,
                                                                        std::error_code& ec) {
  auto it = streams_.find(task_id);
  if (it != streams_.end()) return it;
  if (task_id.empty()) {
    ec = make_error_code(Errc::kInvalidArgument);
    return streams_.end();
  }
  while (streams_.size() >= config_.max_streams) {
    if (!evict_one_finished_locked()) {
      ++counters_.rejected;
      ec = make_error_code(Errc::kLimitExceeded);
      return streams_.end();
    }
  }
  it = streams_.emplace(std::string(task_id), Stream{}).first;
  it->second.last_activity = now;
  return it;
}

std::size_t MemoryEventBus::expire_locked(TimePoint now, bool force_idle_scan) {
  std::size_t n = 0;
  while (!finished_.empty() && finished_.front().first + config_.retention <= now) {
    const auto [at, task_id] = std::move(finished_.front());
    finished_.pop_front();
    const auto it = streams_.find(task_id);
    if (it != streams_.end() && it->second.finished && it->second.finished_at == at) {
      erase_locked(it);
      ++counters_.expired_streams;
      ++n;
    }
  }
  if (force_idle_scan || now - last_idle_scan_ >= config_.idle_timeout / 4) {
    last_idle_scan_ = now;
    for (auto it = streams_.begin(); it != streams_.end();) {
      const Stream& s = it->second;
      const bool watched = std::any_of(s.subscribers.begin(), s.subscribers.end(),
                                       [](const Subscriber& sub) { return !sub.cancelled; });
      if (!s.finished && !watched && s.last_activity + config_.idle_timeout <= now) {
        bytes_ -= s.bytes;
        it = streams_.erase(it);
        ++counters_.expired_streams;
        ++n;
      } else {
        ++it;
      }
    }
  }
  return n;
}

bool MemoryEventBus::evict_one_finished_locked() {
  while (!finished_.empty()) {
    const auto [at, task_id] = std::move(finished_.front());
    finished_.pop_front();
    const auto it = streams_.find(task_id);
    if (it != streams_.end() && it->second.finished && it->second.finished_at == at) {
      erase_locked(it);
      ++counters_.evicted_streams;
      return true;
    }
  }
  return false;
}

void MemoryEventBus::erase_locked(Streams::iterator it) {
  bytes_ -= it->second.bytes;
  streams_.erase(it);
}

std::size_t MemoryEventBus::purge_expired() {
  const TimePoint now = clock_.now();
  std::lock_guard lk(mu_);
  return expire_locked(now, true);
}

EventBusStats MemoryEventBus::stats() const {
  std::lock_guard lk(mu_);
  EventBusStats s = counters_;
  s.streams = streams_.size();
  s.bytes = bytes_;
  for (const auto& [id, stream] : streams_) {
    if (!stream.finished) ++s.open_streams;
    s.subscribers += stream.subscribers.size();
  }
  return s;
}

}  // namespace lab::runtime
