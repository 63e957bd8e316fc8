// Durable chat-task throughput through the real backends: tasks enqueued on the Redis Streams
// queue, leased by worker threads, their turn committed to PostgreSQL (one transaction,
// synchronous_commit as the server has it — on), then acked. Optionally per task: the agent's
// Redis lock with its fencing token (--lock) and N text_chunk events plus `done` on the Redis
// event bus (--events N). Continuous insertion: producers enqueue while workers drain.
//
//   lab_durable_chat_bench --redis redis://127.0.0.1:P --pg postgresql://postgres@127.0.0.1:P/agentlab
//       [--tasks 5000] [--workers 8] [--producers 1] [--agents 256] [--events 0] [--lock]
//
// URLs default to AGENTLAB_REDIS_URL / AGENTLAB_PG_URL. Prints one human line and one JSON line.
// It checks its own result: every task committed exactly once (turn rows == tasks, queue acked ==
// tasks, nothing left in flight); otherwise it exits 1. Not a ctest (scripts/bench-durable runs it
// next to redis-benchmark and pgbench).

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "runtime/events/redis/redis_event_bus.hpp"
#include "runtime/locks/redis/redis_lock_service.hpp"
#include "runtime/queue/redis/redis_queue.hpp"
#include "runtime/stores/postgres/pg_store.hpp"

namespace lab::runtime {
namespace {

struct Options {
  std::string redis_url;
  std::string pg_url;
  int tasks = 5000;
  int workers = 8;
  int producers = 1;
  int agents = 256;
  int events = 0;
  bool lock = false;
};

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "lab_durable_chat_bench: %s\nusage: lab_durable_chat_bench [--redis URL] [--pg URL] [--tasks N] "
               "[--workers N] [--producers N] [--agents N] [--events N] [--lock]\n",
               why);
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options o;
  if (const char* r = std::getenv("AGENTLAB_REDIS_URL")) o.redis_url = r;
  if (const char* p = std::getenv("AGENTLAB_PG_URL")) o.pg_url = p;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage(("missing value for " + a).c_str());
      return argv[++i];
    };
    const auto number = [&]() {
      const std::string v = value();
      char* end = nullptr;
      const long n = std::strtol(v.c_str(), &end, 10);
      if (end == v.c_str() || *end != '\0' || n < 0 || n > 10'000'000) usage(("bad number for " + a).c_str());
      return static_cast<int>(n);
    };
    if (a == "--redis") o.redis_url = value();
    else if (a == "--pg") o.pg_url = value();
    else if (a == "--tasks") o.tasks = number();
    else if (a == "--workers") o.workers = number();
    else if (a == "--producers") o.producers = number();
    else if (a == "--agents") o.agents = number();
    else if (a == "--events") o.events = number();
    else if (a == "--lock") o.lock = true;
    else usage(("unknown argument " + a).c_str());
  }
  if (o.redis_url.empty() || o.pg_url.empty()) usage("Redis and PostgreSQL URLs needed (or AGENTLAB_*_URL)");
  if (o.tasks < 1 || o.workers < 1 || o.producers < 1 || o.agents < 1) usage("counts must be >= 1");
  return o;
}

double percentile(std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  const auto i = static_cast<std::size_t>(p * static_cast<double>(sorted.size() - 1));
  return sorted[i];
}

