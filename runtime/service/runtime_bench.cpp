// lab_runtime_bench: the embedded stack end to end, in one process, against the mock LLM at zero
// latency (issue 4: ≥ 2,000 chat tasks/s with accept p99 < 10 ms; 100,000 agents created and
// 10,000 active under 2 GiB).
//
//   throughput: `clients` closed-loop virtual users, each with its own agent, spread over
//     `client-threads` io threads: POST /api/chat (accept latency) then GET the SSE stream to
//     `done` (end-to-end latency), again and again. Warm-up, then a measured window.
//   memory (--memory): creates `agents` agents over HTTP, runs one turn on `active` of them
//     (max_active_agents = active, so all stay resident), and reads VmRSS / VmHWM.
//
// Everything shares the machine's cores (load generator, runtime, mock LLM): the figure is a
// floor for the runtime alone. Prints one JSON object.

#include <pthread.h>
#include <sys/resource.h>

#include <unistd.h>

#include <algorithm>
#include <ctime>
#include <atomic>
#include <charconv>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

#include "common/hdr/histogram.hpp"
#include "common/http/client.hpp"
#include "common/text/json_util.hpp"
#include "mocks/llm/mock_llm.hpp"
#include "runtime/service/runtime.hpp"

namespace {

namespace asio = boost::asio;
namespace bj = boost::json;
using namespace lab;
using Wall = std::chrono::steady_clock;

struct Options {
  double seconds = 10;
  double warmup = 2;
  int clients = 64;
  int client_threads = 1;
  int workers = 2;
  int http_threads = 2;
  int llm_threads = 1;
  int tokens = 16;
  bool tools = false;
  bool memory = false;
  int agents = 100'000;
  int active = 10'000;
  int rate = 0;            ///< > 0: open loop at this many tasks/s (else closed loop)
  int max_in_flight = 4096;
  std::string queue = "memory";  ///< or redis://… (queue, bus, locks)
  std::string store = "memory";  ///< or postgresql://…
  std::string pg_schema;         ///< a schema of its own (created by the migrations)
  int backend_connections = 32;  ///< Redis and PostgreSQL pool sizes
};

bool parse_int(std::string_view s, int& out) {
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && end == s.data() + s.size();
}

std::int64_t status_kib(std::string_view field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field, 0) == 0) return std::strtoll(line.c_str() + field.size() + 1, nullptr, 10);
  }
  return -1;
}

struct ThreadStats {
  Histogram accept{1, 60'000'000, 3};  // µs
  Histogram e2e{1, 60'000'000, 3};
  std::uint64_t done = 0;
  std::uint64_t errors = 0;
};

/// One closed-loop virtual user.
asio::awaitable<void> user(http::ConnectionPool& pool, std::string token, std::string agent_id,
                           const std::atomic<bool>& measuring, const std::atomic<bool>& stop, ThreadStats& stats) {
  http::ClientRequest chat;
  chat.method = boost::beast::http::verb::post;
  chat.target = "/api/chat";
  chat.headers.emplace_back("Authorization", "Bearer " + token);
  chat.body = "{\"agentId\":\"" + agent_id + "\",\"message\":\"Tell me about load testing.\"}";
  while (!stop.load(std::memory_order_relaxed)) {
    const auto t0 = Wall::now();
    http::ClientResponse res;
    const auto r = co_await pool.request(chat, res);
    const auto t1 = Wall::now();
    const bool measured = measuring.load(std::memory_order_relaxed);
    if (!r.ok() || res.status != 202) {
      if (measured) ++stats.errors;
      continue;
    }
    if (measured) stats.accept.record(std::chrono::duration_cast<std::chrono::microseconds>(t1 - t0).count());
    auto v = json::parse(res.body);
    http::ClientRequest stream;
    stream.target = std::string(v->at("streamUrl").as_string());
    stream.headers.emplace_back("Authorization", "Bearer " + token);
    http::ClientResponse sres;
    bool done = false;
    const auto s = co_await pool.stream_sse(
        stream, sres,
        [&](http::SseEvent&& e, TimePoint) {
          if (e.event == "done" || e.event == "error") {
            done = e.event == "done";
            return false;
          }
          return true;
        },
        std::chrono::seconds(30));
    const auto t2 = Wall::now();
    if (!measuring.load(std::memory_order_relaxed)) continue;
    if (!s.ok() || !done) {
      ++stats.errors;
      continue;
    }
    ++stats.done;
    stats.e2e.record(std::chrono::duration_cast<std::chrono::microseconds>(t2 - t0).count());
  }
}

