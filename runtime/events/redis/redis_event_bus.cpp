#include "runtime/events/redis/redis_event_bus.hpp"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <utility>

namespace lab::runtime {
namespace {

using redis::Args;
using redis::RedisReply;
using redis::RedisScript;

// KEYS[1] = the task's stream. ARGV: idle ms.
constexpr std::string_view kOpen = R"lua(
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('XGROUP', 'CREATE', KEYS[1], 'open', '$', 'MKSTREAM')
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
)lua";

// ARGV: event name, data, terminal (0/1), maxlen, retention ms, idle ms. The new id, or -1 when
// the stream already ended.
constexpr std::string_view kAppend = R"lua(
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)[1]
local next_id = 1
if last then
  local kind = last[2][2]
  if kind == 'done' or kind == 'error' then return -1 end
  next_id = tonumber(string.sub(last[1], 3)) + 1
end
redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[4], '0-' .. next_id, 'k', ARGV[1], 'd', ARGV[2])
if ARGV[3] == '1' then
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
else
  redis.call('PEXPIRE', KEYS[1], ARGV[6])
end
return next_id
)lua";

// ARGV: after id, max events. nil when the stream does not exist, else
// {first retained id or '', last event name or '', events}.
constexpr std::string_view kRead = R"lua(
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local first = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)[1]
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)[1]
local events = {}
if tonumber(ARGV[2]) > 0 then
  local from = '-'
  if ARGV[1] ~= '0' then from = '(0-' .. ARGV[1] end
  events = redis.call('XRANGE', KEYS[1], from, '+', 'COUNT', ARGV[2])
end
return {first and first[1] or '', last and last[2][2] or '', events}
)lua";

// ARGV: idle ms. Renews the TTL of an unfinished stream (a watched one).
constexpr std::string_view kTouch = R"lua(
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)[1]
if last and (last[2][2] == 'done' or last[2][2] == 'error') then return 0 end
return redis.call('PEXPIRE', KEYS[1], ARGV[1])
)lua";

struct Scripts {
  RedisScript open{std::string(kOpen)};
  RedisScript append{std::string(kAppend)};
  RedisScript read{std::string(kRead)};
  RedisScript touch{std::string(kTouch)};
};

const Scripts& scripts() {
  static const Scripts s;
  return s;
}

long long millis(Nanos d) { return std::max<long long>(1, std::chrono::duration_cast<Millis>(d).count()); }

// "0-<n>" → n; 0 for anything else.
std::uint64_t event_id(std::string_view stream_id) {
  if (stream_id.size() < 3 || stream_id.substr(0, 2) != "0-") return 0;
  std::uint64_t n = 0;
  const auto [p, ec] = std::from_chars(stream_id.data() + 2, stream_id.data() + stream_id.size(), n);
  return ec == std::errc() && p == stream_id.data() + stream_id.size() ? n : 0;
}

// A stream entry {id, {k, name, d, data}} as an Event; false if malformed.
bool to_event(const RedisReply& entry, Event& out) {
  if (entry.size() != 2 || !entry.elements[1].is_array()) return false;
  out.id = event_id(entry.elements[0].str);
  const RedisReply& fields = entry.elements[1];
  std::optional<EventKind> kind;
  out.data.clear();
  for (std::size_t i = 0; i + 1 < fields.size(); i += 2) {
    if (fields.elements[i].str == "k") kind = parse_event_kind(fields.elements[i + 1].str);
    else if (fields.elements[i].str == "d") out.data = fields.elements[i + 1].str;
  }
  if (!kind || out.id == 0) return false;
  out.kind = *kind;
  return true;
}

// The bus whose lock this thread holds while running callbacks (a callback may cancel itself).
thread_local const RedisEventBus* tl_delivering = nullptr;

class DeliveryScope {
 public:
  explicit DeliveryScope(const RedisEventBus* bus) : saved_(std::exchange(tl_delivering, bus)) {}
  ~DeliveryScope() { tl_delivering = saved_; }
  DeliveryScope(const DeliveryScope&) = delete;
  DeliveryScope& operator=(const DeliveryScope&) = delete;

 private:
  const RedisEventBus* saved_;
};

}  // namespace

RedisEventBus::RedisEventBus(RedisEventBusConfig config, redis::RedisPool& pool)
    : config_(std::move(config)), pool_(pool), reader_([this] { reader_loop(); }) {}

