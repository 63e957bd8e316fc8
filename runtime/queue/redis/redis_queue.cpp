#include "runtime/queue/redis/redis_queue.hpp"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <thread>

namespace lab::runtime {
namespace {

using redis::Args;
using redis::RedisErrc;
using redis::RedisReply;
using redis::RedisScript;

// KEYS (every script gets the ones it names, in this order):
//   all:     q0 q1 q2 nack0 nack1 nack2 dead stats
//   receipt: q nack dead stats
constexpr std::string_view kBury = R"lua(
local function field(fields, name)
  for i = 1, #fields, 2 do
    if fields[i] == name then return fields[i + 1] end
  end
  return ''
end
-- Moves a pending entry to the dead-letter stream and out of its priority stream.
local function bury(stream, nack, dead, stats, group, max_dead, prio, id, fields, deliveries, reason)
  redis.call('XADD', dead, 'MAXLEN', max_dead, '*', 't', field(fields, 't'), 'a', field(fields, 'a'),
             'r', prio, 'p', field(fields, 'p'), 'd', deliveries, 'why', reason)
  redis.call('XACK', stream, group, id)
  redis.call('XDEL', stream, id)
  redis.call('HDEL', nack, id)
  redis.call('HINCRBY', stats, 'dead_lettered', 1)
end
-- Drops the group's consumers that own nothing and did nothing for `horizon` ms (workers that
-- are gone), so the group does not grow with every worker that ever lived. A consumer with
-- pending entries is never dropped: that would lose them.
local function reap_consumers(stream, group, horizon)
  for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', stream, group)) do
    local name, pending, idle
    for i = 1, #c, 2 do
      if c[i] == 'name' then name = c[i + 1] elseif c[i] == 'pending' then pending = c[i + 1]
      elseif c[i] == 'idle' then idle = c[i + 1] end
    end
    if pending == 0 and idle >= tonumber(horizon) then redis.call('XGROUP', 'DELCONSUMER', stream, group, name) end
  end
end
-- Counts a delivery; every `every` deliveries, reaps idle consumers of the streams.
local function count_lease(stats, streams, group, horizon, every)
  local n = redis.call('HINCRBY', stats, 'leased', 1)
  if n % tonumber(every) == 0 then
    for _, stream in ipairs(streams) do reap_consumers(stream, group, horizon) end
  end
end
-- The pending entry `id` with delivery count `delivery`: its XPENDING row, or -2 (not pending:
-- acked or dead-lettered) / -1 (delivered again since: another lease owns it).
local function pending(stream, group, id, delivery)
  local p = redis.call('XPENDING', stream, group, id, id, 1)
  if #p == 0 then return -2 end
  if tonumber(p[1][4]) ~= tonumber(delivery) then return -1 end
  return p[1]
end
)lua";

// ARGV: group, max_depth, priority index, task id, agent id, payload
constexpr std::string_view kEnqueue = R"lua(
local group = ARGV[1]
local depth = 0
for p = 1, 3 do
  local undelivered = redis.call('XLEN', KEYS[p]) - redis.call('XPENDING', KEYS[p], group)[1]
  depth = depth + undelivered + redis.call('HLEN', KEYS[3 + p])
end
if depth >= tonumber(ARGV[2]) then
  redis.call('HINCRBY', KEYS[8], 'rejected_full', 1)
  return {0, depth}
end
redis.call('XADD', KEYS[1 + tonumber(ARGV[3])], '*', 't', ARGV[4], 'a', ARGV[5], 'p', ARGV[6])
redis.call('HINCRBY', KEYS[8], 'enqueued', 1)
return {1, depth + 1}
)lua";

