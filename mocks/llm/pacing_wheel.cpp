#include "mocks/llm/pacing_wheel.hpp"

#include <algorithm>
#include <utility>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

namespace lab::mocks::llm {

/// The timer of the wheel's pending wait. Held by that wait's handler (and by nothing else), so
/// it dies with the handler: after the expiry when no new wait is needed, or when the
/// io_context is destroyed with the wait still pending.
struct PacingWheel::Driver : std::enable_shared_from_this<Driver> {
  Driver(const boost::asio::any_io_executor& executor, PacingWheel* owner)
      : timer(executor), wheel(owner) {}
  ~Driver() {
    if (wheel != nullptr) wheel->driver_ = nullptr;
  }
  Driver(const Driver&) = delete;
  Driver& operator=(const Driver&) = delete;

  boost::asio::steady_timer timer;
  PacingWheel* wheel;    ///< null once the wheel is gone
  bool waiting = false;  ///< a wait of the current generation is pending
};

PacingWheel::Entry::~Entry() {
  if (wheel_ != nullptr) wheel_->cancel(*this);
}

PacingWheel::PacingWheel(boost::asio::any_io_executor executor, Nanos quantum)
    : executor_(std::move(executor)), quantum_(std::max(quantum, Nanos(0))) {}

PacingWheel::~PacingWheel() {
  if (driver_ != nullptr) driver_->wheel = nullptr;
  for (auto& [slot, entries] : slots_) {
    for (Entry* entry : entries) {
      if (entry != nullptr) entry->wheel_ = nullptr;
    }
  }
}

std::int64_t PacingWheel::slot_of(TimePoint due) const {
  const std::int64_t ns = due.time_since_epoch().count();
  if (quantum_.count() == 0) return ns;
  const std::int64_t q = quantum_.count();
  // Round up (steady_clock counts from boot: never negative here, but stay correct anyway).
  return ns >= 0 ? (ns + q - 1) / q : -((-ns) / q);
}

TimePoint PacingWheel::slot_time(std::int64_t slot) const {
  return TimePoint(quantum_.count() == 0 ? Nanos(slot) : Nanos(slot * quantum_.count()));
}

void PacingWheel::schedule(Entry& entry, TimePoint due) {
  if (entry.wheel_ != nullptr) cancel(entry);
  const std::int64_t slot = slot_of(due);
  auto it = slots_.find(slot);
  if (it == slots_.end()) {
    std::vector<Entry*> entries;
    if (!spare_.empty()) {
      entries = std::move(spare_.back());
      spare_.pop_back();
    }
    it = slots_.emplace(slot, std::move(entries)).first;
  }
  it->second.push_back(&entry);
  entry.wheel_ = this;
  entry.slot_ = slot;
  ++size_;
  // While a tick runs, on_expiry re-arms once at its end.
  if (!in_tick_) arm();
}

void PacingWheel::cancel(Entry& entry) {
  if (entry.wheel_ != this) return;
  entry.wheel_ = nullptr;
  --size_;
  if (auto it = slots_.find(entry.slot_); it != slots_.end()) {
    auto& entries = it->second;
    if (auto at = std::find(entries.begin(), entries.end(), &entry); at != entries.end()) {
      entries.erase(at);
      if (entries.empty()) {
        spare_.push_back(std::move(entries));
        slots_.erase(it);
      }
      return;  // a stale timer expiry for an emptied slot finds nothing due and re-arms
    }
  }
  // Not in the map: it waits in the batch being run.
  if (running_ != nullptr) {
    std::replace(running_->begin(), running_->end(), &entry, static_cast<Entry*>(nullptr));
  }
}

std::shared_ptr<PacingWheel::Driver> PacingWheel::driver() {
  if (driver_ != nullptr) return driver_->shared_from_this();
  auto driver = std::make_shared<Driver>(executor_, this);
  driver_ = driver.get();
  return driver;
}

void PacingWheel::arm() {
  if (slots_.empty() || polling_) return;  // (no wait: the driver goes with the last handler)
  const std::int64_t first = slots_.begin()->first;
  const TimePoint at = slot_time(first);
  if (at - std::chrono::steady_clock::now() <= kSpinBelow) {
    std::shared_ptr<Driver> driver = this->driver();
    if (driver->waiting) {  // a timer for a later slot: drop it
      ++generation_;
      driver->waiting = false;
      driver->timer.cancel();
    }
    polling_ = true;
    boost::asio::post(executor_, [driver] {
      if (driver->wheel != nullptr) driver->wheel->on_poll();
    });
    return;
  }
  // A pending wait for this slot or an earlier one is fine (an early expiry re-arms).
  if (driver_ != nullptr && driver_->waiting && armed_slot_ <= first) return;
  std::shared_ptr<Driver> driver = this->driver();
  armed_slot_ = first;
  const std::uint64_t generation = ++generation_;
  driver->waiting = true;
  driver->timer.expires_at(slot_time(first));  // a pending wait ends as a stale generation
  driver->timer.async_wait([driver, generation](const boost::system::error_code&) {
    PacingWheel* wheel = driver->wheel;
    if (wheel == nullptr || generation != wheel->generation_) return;
    driver->waiting = false;
    wheel->on_expiry();
  });
}

void PacingWheel::on_poll() {
  polling_ = false;
  if (!slots_.empty() && slot_time(slots_.begin()->first) <= std::chrono::steady_clock::now()) {
    on_expiry();
  } else {
    arm();
  }
}

void PacingWheel::on_expiry() {
  const TimePoint now = std::chrono::steady_clock::now();
  if (!slots_.empty() && slot_time(slots_.begin()->first) <= now) ++batches_;
  in_tick_ = true;
  while (!slots_.empty() && slot_time(slots_.begin()->first) <= now) {
    auto node = slots_.extract(slots_.begin());
    std::vector<Entry*>& entries = node.mapped();
    running_ = &entries;
    // Index loop: cancel() may null entries of this batch while it runs (never resize it).
    for (std::size_t i = 0; i < entries.size(); ++i) {
      Entry* entry = entries[i];
      if (entry == nullptr) continue;
      entry->wheel_ = nullptr;
      --size_;
      ++runs_;
      entry->on_due(now);
    }
    running_ = nullptr;
    entries.clear();
    spare_.push_back(std::move(entries));
  }
  // The tick's sends, together; their sinks schedule the next tokens.
  batch_.submit();
  in_tick_ = false;
  arm();
}

}  // namespace lab::mocks::llm