RedisEventBus::~RedisEventBus() {
  {
    std::lock_guard lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  wake_reader();
  reader_.join();
}

std::string RedisEventBus::stream_key(std::string_view task_id) const {
  std::string key = config_.key_prefix;
  key += "events:{";
  key += task_id;
  key += '}';
  return key;
}

Result<void> RedisEventBus::open(std::string_view task_id) {
  if (task_id.empty()) return Errc::kInvalidArgument;
  auto r = pool_.eval(scripts().open, std::vector<std::string>{stream_key(task_id)},
                      std::vector<std::string>{std::to_string(millis(config_.idle_timeout))});
  if (!r.ok()) return redis::to_runtime(r.error());
  return {};
}

Result<std::uint64_t> RedisEventBus::append(std::string_view task_id, EventKind kind, std::string data) {
  if (task_id.empty()) return Errc::kInvalidArgument;
  const bool terminal = is_terminal(kind);
  if (!terminal && data.size() > config_.max_event_bytes) return Errc::kLimitExceeded;
  auto r = pool_.eval(scripts().append, std::vector<std::string>{stream_key(task_id)},
                      std::vector<std::string>{std::string(to_string(kind)), std::move(data),
                                               terminal ? "1" : "0",
                                               std::to_string(std::max<std::size_t>(1, config_.max_events_per_stream)),
                                               std::to_string(millis(config_.retention)),
                                               std::to_string(millis(config_.idle_timeout))});
  if (!r.ok()) return redis::to_runtime(r.error());
  if (!r->is_integer()) return Errc::kBackendError;
  if (r->integer < 0) return Errc::kStreamFinished;
  ++appended_;
  return static_cast<std::uint64_t>(r->integer);
}

Result<EventSlice> RedisEventBus::read(std::string_view task_id, std::uint64_t after_id, std::size_t max_events) {
  auto r = pool_.eval(scripts().read, std::vector<std::string>{stream_key(task_id)},
                      std::vector<std::string>{std::to_string(after_id), std::to_string(max_events)});
  if (!r.ok()) return redis::to_runtime(r.error());
  if (r->is_nil()) return Errc::kNotFound;
  if (!r->is_array() || r->size() != 3) return Errc::kBackendError;
  EventSlice slice;
  const std::uint64_t first = event_id(r->elements[0].str);
  slice.truncated = first > after_id + 1;
  const auto last_kind = parse_event_kind(r->elements[1].str);
  slice.finished = last_kind && is_terminal(*last_kind);
  for (const RedisReply& entry : r->elements[2].elements) {
    Event e;
    if (!to_event(entry, e)) return Errc::kBackendError;
    slice.events.push_back(std::move(e));
  }
  return slice;
}

Result<Subscription> RedisEventBus::subscribe(std::string_view task_id, std::uint64_t after_id,
                                              EventCallback on_event) {
  if (!on_event) return Errc::kInvalidArgument;
  {
    std::lock_guard lk(mu_);
    if (subscriptions_ >= config_.max_subscriptions) return Errc::kLimitExceeded;
  }
  // The backlog (everything retained after after_id), read before taking the lock; events
  // appended from here on are picked up by the reader from the subscriber's cursor.
  auto backlog = read(task_id, after_id, std::max<std::size_t>(1, config_.max_events_per_stream));
  if (!backlog.ok()) return backlog.error();
  const std::string task(task_id);
  std::unique_lock lk(mu_);
  std::uint64_t cursor = after_id;
  bool ended = false;
  {
    DeliveryScope scope(this);
    for (const Event& e : backlog->events) {
      if (e.id <= cursor) continue;
      on_event(e);
      ++delivered_;
      cursor = e.id;
      ended = ended || is_terminal(e.kind);
    }
  }
  ended = ended || backlog->finished;
  if (ended) return Subscription(nullptr, /*ended=*/true, backlog->truncated);
  const std::uint64_t id = next_subscriber_id_++;
  watched_[task].subscribers.push_back(Subscriber{id, cursor, std::move(on_event)});
  ++subscriptions_;
  lk.unlock();
  cv_.notify_all();
  wake_reader();
  return Subscription([this, task, id] { cancel(task, id); }, false, backlog->truncated);
}

void RedisEventBus::cancel(const std::string& task_id, std::uint64_t subscriber_id) {
  const auto remove = [&](bool erase_now) {
    const auto it = watched_.find(task_id);
    if (it == watched_.end()) return;
    auto& subs = it->second.subscribers;
    for (auto& s : subs) {
      if (s.id == subscriber_id && !s.cancelled) {
        s.cancelled = true;
        --subscriptions_;
      }
    }
    if (!erase_now) return;  // the delivering loop drops it after the callback returns
    std::erase_if(subs, [](const Subscriber& s) { return s.cancelled; });
    if (subs.empty()) watched_.erase(it);
  };
  if (tl_delivering == this) {  // inside one of our callbacks: mu_ is held by this thread
    remove(false);
    return;
  }
  std::lock_guard lk(mu_);
  remove(true);
}

void RedisEventBus::deliver_locked(const std::string& task_id, const Event& e) {
  const auto it = watched_.find(task_id);
  if (it == watched_.end()) return;
  auto& subs = it->second.subscribers;
  {
    DeliveryScope scope(this);
    for (std::size_t i = 0; i < subs.size(); ++i) {
      if (subs[i].cancelled || e.id <= subs[i].cursor) continue;
      subs[i].cursor = e.id;
      subs[i].on_event(e);
      ++delivered_;
    }
  }
  if (is_terminal(e.kind)) {
    for (const auto& s : subs) {
      if (!s.cancelled) --subscriptions_;
    }
    watched_.erase(it);
    return;
  }
  std::erase_if(subs, [](const Subscriber& s) { return s.cancelled; });
  if (subs.empty()) watched_.erase(it);
}

void RedisEventBus::wake_reader() {
  const long long id = reader_client_id_.load();
  if (id == 0) return;
  auto conn = pool_.acquire();
  if (!conn.ok()) return;  // it wakes within poll_interval anyway
  (void)(*conn)->command(Args{"CLIENT", "UNBLOCK"}.add(id));
}

void RedisEventBus::reader_loop() {
  redis::RedisOptions options = pool_.options();
  options.client_name = "agentlab-event-reader";
  redis::RedisConnection conn(options, SteadyClock::instance(), 0x5eed);
  const auto touch_every = std::max<Nanos>(config_.idle_timeout / 4, Millis(1));
  auto last_touch = std::chrono::steady_clock::now();
  std::vector<std::pair<std::string, std::string>> streams;  // (task id, key)
  std::vector<std::uint64_t> cursors;
  StringMap<std::size_t> by_key;  // key → index in streams
  for (;;) {
    {
      std::unique_lock lk(mu_);
      cv_.wait(lk, [&] { return stop_ || !watched_.empty(); });
      if (stop_) return;
      streams.clear();
      cursors.clear();
      by_key.clear();
      for (const auto& [task, w] : watched_) {
        std::uint64_t cursor = UINT64_MAX;
        for (const auto& s : w.subscribers) {
          if (!s.cancelled) cursor = std::min(cursor, s.cursor);
        }
        if (cursor == UINT64_MAX) continue;
        streams.emplace_back(task, stream_key(task));
        cursors.push_back(cursor);
        by_key.emplace(streams.back().second, streams.size() - 1);
      }
    }
    if (streams.empty()) {
      std::unique_lock lk(mu_);
      cv_.wait_for(lk, config_.poll_interval);
      continue;
    }
    if (!conn.ensure_connected().ok()) {
      reader_client_id_.store(0);
      ++reader_errors_;
      std::unique_lock lk(mu_);
      cv_.wait_for(lk, std::min<Millis>(config_.poll_interval, options.backoff_max), [&] { return stop_; });
      continue;
    }
    reader_client_id_.store(conn.client_id());
    if (std::chrono::steady_clock::now() - last_touch >= touch_every) {
      last_touch = std::chrono::steady_clock::now();
      for (const auto& [task, key] : streams) {
        (void)conn.eval(scripts().touch, std::vector<std::string>{key},
                        std::vector<std::string>{std::to_string(millis(config_.idle_timeout))});
      }
    }
    Args xread{"XREAD", "COUNT"};
    xread.add(static_cast<std::uint64_t>(std::max<std::size_t>(1, config_.read_batch)));
    xread.add("BLOCK").add(static_cast<long long>(config_.poll_interval.count())).add("STREAMS");
    for (const auto& s : streams) xread.add(s.second);
    for (const auto c : cursors) xread.add("0-" + std::to_string(c));
    {
      std::lock_guard lk(mu_);
      if (stop_) return;
    }
    auto r = conn.command(xread, config_.poll_interval + options.command_timeout);
    if (!r.ok()) {
      ++reader_errors_;
      reader_client_id_.store(0);
      std::unique_lock lk(mu_);
      cv_.wait_for(lk, std::min<Millis>(config_.poll_interval, options.backoff_initial), [&] { return stop_; });
      continue;
    }
    if (!r->is_array()) continue;  // nil: the block ended (timeout or CLIENT UNBLOCK)
    std::unique_lock lk(mu_);
    for (const RedisReply& stream : r->elements) {
      if (stream.size() != 2) continue;
      const std::string& key = stream.elements[0].str;
      const auto found = by_key.find(key);
      if (found == by_key.end()) continue;
      const std::string& task = streams[found->second].first;
      for (const RedisReply& entry : stream.elements[1].elements) {
        Event e;
        if (to_event(entry, e)) deliver_locked(task, e);
      }
    }
    // An XREAD costs Redis time in proportion to the streams it names, and returns as soon as
    // one has news: with many streams watched, let events gather for a moment so one read
    // serves many (bounded added latency: batch_window).
    if (streams.size() > 1 && config_.batch_window > Millis::zero()) {
      cv_.wait_for(lk, config_.batch_window, [&] { return stop_; });
    }
  }
}

RedisEventBusStats RedisEventBus::stats() const {
  std::lock_guard lk(mu_);
  return RedisEventBusStats{subscriptions_, appended_.load(), delivered_.load(), reader_errors_.load()};
}

}  // namespace lab::runtime