/// One open-loop task: POST /api/chat then the stream to its terminal event. Latencies count
/// from the intended start (coordinated omission corrected, as wrk2 does) and, for accept, also
/// from the actual send.
asio::awaitable<void> one_task(http::ConnectionPool& pool, const std::string& token, const std::string& agent_id,
                               Wall::time_point intended, const std::atomic<bool>& measuring, ThreadStats& stats,
                               Histogram& accept_uncorrected, int& in_flight) {
  http::ClientRequest chat;
  chat.method = boost::beast::http::verb::post;
  chat.target = "/api/chat";
  chat.headers.emplace_back("Authorization", "Bearer " + token);
  chat.body = "{\"agentId\":\"" + agent_id + "\",\"message\":\"Tell me about load testing.\"}";
  const auto sent = Wall::now();
  http::ClientResponse res;
  const auto r = co_await pool.request(chat, res);
  const auto accepted = Wall::now();
  const bool measured = measuring.load(std::memory_order_relaxed);
  bool ok = r.ok() && res.status == 202;
  if (ok && measured) {
    stats.accept.record(std::chrono::duration_cast<std::chrono::microseconds>(accepted - intended).count());
    accept_uncorrected.record(std::chrono::duration_cast<std::chrono::microseconds>(accepted - sent).count());
  }
  if (ok) {
    http::ClientRequest stream;
    stream.target = std::string(json::parse(res.body)->at("streamUrl").as_string());
    stream.headers.emplace_back("Authorization", "Bearer " + token);
    http::ClientResponse sres;
    bool done = false;
    const auto s = co_await pool.stream_sse(
        stream, sres,
        [&](http::SseEvent&& e, TimePoint) {
          if (e.event == "done" || e.event == "error") {
            done = e.event == "done";
            return false;
          }
          return true;
        },
        std::chrono::seconds(30));
    ok = s.ok() && done;
  }
  if (measured) {
    if (ok) {
      ++stats.done;
      stats.e2e.record(std::chrono::duration_cast<std::chrono::microseconds>(Wall::now() - intended).count());
    } else {
      ++stats.errors;
    }
  }
  --in_flight;
}

