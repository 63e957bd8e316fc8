#pragma once
// TaskQueue in memory: the embedded default. One mutex; per-priority FIFOs of sequence numbers
// over a map of entries; an ordered set of lease and delay deadlines. Bounded: `max_depth`
// waiting tasks (enqueue beyond it is refused with kQueueFull), in-flight tasks are bounded by
// the consumers, `max_dead_letters` retained dead letters (the oldest are dropped).

#include <array>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/clock/clock.hpp"
#include "runtime/api/task_queue.hpp"

namespace lab::runtime {

struct MemoryQueueConfig {
  std::size_t max_depth = 10'000;        ///< waiting tasks (all priorities) before kQueueFull
  std::uint32_t max_deliveries = 5;      ///< deliveries without an ack before the dead-letter list
  std::size_t max_dead_letters = 10'000; ///< dead letters retained
};

class MemoryTaskQueue final : public TaskQueue {
 public:
  /// `clock` times leases and delays; it must outlive the queue.
  MemoryTaskQueue(MemoryQueueConfig config, const Clock& clock);

  EnqueueResult enqueue(Task task) override;
  Result<Lease> lease(std::string_view consumer, Nanos lease_duration, Nanos wait) override;
  Result<void> ack(std::string_view receipt) override;
  Result<void> nack(std::string_view receipt, Nanos delay) override;
  Result<void> dead_letter(std::string_view receipt, std::string_view reason) override;
  Result<TimePoint> extend(std::string_view receipt, Nanos lease_duration) override;
  QueueStats stats() override;
  std::vector<DeadLetter> dead_letters(std::size_t limit) override;
  void close() override;

 private:
  enum class Where : std::uint8_t { kReady, kLeased, kDelayed };
  struct Entry {
    Task task;
    std::uint32_t deliveries = 0;
    Where where = Where::kReady;
    TimePoint due;  // kLeased: lease expiry; kDelayed: visible again
  };
  using Entries = std::unordered_map<std::uint64_t, Entry>;

  // All *_locked members run with mu_ held.
  std::size_t reclaim_locked(TimePoint now);
  bool pop_ready_locked(std::uint64_t& seq);
  void detach_locked(std::uint64_t seq, Entry& e);  // out of ready/timers/in-flight accounting
  void bury_locked(Entries::iterator it, std::string reason);
  std::size_t depth_locked() const;
  // The entry a receipt names, or the error the contract gives for it.
  Result<Entries::iterator> find_locked(std::string_view receipt);

  static std::string make_receipt(std::uint64_t seq, std::uint32_t delivery);

  const MemoryQueueConfig config_;
  const Clock& clock_;
  std::mutex mu_;
  std::condition_variable cv_;
  Entries entries_;
  // Ready sequence numbers per priority; an entry acked while ready leaves a stale number here
  // that pop_ready_locked skips.
  std::array<std::deque<std::uint64_t>, kPriorityCount> ready_;
  std::array<std::size_t, kPriorityCount> waiting_{};   // ready + delayed per priority
  std::set<std::pair<TimePoint, std::uint64_t>> timers_;  // leased and delayed, by due time
  std::deque<DeadLetter> dead_;
  std::uint64_t next_seq_ = 1;
  bool closed_ = false;
  QueueStats counters_;  // the monotonic counters and in_flight; gauges are computed
};

}  // namespace lab::runtime