// ARGV: group, consumer, horizon ms, idle ms after the lease (horizon - lease), max deliveries,
// max dead letters, reap period. Returns {1, priority, id, deliveries, fields} or
// {0, last id q0, q1, q2}.
constexpr std::string_view kLease = R"lua(
local group, consumer, horizon, idle = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local max_deliveries, max_dead, reap_every = tonumber(ARGV[5]), ARGV[6], ARGV[7]
for p = 1, 3 do
  local stream, nack = KEYS[p], KEYS[3 + p]
  -- Due entries first (an expired lease, or a nack whose delay passed): they are older than
  -- anything new in this priority. XPENDING IDLE finds the first one in a single scan of the
  -- PEL inside Redis (XAUTOCLAIM COUNT 1 would take a call per ten entries held), XCLAIM takes it.
  while true do
    local due = redis.call('XPENDING', stream, group, 'IDLE', horizon, '-', '+', 1)[1]
    if not due then break end
    local e = redis.call('XCLAIM', stream, group, consumer, horizon, due[1])[1]
    if not e then
      -- The entry is gone from the stream: nothing to deliver; drop it from the PEL.
      redis.call('XACK', stream, group, due[1])
    else
      local id, fields = e[1], e[2]
      local deliveries = tonumber(redis.call('XPENDING', stream, group, id, id, 1)[1][4])
      local nacked = redis.call('HDEL', nack, id) == 1
      if not nacked and deliveries - 1 >= max_deliveries then
        bury(stream, nack, KEYS[7], KEYS[8], group, max_dead, p - 1, id, fields, deliveries - 1, 'lease expired')
      else
        if not nacked then redis.call('HINCRBY', KEYS[8], 'redelivered', 1) end
        redis.call('XCLAIM', stream, group, consumer, 0, id, 'IDLE', idle, 'JUSTID')
        count_lease(KEYS[8], {KEYS[1], KEYS[2], KEYS[3]}, group, horizon, reap_every)
        return {1, p - 1, id, deliveries, fields}
      end
    end
  end
  local r = redis.call('XREADGROUP', 'GROUP', group, consumer, 'COUNT', 1, 'STREAMS', stream, '>')
  if r and r[1][2][1] then
    local e = r[1][2][1]
    redis.call('XCLAIM', stream, group, consumer, 0, e[1], 'IDLE', idle, 'JUSTID')
    count_lease(KEYS[8], {KEYS[1], KEYS[2], KEYS[3]}, group, horizon, reap_every)
    return {1, p - 1, e[1], 1, e[2]}
  end
end
local last = {0}
for p = 1, 3 do
  local info = redis.call('XINFO', 'STREAM', KEYS[p])
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then last[#last + 1] = info[i + 1] end
  end
end
return last
)lua";

// ARGV: group, id, delivery. 1 acked, 0 gone already, -1 lease lost.
constexpr std::string_view kAck = R"lua(
local row = pending(KEYS[1], ARGV[1], ARGV[2], ARGV[3])
if row == -2 then return 0 end
if row == -1 then return -1 end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
redis.call('HDEL', KEYS[2], ARGV[2])
redis.call('HINCRBY', KEYS[4], 'acked', 1)
return 1
)lua";

// ARGV: group, id, delivery, horizon ms, delay ms, max deliveries, max dead, priority.
// 1 requeued, 2 dead-lettered, 0 already back in the queue, -1 lease lost, -2 gone.
constexpr std::string_view kNack = R"lua(
local row = pending(KEYS[1], ARGV[1], ARGV[2], ARGV[3])
if type(row) ~= 'table' then return row end
if redis.call('HEXISTS', KEYS[2], ARGV[2]) == 1 then return 0 end
redis.call('HINCRBY', KEYS[4], 'nacked', 1)
if tonumber(ARGV[3]) >= tonumber(ARGV[6]) then
  local e = redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2])[1]
  bury(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1], ARGV[7], ARGV[8], ARGV[2], e[2], ARGV[3], 'nacked')
  return 2
end
redis.call('XCLAIM', KEYS[1], ARGV[1], row[2], 0, ARGV[2], 'IDLE', tonumber(ARGV[4]) - tonumber(ARGV[5]), 'JUSTID')
redis.call('HSET', KEYS[2], ARGV[2], 1)
return 1
)lua";