/// Creates `count` agents for users "u<first>".. over `conns` concurrent requests; returns ids.
std::vector<std::string> create_agents(runtime::Runtime& rt, int first, int count, int conns) {
  std::vector<std::string> ids(static_cast<std::size_t>(count));
  asio::io_context io;
  http::ConnectionPool pool(io.get_executor(), *http::parse_url(rt.url()), http::ClientOptions{});
  std::atomic<int> next{0};
  for (int c = 0; c < conns; ++c) {
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
          for (int i = next++; i < count; i = next++) {
            http::ClientRequest req;
            req.method = boost::beast::http::verb::post;
            req.target = "/api/agents";
            req.headers.emplace_back("Authorization", "Bearer " + rt.token_for("u" + std::to_string(first + i)));
            req.body = R"({"name":"bench"})";
            http::ClientResponse res;
            const auto r = co_await pool.request(req, res);
            if (r.ok() && res.status == 201) {
              ids[static_cast<std::size_t>(i)] = std::string(json::parse(res.body)->at("id").as_string());
            }
          }
        },
        asio::detached);
  }
  io.run();
  return ids;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view flag = argv[i];
    const std::string_view value = i + 1 < argc ? std::string_view(argv[i + 1]) : std::string_view();
    int n = 0;
    auto take_int = [&](int& out) {
      if (!parse_int(value, n) || n < 0) {
        std::cerr << flag << ": expected a non-negative integer\n";
        std::exit(2);
      }
      out = n;
      ++i;
    };
    if (flag == "--seconds") {
      take_int(n);
      o.seconds = n;
    } else if (flag == "--warmup") {
      take_int(n);
      o.warmup = n;
    } else if (flag == "--clients") {
      take_int(o.clients);
    } else if (flag == "--client-threads") {
      take_int(o.client_threads);
    } else if (flag == "--workers") {
      take_int(o.workers);
    } else if (flag == "--http-threads") {
      take_int(o.http_threads);
    } else if (flag == "--llm-threads") {
      take_int(o.llm_threads);
    } else if (flag == "--tokens") {
      take_int(o.tokens);
    } else if (flag == "--agents") {
      take_int(o.agents);
    } else if (flag == "--active") {
      take_int(o.active);
    } else if (flag == "--rate") {
      take_int(o.rate);
    } else if (flag == "--max-in-flight") {
      take_int(o.max_in_flight);
    } else if (flag == "--queue" && i + 1 < argc) {
      o.queue = std::string(value);
      ++i;
    } else if (flag == "--store" && i + 1 < argc) {
      o.store = std::string(value);
      ++i;
    } else if (flag == "--backend-connections") {
      take_int(o.backend_connections);
    } else if (flag == "--pg-schema" && i + 1 < argc) {
      o.pg_schema = std::string(value);
      ++i;
    } else if (flag == "--tools") {
      o.tools = true;
    } else if (flag == "--memory") {
      o.memory = true;
    } else {
      std::cerr << "usage: lab_runtime_bench [--seconds N] [--warmup N] [--clients N] [--client-threads N]\n"
                   "  [--workers N] [--http-threads N] [--llm-threads N] [--tokens N] [--tools]\n"
                   "  [--rate R [--max-in-flight N]] [--memory [--agents N] [--active N]]\n"
                   "  [--queue redis://...] [--store postgresql://... [--pg-schema NAME]] [--backend-connections N]\n";
      return flag == "--help" ? 0 : 2;
    }
  }

  mocks::llm::Profile profile;
  profile.latency.ttft_ms = mocks::llm::Distribution::constant(0);
  profile.latency.prefill_ms_per_token = 0;
  profile.latency.itl_ms = mocks::llm::Distribution::constant(0);
  profile.output.tokens = mocks::llm::Distribution::constant(o.tokens);
  profile.tool_call_probability = o.tools ? 1.0 : 0.0;
  profile.load.max_num_seqs = 100'000;
  profile.load.max_waiting = 100'000;
  profile.load.time_factor_under_load = 1.0;
  mocks::llm::MockLlmOptions mo;
  mo.threads = o.llm_threads;
  mocks::llm::MockLlm mock(profile, SteadyClock::instance(), 1, mo);
  mock.start();

  runtime::RuntimeConfig config;
  config.llm_urls = {mock.url()};
  config.workers = o.workers;
  config.http_threads = o.http_threads;
  config.tools = o.tools;
  config.tool_latency = Nanos::zero();
  config.queue_bound = 1'000'000;
  config.log = false;
  // Memory mode: room for every activated agent in whichever worker runs its turn.
  config.max_active_agents = o.memory ? static_cast<std::size_t>(o.active) * static_cast<std::size_t>(o.workers) : 100'000;
  config.worker_concurrency = 1024;
  config.queue = o.queue;
  config.store = o.store;
  config.pg_schema = o.pg_schema;
  config.backend_connections = static_cast<std::size_t>(o.backend_connections);
  // A namespace per run: a shared Redis keeps nothing of an earlier run in this one's queue.
  config.namespace_ = "bench-" + std::to_string(::getpid()) + "-" + std::to_string(std::time(nullptr));
  if (const auto problems = config.validate(); !problems.empty()) {
    for (const auto& p : problems) std::cerr << "lab_runtime_bench: " << p << "\n";
    return 2;
  }
  runtime::Runtime rt(config);
  rt.start();

  bj::object out;
  if (o.memory) {
    const auto rss0 = status_kib("VmRSS:");
    const auto t0 = Wall::now();
    const auto ids = create_agents(rt, 0, o.agents, 64);
    const double create_s = std::chrono::duration<double>(Wall::now() - t0).count();
    const auto rss_agents = status_kib("VmRSS:");
    // One turn on `active` agents, 64 at a time.
    asio::io_context io;
    http::ConnectionPool pool(io.get_executor(), *http::parse_url(rt.url()), http::ClientOptions{});
    std::atomic<int> next{0};
    std::atomic<int> done{0};
    for (int c = 0; c < 64; ++c) {
      asio::co_spawn(
          io,
          [&]() -> asio::awaitable<void> {
            for (int i = next++; i < o.active; i = next++) {
              const std::string token = rt.token_for("u" + std::to_string(i));
              http::ClientRequest req;
              req.method = boost::beast::http::verb::post;
              req.target = "/api/chat";
              req.headers.emplace_back("Authorization", "Bearer " + token);
              req.body = "{\"agentId\":\"" + ids[static_cast<std::size_t>(i)] + "\",\"message\":\"hello\"}";
              http::ClientResponse res;
              if (!(co_await pool.request(req, res)).ok() || res.status != 202) continue;
              http::ClientRequest s;
              s.target = std::string(json::parse(res.body)->at("streamUrl").as_string());
              s.headers.emplace_back("Authorization", "Bearer " + token);
              http::ClientResponse sres;
              bool ok = false;
              co_await pool.stream_sse(s, sres, [&](http::SseEvent&& e, TimePoint) {
                ok = e.event == "done";
                return !(e.event == "done" || e.event == "error");
              }, std::chrono::seconds(30));
              if (ok) ++done;
            }
          },
          asio::detached);
    }
    const auto t1 = Wall::now();
    io.run();
    const double active_s = std::chrono::duration<double>(Wall::now() - t1).count();
    const auto sys = rt.system_snapshot();
    out["mode"] = "memory";
    out["agents_created"] = static_cast<std::int64_t>(std::count_if(ids.begin(), ids.end(), [](auto& s) { return !s.empty(); }));
    out["create_seconds"] = create_s;
    out["turns_done"] = done.load();
    out["turns_seconds"] = active_s;
    out["active_agents"] = sys.at("active_agents");
    out["agents_in_store"] = sys.at("agents");
    out["rss_start_mib"] = static_cast<double>(rss0) / 1024;
    out["rss_after_create_mib"] = static_cast<double>(rss_agents) / 1024;
    out["rss_after_active_mib"] = static_cast<double>(status_kib("VmRSS:")) / 1024;
    out["rss_peak_mib"] = static_cast<double>(status_kib("VmHWM:")) / 1024;
  } else if (o.rate > 0) {
    const auto ids = create_agents(rt, 0, o.clients, 16);
    std::vector<std::string> user_tokens;
    for (int i = 0; i < o.clients; ++i) user_tokens.push_back(rt.token_for("u" + std::to_string(i)));
    std::atomic<bool> measuring{false};
    std::atomic<bool> stop{false};
    const int threads = std::max(1, o.client_threads);
    std::vector<ThreadStats> stats(static_cast<std::size_t>(threads));
    std::vector<Histogram> uncorrected(static_cast<std::size_t>(threads), Histogram(1, 60'000'000, 3));
    std::vector<std::uint64_t> dropped(static_cast<std::size_t>(threads), 0);
    std::vector<std::thread> gen_threads;
    const auto start = Wall::now() + std::chrono::milliseconds(50);
    for (int t = 0; t < threads; ++t) {
      gen_threads.emplace_back([&, t] {
        pthread_setname_np(pthread_self(), ("client-" + std::to_string(t)).c_str());
        asio::io_context io;
        http::ClientOptions co;
        co.max_idle_connections = static_cast<std::size_t>(o.max_in_flight);
        http::ConnectionPool pool(io.get_executor(), *http::parse_url(rt.url()), co);
        int in_flight = 0;
        asio::co_spawn(
            io,
            [&]() -> asio::awaitable<void> {
              asio::steady_timer timer(io);
              const auto per_thread = std::chrono::duration<double>(static_cast<double>(threads) / o.rate);
              for (std::uint64_t k = 0; !stop.load(std::memory_order_relaxed); ++k) {
                const auto intended = start + std::chrono::duration_cast<Wall::duration>(per_thread * static_cast<double>(k)) +
                                      std::chrono::duration_cast<Wall::duration>(per_thread * (static_cast<double>(t) / threads));
                timer.expires_at(intended);
                co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
                if (in_flight >= o.max_in_flight) {
                  if (measuring.load(std::memory_order_relaxed)) ++dropped[static_cast<std::size_t>(t)];
                  continue;
                }
                ++in_flight;
                const std::size_t agent = static_cast<std::size_t>((k * static_cast<std::uint64_t>(threads) + static_cast<std::uint64_t>(t)) %
                                                                   static_cast<std::uint64_t>(o.clients));
                asio::co_spawn(io,
                               one_task(pool, user_tokens[agent], ids[agent], intended, measuring,
                                        stats[static_cast<std::size_t>(t)], uncorrected[static_cast<std::size_t>(t)],
                                        in_flight),
                               asio::detached);
              }
            },
            asio::detached);
        io.run();
      });
    }
    std::this_thread::sleep_for(std::chrono::duration<double>(o.warmup));  // warm-up: a fixed span, not a wait
    rusage ru0{};
    getrusage(RUSAGE_SELF, &ru0);
    const auto c0 = rt.counters();
    measuring = true;
    const auto t0 = Wall::now();
    std::this_thread::sleep_for(std::chrono::duration<double>(o.seconds));  // the measured window
    measuring = false;
    const double elapsed = std::chrono::duration<double>(Wall::now() - t0).count();
    const auto c1 = rt.counters();
    rusage ru1{};
    getrusage(RUSAGE_SELF, &ru1);
    stop = true;
    for (auto& th : gen_threads) th.join();
    ThreadStats all;
    Histogram unc(1, 60'000'000, 3);
    std::uint64_t drops = 0;
    for (int t = 0; t < threads; ++t) {
      all.accept.merge(stats[static_cast<std::size_t>(t)].accept);
      all.e2e.merge(stats[static_cast<std::size_t>(t)].e2e);
      all.done += stats[static_cast<std::size_t>(t)].done;
      all.errors += stats[static_cast<std::size_t>(t)].errors;
      unc.merge(uncorrected[static_cast<std::size_t>(t)]);
      drops += dropped[static_cast<std::size_t>(t)];
    }
    auto cpu = [](const rusage& r) {
      return static_cast<double>(r.ru_utime.tv_sec + r.ru_stime.tv_sec) +
             static_cast<double>(r.ru_utime.tv_usec + r.ru_stime.tv_usec) / 1e6;
    };
    auto ms = [](std::int64_t us) { return static_cast<double>(us) / 1000.0; };
    out["mode"] = "open_loop";
    out["rate"] = o.rate;
    out["agents"] = o.clients;
    out["workers"] = o.workers;
    out["queue"] = config.redis_queue() ? "redis" : "memory";
    out["store"] = config.postgres_store() ? "postgresql" : "memory";
    out["http_threads"] = o.http_threads;
    out["tokens"] = o.tokens;
    out["tools"] = o.tools;
    out["seconds"] = elapsed;
    out["tasks_per_s"] = static_cast<double>(all.done) / elapsed;
    out["runtime_completed_per_s"] = static_cast<double>(c1.ledger.completed - c0.ledger.completed) / elapsed;
    out["errors"] = all.errors;
    out["dropped"] = drops;
    out["accept_p50_ms"] = ms(all.accept.value_at_percentile(50));
    out["accept_p99_ms"] = ms(all.accept.value_at_percentile(99));
    out["accept_max_ms"] = ms(all.accept.max());
    out["accept_uncorrected_p99_ms"] = ms(unc.value_at_percentile(99));
    out["e2e_p50_ms"] = ms(all.e2e.value_at_percentile(50));
    out["e2e_p99_ms"] = ms(all.e2e.value_at_percentile(99));
    out["process_cpu_cores"] = (cpu(ru1) - cpu(ru0)) / elapsed;
  } else {
    const auto ids = create_agents(rt, 0, o.clients, 16);
    std::atomic<bool> measuring{false};
    std::atomic<bool> stop{false};
    const int threads = std::max(1, o.client_threads);
    std::vector<ThreadStats> stats(static_cast<std::size_t>(threads));
    std::vector<std::thread> pool_threads;
    for (int t = 0; t < threads; ++t) {
      pool_threads.emplace_back([&, t] {
        pthread_setname_np(pthread_self(), ("client-" + std::to_string(t)).c_str());
        asio::io_context io;
        http::ClientOptions co;
        co.max_idle_connections = static_cast<std::size_t>(o.clients);
        http::ConnectionPool pool(io.get_executor(), *http::parse_url(rt.url()), co);
        for (int c = t; c < o.clients; c += threads) {
          asio::co_spawn(io,
                         user(pool, rt.token_for("u" + std::to_string(c)), ids[static_cast<std::size_t>(c)],
                              measuring, stop, stats[static_cast<std::size_t>(t)]),
                         asio::detached);
        }
        io.run();
      });
    }
    std::this_thread::sleep_for(std::chrono::duration<double>(o.warmup));  // warm-up: a fixed span, not a wait
    rusage ru0{};
    getrusage(RUSAGE_SELF, &ru0);
    const auto c0 = rt.counters();
    measuring = true;
    const auto t0 = Wall::now();
    std::this_thread::sleep_for(std::chrono::duration<double>(o.seconds));  // the measured window
    measuring = false;
    const double elapsed = std::chrono::duration<double>(Wall::now() - t0).count();
    const auto c1 = rt.counters();
    rusage ru1{};
    getrusage(RUSAGE_SELF, &ru1);
    stop = true;
    for (auto& th : pool_threads) th.join();
    ThreadStats all;
    for (const auto& s : stats) {
      all.accept.merge(s.accept);
      all.e2e.merge(s.e2e);
      all.done += s.done;
      all.errors += s.errors;
    }
    auto cpu = [](const rusage& r) {
      return static_cast<double>(r.ru_utime.tv_sec + r.ru_stime.tv_sec) +
             static_cast<double>(r.ru_utime.tv_usec + r.ru_stime.tv_usec) / 1e6;
    };
    auto ms = [](std::int64_t us) { return static_cast<double>(us) / 1000.0; };
    out["mode"] = "throughput";
    out["clients"] = o.clients;
    out["workers"] = o.workers;
    out["queue"] = config.redis_queue() ? "redis" : "memory";
    out["store"] = config.postgres_store() ? "postgresql" : "memory";
    out["http_threads"] = o.http_threads;
    out["tokens"] = o.tokens;
    out["tools"] = o.tools;
    out["seconds"] = elapsed;
    out["tasks_per_s"] = static_cast<double>(all.done) / elapsed;
    out["runtime_completed_per_s"] = static_cast<double>(c1.ledger.completed - c0.ledger.completed) / elapsed;
    out["errors"] = all.errors;
    out["accept_p50_ms"] = ms(all.accept.value_at_percentile(50));
    out["accept_p99_ms"] = ms(all.accept.value_at_percentile(99));
    out["accept_max_ms"] = ms(all.accept.max());
    out["e2e_p50_ms"] = ms(all.e2e.value_at_percentile(50));
    out["e2e_p99_ms"] = ms(all.e2e.value_at_percentile(99));
    out["process_cpu_cores"] = (cpu(ru1) - cpu(ru0)) / elapsed;
    out["rss_mib"] = static_cast<double>(status_kib("VmRSS:")) / 1024;
    if (auto* memory_bus = dynamic_cast<runtime::MemoryEventBus*>(&rt.bus())) {
      out["bus_events_per_task"] = static_cast<double>(memory_bus->stats().appended) /
                                   static_cast<double>(std::max<std::uint64_t>(1, c1.ledger.completed));
    }
  }
  rt.stop(std::chrono::seconds(2));
  mock.stop();
  std::cout << bj::serialize(out) << std::endl;
  return 0;
}