int run(const Options& o) {
  SteadyClock& clock = SteadyClock::instance();
  auto redis_options = redis::parse_redis_url(o.redis_url);
  if (!redis_options.ok()) usage("bad --redis URL");
  // Every worker may hold a connection in a blocking lease, producers and the bus need theirs.
  redis::RedisPool pool(*redis_options,
                        {.size = static_cast<std::size_t>(o.workers + o.producers + 4), .acquire_timeout = Millis(5000)},
                        clock);
  const std::string tag = "bench:" + std::to_string(::getpid());
  const std::string schema = "bench_" + std::to_string(::getpid());

  PgStoreConfig store_config;
  store_config.db.url = o.pg_url;
  store_config.db.schema = schema;
  store_config.db.application_name = "agentlab-bench";
  store_config.db.pool_size = static_cast<std::size_t>(o.workers + 2);
  auto opened = PgStore::open(store_config, clock);
  if (!opened.ok()) {
    std::fprintf(stderr, "cannot open the PostgreSQL store: %s\n", opened.error().message().c_str());
    return 1;
  }
  PgStore& store = **opened;
  // Redelivery is not the subject here: a task given back because its agent was locked by
  // another worker (--lock) must not run out of deliveries.
  RedisTaskQueue queue({.name = tag, .max_depth = static_cast<std::size_t>(o.tasks) + 1, .max_deliveries = 1'000'000},
                       pool, clock);
  RedisEventBus bus({.key_prefix = tag + ":", .retention = Seconds(30)}, pool);
  RedisLockService locks({.key_prefix = tag + ":"}, pool, clock);

  std::vector<std::string> agent_ids;
  for (int a = 0; a < o.agents; ++a) {
    agent_ids.push_back("agent-" + std::to_string(a));
    auto made = store.create_agent(NewAgent{agent_ids.back(), "user-" + std::to_string(a % 64), "bench", "default"});
    if (!made.ok()) {
      std::fprintf(stderr, "create_agent: %s\n", made.error().message().c_str());
      return 1;
    }
  }

  std::vector<std::chrono::steady_clock::time_point> enqueued_at(static_cast<std::size_t>(o.tasks));
  std::vector<double> latency_ms(static_cast<std::size_t>(o.tasks), 0.0);
  std::atomic<int> next_task{0};
  std::atomic<int> done{0};
  std::atomic<int> failures{0};
  std::atomic<long long> enqueue_us{0};
  std::atomic<long long> lease_us{0};
  std::atomic<long long> commit_us{0};
  std::atomic<long long> ack_us{0};
  std::atomic<long long> events_us{0};
  std::atomic<std::chrono::steady_clock::rep> end_ticks{0};  // when the last task was acked
  constexpr auto kRunBound = std::chrono::minutes(5);
  const auto us_since = [](std::chrono::steady_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t).count();
  };

  const auto start = std::chrono::steady_clock::now();
  const auto give_up = start + kRunBound;
  std::vector<std::thread> threads;
  for (int p = 0; p < o.producers; ++p) {
    threads.emplace_back([&] {
      for (;;) {
        const int i = next_task.fetch_add(1);
        if (i >= o.tasks) return;
        const auto idx = static_cast<std::size_t>(i);
        const std::string& agent_id = agent_ids[idx % agent_ids.size()];
        enqueued_at[idx] = std::chrono::steady_clock::now();
        auto r = queue.enqueue(Task{"task-" + std::to_string(i), agent_id, Priority::kNormal,
                                          R"({"kind":"chat","message":"hello, durable world"})"});
        enqueue_us += us_since(enqueued_at[idx]);
        if (!r.accepted()) {
          std::fprintf(stderr, "enqueue: %s\n", r.error.message().c_str());
          ++failures;
        }
      }
    });
  }
  for (int w = 0; w < o.workers; ++w) {
    threads.emplace_back([&, w] {
      const std::string consumer = "bench-worker-" + std::to_string(w);
      while (done.load() + failures.load() < o.tasks) {
        if (std::chrono::steady_clock::now() > give_up) {
          std::fprintf(stderr, "%s: giving up after %lld s\n", consumer.c_str(),
                       static_cast<long long>(std::chrono::duration_cast<std::chrono::seconds>(kRunBound).count()));
          ++failures;
          return;
        }
        auto t0 = std::chrono::steady_clock::now();
        auto lease = queue.lease(consumer, Seconds(60), Millis(200));
        if (!lease.ok()) {
          if (lease.error() != Errc::kNoTask) {
            std::fprintf(stderr, "lease: %s\n", lease.error().message().c_str());
            ++failures;
          }
          continue;
        }
        lease_us += us_since(t0);
        const Task& task = lease->task;
        std::uint64_t fence = 1;
        std::optional<LockGrant> grant;
        if (o.lock) {
          auto g = locks.try_acquire(task.agent_id, consumer, Seconds(30));
          if (!g.ok()) {  // another worker is in this agent's turn: give the task back
            (void)queue.nack(lease->receipt, Nanos::zero());
            continue;
          }
          grant = *g;
          fence = g->fence;
        }
        if (o.events > 0) {
          t0 = std::chrono::steady_clock::now();
          for (int e = 0; e < o.events; ++e) (void)bus.append(task.task_id, EventKind::kTextChunk, R"({"text":"tok"})");
          events_us += us_since(t0);
        }
        TurnWrite turn;
        turn.agent_id = task.agent_id;
        turn.task_id = task.task_id;
        turn.fence = fence;
        turn.messages = {Message{0, Role::kUser, "hello, durable world"},
                         Message{0, Role::kAssistant, "a reply of a few dozen bytes, as a short chat answer"}};
        turn.stats = TurnStats{12, 14, 0.0001, Micros(900), Micros(120), 1, "mock"};
        t0 = std::chrono::steady_clock::now();
        auto committed = store.commit_turn(turn);
        commit_us += us_since(t0);
        if (!committed.ok()) {
          std::fprintf(stderr, "commit_turn: %s\n", committed.error().message().c_str());
          ++failures;
          continue;
        }
        if (o.events > 0) (void)bus.append(task.task_id, EventKind::kDone, "{}");
        if (grant) (void)locks.release(task.agent_id, consumer, grant->fence);
        t0 = std::chrono::steady_clock::now();
        auto acked = queue.ack(lease->receipt);
        ack_us += us_since(t0);
        if (!acked.ok()) {
          std::fprintf(stderr, "ack: %s\n", acked.error().message().c_str());
          ++failures;
          continue;
        }
        const auto idx = static_cast<std::size_t>(std::stoi(task.task_id.substr(5)));
        latency_ms[idx] = static_cast<double>(us_since(enqueued_at[idx])) / 1000.0;
        if (done.fetch_add(1) + 1 == o.tasks) end_ticks = std::chrono::steady_clock::now().time_since_epoch().count();
      }
    });
  }
  for (auto& t : threads) t.join();
  const auto end = end_ticks.load() != 0
                       ? std::chrono::steady_clock::time_point(std::chrono::steady_clock::duration(end_ticks.load()))
                       : std::chrono::steady_clock::now();
  const double seconds = std::chrono::duration<double>(end - start).count();

  // Check the result: each task's effects exactly once.
  const auto totals = store.system_turn_totals();
  const auto qs = queue.stats();
  const bool exact = totals.ok() && totals->turns == static_cast<std::uint64_t>(o.tasks) &&
                     qs.acked == static_cast<std::uint64_t>(o.tasks) && qs.in_flight == 0 && qs.total_depth() == 0 &&
                     failures.load() == 0;

  std::sort(latency_ms.begin(), latency_ms.end());
  const double n = std::max(1, done.load());
  const double rate = done.load() / seconds;
  std::printf(
      "durable chat tasks: %d in %.2f s = %.0f tasks/s (workers %d, producers %d, agents %d, events %d, lock %s, "
      "synchronous_commit %s) | enqueue→ack p50 %.1f ms p99 %.1f ms | per task: enqueue %.0f us, lease %.0f us, "
      "commit %.0f us, "
      "ack %.0f us%s | group commits %llu (%.1f turns each) | exactly once: %s\n",
      done.load(), seconds, rate, o.workers, o.producers, o.agents, o.events, o.lock ? "on" : "off",
      store.synchronous_commit().c_str(), percentile(latency_ms, 0.5), percentile(latency_ms, 0.99),
      static_cast<double>(enqueue_us.load()) / n, static_cast<double>(lease_us.load()) / n, static_cast<double>(commit_us.load()) / n,
      static_cast<double>(ack_us.load()) / n,
      o.events > 0 ? (", events " + std::to_string(events_us.load() / static_cast<long long>(n)) + " us").c_str() : "",
      static_cast<unsigned long long>(store.stats().batches),
      store.stats().batches > 0 ? static_cast<double>(store.stats().commits) / static_cast<double>(store.stats().batches) : 0.0,
      exact ? "yes" : "NO");
  std::printf(
      "{\"benchmark\":\"durable_chat_tasks\",\"tasks\":%d,\"seconds\":%.3f,\"tasks_per_second\":%.1f,\"workers\":%d,"
      "\"producers\":%d,\"agents\":%d,\"events\":%d,\"lock\":%s,\"synchronous_commit\":\"%s\",\"p50_ms\":%.2f,"
      "\"p99_ms\":%.2f,\"commit_us\":%.0f,\"exactly_once\":%s,\"turns\":%llu,\"acked\":%llu}\n",
      done.load(), seconds, rate, o.workers, o.producers, o.agents, o.events, o.lock ? "true" : "false",
      store.synchronous_commit().c_str(), percentile(latency_ms, 0.5), percentile(latency_ms, 0.99),
      static_cast<double>(commit_us.load()) / n, exact ? "true" : "false",
      static_cast<unsigned long long>(totals.ok() ? totals->turns : 0), static_cast<unsigned long long>(qs.acked));

  // Clean up what the run made: its schema and its keys.
  pg::PgOptions admin = store_config.db;
  admin.schema.clear();
  (void)pg::execute_once(admin, "DROP SCHEMA IF EXISTS " + schema + " CASCADE");
  (void)pool.command(redis::Args{"DEL", queue.stream_key(Priority::kHigh), queue.stream_key(Priority::kMedium),
                                 queue.stream_key(Priority::kNormal), queue.dead_key(), "{" + tag + "}:stats"});
  return exact ? 0 : 1;
}

}  // namespace
}  // namespace lab::runtime

int main(int argc, char** argv) { return lab::runtime::run(lab::runtime::parse(argc, argv)); }
