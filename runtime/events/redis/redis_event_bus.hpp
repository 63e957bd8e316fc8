#pragma once
// EventBus on Redis: one stream per task, shared by every gateway and worker process (a worker
// appends, any gateway replays and follows for SSE). Event ids are the stream ids "0-1", "0-2",
// ... (XADD with explicit ids, assigned inside a script from the last entry), so the interface's
// sequential ids are the stream's own and survive process restarts.
//
//   key           <key_prefix>events:{<task id>}   fields k (event name), d (data)
//   open          creates the empty stream (XGROUP CREATE ... MKSTREAM: the only way to make an
//                 empty stream) with TTL idle_timeout
//   append        XADD MAXLEN max_events_per_stream (older events are trimmed); TTL idle_timeout
//                 after a non-terminal event, `retention` after the terminal one; refused with
//                 kStreamFinished once the last entry is terminal
//   read          XRANGE from after_id (the SSE Last-Event-ID), `truncated` when the first
//                 retained id is past after_id + 1
//   subscribe     the backlog by XRANGE inside the call, then a reader thread per bus follows
//                 every subscribed stream with one XREAD BLOCK (woken by CLIENT UNBLOCK when a
//                 subscription is added) and delivers with the bus's lock held; it also renews
//                 the TTL of watched, unfinished streams so that they do not expire under a
//                 listener (as the in-memory bus does not expire watched streams)
//
// Bounds: max_events_per_stream (MAXLEN), max_event_bytes (a larger non-terminal event is
// refused with kLimitExceeded), max_subscriptions per bus, TTLs on every stream. The number of
// streams and their bytes are bounded by the TTLs and by the server's maxmemory (an OOM reply
// becomes kLimitExceeded): unlike the in-memory bus there is no per-bus stream count, and under
// OOM even a terminal event is refused.
//
// Failures: append/open/read answer kUnavailable when Redis is unreachable; append is not
// retried here (a lost reply may hide an applied XADD; a retry would then get the next id). The
// reader reconnects with the connection's backoff and resumes from each subscriber's last id, so
// a subscriber sees no gap and no duplicate across a dropped connection or a restart (events
// already trimmed meanwhile excepted).

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "runtime/api/event_bus.hpp"
#include "runtime/api/string_key.hpp"
#include "runtime/redis/redis_connection.hpp"

namespace lab::runtime {

struct RedisEventBusConfig {
  std::string key_prefix = "agentlab:";
  std::size_t max_events_per_stream = 4096;
  std::size_t max_event_bytes = std::size_t{1} << 20;
  Nanos retention = Seconds(60);
  Nanos idle_timeout = Seconds(600);
  std::size_t max_subscriptions = 10'000;
  Millis poll_interval{100};  ///< the reader's longest XREAD BLOCK (also its TTL-renewal tick)
  std::size_t read_batch = 256;  ///< XREAD COUNT per stream
  /// With more than one stream watched, the reader waits this long after a read that delivered
  /// events before the next one, so a read serves many appends (an XREAD costs Redis time per
  /// stream named). 0: read again at once.
  Millis batch_window{2};
};

struct RedisEventBusStats {
  std::size_t subscriptions = 0;   ///< live
  std::uint64_t appended = 0;      ///< by this process
  std::uint64_t delivered = 0;     ///< callbacks run by this process
  std::uint64_t reader_errors = 0; ///< failed XREADs (the reader then reconnects)
};

class RedisEventBus final : public EventBus {
 public:
  /// `pool` must outlive the bus. Starts the reader thread (idle until a subscription).
  RedisEventBus(RedisEventBusConfig config, redis::RedisPool& pool);
  ~RedisEventBus() override;
  RedisEventBus(const RedisEventBus&) = delete;
  RedisEventBus& operator=(const RedisEventBus&) = delete;

  Result<void> open(std::string_view task_id) override;
  Result<std::uint64_t> append(std::string_view task_id, EventKind kind, std::string data) override;
  Result<EventSlice> read(std::string_view task_id, std::uint64_t after_id, std::size_t max_events) override;
  Result<Subscription> subscribe(std::string_view task_id, std::uint64_t after_id,
                                 EventCallback on_event) override;

  std::string stream_key(std::string_view task_id) const;
  RedisEventBusStats stats() const;

 private:
  struct Subscriber {
    std::uint64_t id = 0;
    std::uint64_t cursor = 0;  // last event id delivered (or the subscriber's after_id)
    EventCallback on_event;
    bool cancelled = false;
  };
  struct Watched {
    std::vector<Subscriber> subscribers;
  };

  void reader_loop();
  void cancel(const std::string& task_id, std::uint64_t subscriber_id);
  // Delivers e to the task's subscribers that have not seen it; ends them on a terminal event.
  void deliver_locked(const std::string& task_id, const Event& e);
  void wake_reader();

  const RedisEventBusConfig config_;
  redis::RedisPool& pool_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  StringMap<Watched> watched_;  // task id → subscribers
  std::size_t subscriptions_ = 0;
  std::uint64_t next_subscriber_id_ = 1;
  bool stop_ = false;
  std::atomic<long long> reader_client_id_{0};
  std::atomic<std::uint64_t> appended_{0};
  std::atomic<std::uint64_t> delivered_{0};
  std::atomic<std::uint64_t> reader_errors_{0};
  std::thread reader_;
};

}  // namespace lab::runtime