// ARGV: group, id, delivery, max dead, priority, reason. 1 dead-lettered, -1 lost, -2 gone.
constexpr std::string_view kDeadLetter = R"lua(
local row = pending(KEYS[1], ARGV[1], ARGV[2], ARGV[3])
if type(row) ~= 'table' then return row end
local e = redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2])[1]
bury(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1], ARGV[4], ARGV[5], ARGV[2], e[2], ARGV[3], ARGV[6])
return 1
)lua";

// ARGV: group, id, delivery, idle ms (horizon - lease). 1 extended, -1 lost (or nacked), -2 gone.
constexpr std::string_view kExtend = R"lua(
local row = pending(KEYS[1], ARGV[1], ARGV[2], ARGV[3])
if type(row) ~= 'table' then return row end
if redis.call('HEXISTS', KEYS[2], ARGV[2]) == 1 then return -1 end
redis.call('XCLAIM', KEYS[1], ARGV[1], row[2], 0, ARGV[2], 'IDLE', ARGV[4], 'JUSTID')
return 1
)lua";

// ARGV: group. {xlen, pending, nacked} x 3, dead-letter length, stats hash.
constexpr std::string_view kStats = R"lua(
local out = {}
for p = 1, 3 do
  out[#out + 1] = redis.call('XLEN', KEYS[p])
  out[#out + 1] = redis.call('XPENDING', KEYS[p], ARGV[1])[1]
  out[#out + 1] = redis.call('HLEN', KEYS[3 + p])
end
out[#out + 1] = redis.call('XLEN', KEYS[7])
out[#out + 1] = redis.call('HGETALL', KEYS[8])
return out
)lua";

// The scripts, each built once (the prelude with bury/pending is shared).
struct Scripts {
  RedisScript enqueue{std::string(kEnqueue)};
  RedisScript lease{std::string(kBury) + std::string(kLease)};
  RedisScript ack{std::string(kBury) + std::string(kAck)};
  RedisScript nack{std::string(kBury) + std::string(kNack)};
  RedisScript dead_letter{std::string(kBury) + std::string(kDeadLetter)};
  RedisScript extend{std::string(kBury) + std::string(kExtend)};
  RedisScript stats{std::string(kStats)};
};

const Scripts& scripts() {
  static const Scripts s;
  return s;
}

long long millis(Nanos d) { return std::chrono::duration_cast<Millis>(d).count(); }

// A lease shorter than a millisecond still lasts one (Redis's idle times are in ms).
long long millis_at_least_one(Nanos d) { return std::max<long long>(1, (d.count() + 999'999) / 1'000'000); }

std::string field_of(const RedisReply& fields, std::string_view name) {
  for (std::size_t i = 0; i + 1 < fields.size(); i += 2) {
    if (fields.elements[i].str == name) return fields.elements[i + 1].str;
  }
  return {};
}

std::uint64_t to_u64(const RedisReply& r) {
  const auto v = r.to_integer();
  return v && *v > 0 ? static_cast<std::uint64_t>(*v) : 0;
}

bool valid_stream_id(std::string_view id) {
  const auto dash = id.find('-');
  if (dash == 0 || dash == std::string_view::npos || dash + 1 == id.size()) return false;
  return std::all_of(id.begin(), id.end(), [](char c) { return (c >= '0' && c <= '9') || c == '-'; }) &&
         id.find('-', dash + 1) == std::string_view::npos;
}

}  // namespace

RedisTaskQueue::RedisTaskQueue(RedisQueueConfig config, redis::RedisPool& pool, const Clock& clock)
    : config_(std::move(config)), pool_(pool), clock_(clock), tag_("{" + config_.name + "}") {}

RedisTaskQueue::~RedisTaskQueue() = default;

std::string RedisTaskQueue::stream_key(Priority p) const {
  return tag_ + ":q:" + std::to_string(static_cast<int>(p));
}

std::vector<std::string> RedisTaskQueue::all_keys() const {
  std::vector<std::string> keys;
  keys.reserve(8);
  for (int p = 0; p < 3; ++p) keys.push_back(tag_ + ":q:" + std::to_string(p));
  for (int p = 0; p < 3; ++p) keys.push_back(tag_ + ":nack:" + std::to_string(p));
  keys.push_back(tag_ + ":dead");
  keys.push_back(tag_ + ":stats");
  return keys;
}

std::vector<std::string> RedisTaskQueue::receipt_keys(std::size_t priority) const {
  const std::string p = std::to_string(priority);
  return {tag_ + ":q:" + p, tag_ + ":nack:" + p, tag_ + ":dead", tag_ + ":stats"};
}

bool RedisTaskQueue::parse_receipt(std::string_view text, Receipt& out) {
  // "<priority>/<ms>-<seq>/<delivery>"
  const auto a = text.find('/');
  const auto b = text.rfind('/');
  if (a != 1 || b == a || b + 1 >= text.size()) return false;
  if (text[0] < '0' || text[0] > '2') return false;
  out.priority = static_cast<std::size_t>(text[0] - '0');
  const std::string_view id = text.substr(a + 1, b - a - 1);
  if (!valid_stream_id(id)) return false;
  out.id.assign(id);
  const std::string_view d = text.substr(b + 1);
  const auto [p, ec] = std::from_chars(d.data(), d.data() + d.size(), out.delivery);
  return ec == std::errc() && p == d.data() + d.size() && out.delivery > 0;
}

std::error_code RedisTaskQueue::ensure_groups(redis::RedisConnection& conn) {
  for (int p = 0; p < 3; ++p) {
    auto r = conn.command(Args{"XGROUP", "CREATE", stream_key(static_cast<Priority>(p)), config_.group, "0",
                               "MKSTREAM"});
    if (!r.ok() && r.error() != RedisErrc::kBusyGroup) return r.error();
  }
  groups_ready_.store(true);
  return {};
}

Result<RedisReply> RedisTaskQueue::run(redis::RedisConnection& conn, const RedisScript& s,
                                       const std::vector<std::string>& keys,
                                       const std::vector<std::string>& args) {
  if (!groups_ready_.load()) {
    if (auto ec = ensure_groups(conn)) return ec;
  }
  auto r = conn.eval(s, keys, args);
  if (r.ok() || r.error() != RedisErrc::kNoGroup) return r;
  // The server lost the streams and groups (restarted without its data): make them again. The
  // failed script stopped at its first command (XLEN/XPENDING/XAUTOCLAIM), before any write.
  if (auto ec = ensure_groups(conn)) return ec;
  return conn.eval(s, keys, args);
}

Result<RedisReply> RedisTaskQueue::run(const RedisScript& s, const std::vector<std::string>& keys,
                                       const std::vector<std::string>& args) {
  auto conn = pool_.acquire();
  if (!conn.ok()) return conn.error();
  return run(**conn, s, keys, args);
}

EnqueueResult RedisTaskQueue::enqueue(Task task) {
  const auto p = static_cast<std::size_t>(task.priority);
  if (task.task_id.empty() || task.agent_id.empty() || p >= kPriorityCount) {
    return {make_error_code(Errc::kInvalidArgument), 0};
  }
  if (closed_.load()) return {make_error_code(Errc::kClosed), 0};
  auto r = run(scripts().enqueue, all_keys(),
               {config_.group, std::to_string(config_.max_depth), std::to_string(p), std::move(task.task_id),
                std::move(task.agent_id), std::move(task.payload)});
  if (!r.ok()) return {redis::to_runtime(r.error()), 0};
  if (!r->is_array() || r->size() != 2) return {make_error_code(Errc::kBackendError), 0};
  const auto depth = static_cast<std::size_t>(to_u64(r->elements[1]));
  if (r->elements[0].integer == 0) return {make_error_code(Errc::kQueueFull), depth};
  return {{}, depth};
}

Result<Lease> RedisTaskQueue::try_lease(redis::RedisConnection& conn, std::string_view consumer,
                                        Nanos lease_duration, std::vector<std::string>& last_ids) {
  const long long horizon = millis(config_.lease_horizon);
  const long long idle = horizon - millis_at_least_one(lease_duration);
  auto r = run(conn, scripts().lease, all_keys(),
               {config_.group, std::string(consumer), std::to_string(horizon), std::to_string(idle),
                std::to_string(config_.max_deliveries), std::to_string(config_.max_dead_letters),
                std::to_string(std::max<std::uint64_t>(1, config_.reap_consumers_every))});
  if (!r.ok()) return redis::to_runtime(r.error());
  const RedisReply& v = *r;
  if (!v.is_array() || v.size() == 0) return Errc::kBackendError;
  if (v.elements[0].integer == 0) {
    last_ids.clear();
    for (std::size_t i = 1; i < v.size(); ++i) last_ids.push_back(v.elements[i].str);
    return Errc::kNoTask;
  }
  if (v.size() != 5) return Errc::kBackendError;
  const auto priority = v.elements[1].integer;
  const std::string& id = v.elements[2].str;
  const auto delivery = static_cast<std::uint32_t>(v.elements[3].integer);
  const RedisReply& fields = v.elements[4];
  Lease out;
  out.task.task_id = field_of(fields, "t");
  out.task.agent_id = field_of(fields, "a");
  out.task.payload = field_of(fields, "p");
  out.task.priority = static_cast<Priority>(priority);
  out.receipt = std::to_string(priority) + "/" + id + "/" + std::to_string(delivery);
  out.delivery_count = delivery;
  out.expires_at = clock_.now() + lease_duration;
  return out;
}

Result<Lease> RedisTaskQueue::lease(std::string_view consumer, Nanos lease_duration, Nanos wait) {
  if (consumer.empty() || lease_duration <= Nanos::zero() || lease_duration > config_.lease_horizon) {
    return Errc::kInvalidArgument;
  }
  const auto deadline = std::chrono::steady_clock::now() + wait;
  bool waited = false;
  for (;;) {
    std::error_code failure;
    std::vector<std::string> last_ids;
    if (auto conn = pool_.acquire(); !conn.ok()) {
      failure = redis::to_runtime(conn.error());
    } else {
      auto got = try_lease(**conn, consumer, lease_duration, last_ids);
      if (got.ok()) {
        // Woken and served: more tasks may have come at once, so pass the word on to another
        // waiter of this process (a burst wakes waiters one by one, not all at once).
        if (waited) wake_one_waiter();
        return got;
      }
      if (got.error() == Errc::kUnavailable) {
        failure = got.error();
      } else if (got.error() != Errc::kNoTask) {
        return got.error();
      }
    }
    if (!failure) {
      if (closed_.load()) return Errc::kClosed;
      const auto now = std::chrono::steady_clock::now();
      if (wait <= Nanos::zero() || now >= deadline) return Errc::kNoTask;
      if (last_ids.size() != 3) return Errc::kBackendError;
      failure = wait_for_work(last_ids, std::min<Nanos>(config_.poll_interval, deadline - now));
      waited = true;
      if (!failure) continue;
    }
    // Redis unreachable: keep trying until the wait ends (the connection's backoff paces the
    // connect attempts; this pause, one initial backoff step, paces the loop).
    if (closed_.load() && wait <= Nanos::zero()) return failure;
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return failure;
    const Nanos pause = std::min<Nanos>(config_.poll_interval, pool_.options().backoff_initial);
    std::this_thread::sleep_for(std::min<Nanos>(pause, deadline - now));
  }
}

std::error_code RedisTaskQueue::wait_for_work(const std::vector<std::string>& last_ids, Nanos slice) {
  std::unique_lock lk(gate_mu_);
  if (gate_leader_) {  // another thread of this process watches the streams: wait for its word
    const std::uint64_t generation = gate_generation_;
    gate_cv_.wait_for(lk, slice, [&] { return gate_generation_ != generation || closed_.load(); });
    return {};
  }
  gate_leader_ = true;
  lk.unlock();
  std::error_code failure;
  if (auto conn = pool_.acquire(); !conn.ok()) {
    failure = redis::to_runtime(conn.error());
  } else {
    const long long block_ms = millis_at_least_one(slice);
    const long long id = (*conn)->client_id();
    {
      std::lock_guard wl(waiters_mu_);
      waiters_.insert(id);
    }
    if (!closed_.load()) {
      Args xread{"XREAD", "COUNT", "1", "BLOCK"};
      xread.add(block_ms).add("STREAMS");
      for (int p = 0; p < 3; ++p) xread.add(stream_key(static_cast<Priority>(p)));
      for (const auto& last : last_ids) xread.add(last);
      auto woke = (*conn)->command(xread, Millis(block_ms) + (*conn)->options().command_timeout);
      if (!woke.ok()) failure = redis::to_runtime(woke.error());
    }
    std::lock_guard wl(waiters_mu_);
    if (auto it = waiters_.find(id); it != waiters_.end()) waiters_.erase(it);
  }
  lk.lock();
  gate_leader_ = false;
  ++gate_generation_;
  lk.unlock();
  gate_cv_.notify_one();  // one waiter takes over watching (or finds the task that woke us)
  return failure;
}

void RedisTaskQueue::wake_one_waiter() {
  {
    std::lock_guard lk(gate_mu_);
    ++gate_generation_;
  }
  gate_cv_.notify_one();
}

Result<void> RedisTaskQueue::ack(std::string_view receipt) {
  Receipt rc;
  if (!parse_receipt(receipt, rc)) return Errc::kInvalidArgument;
  auto r = run(scripts().ack, receipt_keys(rc.priority), {config_.group, rc.id, std::to_string(rc.delivery)});
  if (!r.ok()) return redis::to_runtime(r.error());
  if (r->integer == -1) return Errc::kLeaseLost;
  return {};
}

Result<void> RedisTaskQueue::nack(std::string_view receipt, Nanos delay) {
  Receipt rc;
  if (!parse_receipt(receipt, rc)) return Errc::kInvalidArgument;
  const long long horizon = millis(config_.lease_horizon);
  const long long delay_ms = std::clamp<long long>(millis(delay), 0, horizon);
  auto r = run(scripts().nack, receipt_keys(rc.priority),
               {config_.group, rc.id, std::to_string(rc.delivery), std::to_string(horizon),
                std::to_string(delay_ms), std::to_string(config_.max_deliveries),
                std::to_string(config_.max_dead_letters), std::to_string(rc.priority)});
  if (!r.ok()) return redis::to_runtime(r.error());
  if (r->integer == -1) return Errc::kLeaseLost;
  if (r->integer == -2) return Errc::kNotFound;
  return {};
}

Result<void> RedisTaskQueue::dead_letter(std::string_view receipt, std::string_view reason) {
  Receipt rc;
  if (!parse_receipt(receipt, rc)) return Errc::kInvalidArgument;
  auto r = run(scripts().dead_letter, receipt_keys(rc.priority),
               {config_.group, rc.id, std::to_string(rc.delivery), std::to_string(config_.max_dead_letters),
                std::to_string(rc.priority), std::string(reason)});
  if (!r.ok()) return redis::to_runtime(r.error());
  if (r->integer == -1) return Errc::kLeaseLost;
  if (r->integer == -2) return Errc::kNotFound;
  return {};
}

Result<TimePoint> RedisTaskQueue::extend(std::string_view receipt, Nanos lease_duration) {
  if (lease_duration <= Nanos::zero() || lease_duration > config_.lease_horizon) return Errc::kInvalidArgument;
  Receipt rc;
  if (!parse_receipt(receipt, rc)) return Errc::kInvalidArgument;
  const long long idle = millis(config_.lease_horizon) - millis_at_least_one(lease_duration);
  const TimePoint expires = clock_.now() + lease_duration;
  auto r = run(scripts().extend, receipt_keys(rc.priority),
               {config_.group, rc.id, std::to_string(rc.delivery), std::to_string(idle)});
  if (!r.ok()) return redis::to_runtime(r.error());
  if (r->integer == -1) return Errc::kLeaseLost;
  if (r->integer == -2) return Errc::kNotFound;
  return expires;
}

QueueStats RedisTaskQueue::stats() {
  QueueStats s;
  auto r = run(scripts().stats, all_keys(), {config_.group});
  if (!r.ok() || !r->is_array() || r->size() != 11) return s;
  const auto& v = r->elements;
  for (std::size_t p = 0; p < kPriorityCount; ++p) {
    const std::uint64_t len = to_u64(v[p * 3]);
    const std::uint64_t pending = to_u64(v[p * 3 + 1]);
    const std::uint64_t nacked = to_u64(v[p * 3 + 2]);
    s.depth[p] = static_cast<std::size_t>(len - std::min(len, pending) + nacked);
    s.in_flight += static_cast<std::size_t>(pending - std::min(pending, nacked));
  }
  s.dead_letters = static_cast<std::size_t>(to_u64(v[9]));
  const RedisReply& h = v[10];
  for (std::size_t i = 0; i + 1 < h.size(); i += 2) {
    const std::string& name = h.elements[i].str;
    const std::uint64_t n = to_u64(h.elements[i + 1]);
    if (name == "enqueued") s.enqueued = n;
    else if (name == "rejected_full") s.rejected_full = n;
    else if (name == "leased") s.leased = n;
    else if (name == "acked") s.acked = n;
    else if (name == "nacked") s.nacked = n;
    else if (name == "redelivered") s.redelivered = n;
    else if (name == "dead_lettered") s.dead_lettered = n;
  }
  return s;
}

std::vector<DeadLetter> RedisTaskQueue::dead_letters(std::size_t limit) {
  std::vector<DeadLetter> out;
  if (limit == 0) return out;
  auto r = pool_.command(Args{"XREVRANGE", dead_key(), "+", "-", "COUNT"}.add(static_cast<std::uint64_t>(limit)));
  if (!r.ok() || !r->is_array()) return out;
  for (auto it = r->elements.rbegin(); it != r->elements.rend(); ++it) {
    if (it->size() != 2) continue;
    const RedisReply& fields = it->elements[1];
    DeadLetter d;
    d.task.task_id = field_of(fields, "t");
    d.task.agent_id = field_of(fields, "a");
    d.task.payload = field_of(fields, "p");
    const std::string prio = field_of(fields, "r");
    d.task.priority = prio.size() == 1 && prio[0] >= '0' && prio[0] <= '2' ? static_cast<Priority>(prio[0] - '0')
                                                                           : Priority::kNormal;
    d.delivery_count = static_cast<std::uint32_t>(std::stoul("0" + field_of(fields, "d")));
    d.reason = field_of(fields, "why");
    out.push_back(std::move(d));
  }
  return out;
}

void RedisTaskQueue::close() {
  {
    std::lock_guard lk(gate_mu_);
    closed_.store(true);
  }
  gate_cv_.notify_all();
  unblock_waiters();
}

void RedisTaskQueue::unblock_waiters() {
  std::vector<long long> ids;
  {
    std::lock_guard lk(waiters_mu_);
    ids.assign(waiters_.begin(), waiters_.end());
  }
  if (ids.empty()) return;
  auto conn = pool_.acquire();
  if (!conn.ok()) return;  // they wake within poll_interval anyway
  for (const long long id : ids) (void)(*conn)->command(Args{"CLIENT", "UNBLOCK"}.add(id));
}

}  // namespace lab::runtime
