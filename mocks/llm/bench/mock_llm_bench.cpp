// lab_mock_llm_bench: a load client for the mock LLM. It keeps N streaming completions open
// (closed loop: each virtual user starts its next stream when one ends) and measures, per token,
// how the mock's schedule was kept:
//
//   TTFT      first content token − request write
//   ITL       gap between consecutive content tokens of a stream
//   lateness  token arrival − its intended time (request write + TTFT + k × ITL)
//
// The intended schedule is known because the client pins it per request (x-mock-ttft-ms,
// x-mock-itl-ms, x-mock-output-tokens), so the figures hold for any server profile whose load
// factor is 1 (the script's profile). Tokens are counted from the content markers in the
// stream, never from SSE chunks. One HDR histogram per client thread, merged at the end.
//
//   lab_mock_llm_bench --url http://127.0.0.1:8000 --streams 1000 --duration 20
//       --ttft-ms 200 --itl-ms 20 --tokens 100 [--api openai|anthropic] [--threads 1]
//       [--warmup 3] [--ramp 1] [--max-median-error-pct 5] [--max-lateness-p99-ms 2]

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include "common/hdr/histogram.hpp"

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);

struct Config {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;
  int streams = 100;
  double duration_s = 10.0;
  double warmup_s = 2.0;
  double ramp_s = 1.0;
  double ttft_ms = 100.0;
  double itl_ms = 20.0;
  int tokens = 100;
  int threads = 1;
  bool anthropic = false;
  double max_median_error_pct = -1.0;  // < 0: no check
  double max_lateness_p99_ms = -1.0;
};

/// Finds a fixed marker in a byte stream delivered in pieces. The markers used here have no
/// proper prefix that is also a suffix, so a mismatch can restart from the current byte alone.
class MarkerCounter {
 public:
  explicit MarkerCounter(std::string_view marker) : marker_(marker) {}
  /// Number of complete markers in `bytes` (continuing any partial match).
  int feed(std::string_view bytes) {
    int found = 0;
    for (char c : bytes) {
      if (c == marker_[matched_]) {
        if (++matched_ == marker_.size()) {
          ++found;
          matched_ = 0;
        }
      } else {
        matched_ = c == marker_[0] ? 1 : 0;
      }
    }
    return found;
  }
  void reset() { matched_ = 0; }

 private:
  std::string_view marker_;
  std::size_t matched_ = 0;
};

/// Per-thread results.
struct Results {
  lab::Histogram ttft_us{1, 600'000'000, 3};
  lab::Histogram itl_us{1, 600'000'000, 3};
  lab::Histogram lateness_us{1, 600'000'000, 3};
  std::int64_t streams = 0;
  std::int64_t tokens = 0;
  std::int64_t errors_connect = 0;
  std::int64_t errors_status = 0;
  std::int64_t errors_protocol = 0;
  std::int64_t short_streams = 0;
  std::string first_error;
  void error(std::int64_t& counter, const std::string& what) {
    ++counter;
    if (first_error.empty()) first_error = what;
  }
};

struct Run {
  Config config;
  TimePoint start;
  TimePoint measure_from;
  TimePoint stop_at;
  std::string request;  // the whole HTTP request, reused
  std::atomic<int> in_flight{0};
  std::atomic<int> max_in_flight{0};
};

asio::awaitable<void> virtual_user(Run& run, Results& results, TimePoint first_start) {
  const Config& cfg = run.config;
  auto executor = co_await asio::this_coro::executor;
  asio::steady_timer timer(executor);
  timer.expires_at(first_start);
  co_await timer.async_wait(kNoThrow);

  const auto ttft = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double, std::milli>(cfg.ttft_ms));
  const auto itl = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double, std::milli>(cfg.itl_ms));
  std::vector<TimePoint> arrivals;
  arrivals.reserve(static_cast<std::size_t>(cfg.tokens) + 8);
  MarkerCounter counter(cfg.anthropic ? std::string_view("\"text_delta\"") : std::string_view("{\"content\":\""));
  std::optional<beast::tcp_stream> stream;
  beast::flat_buffer buffer;

  while (Clock::now() < run.stop_at) {
    if (!stream) {
      stream.emplace(executor);
      stream->expires_after(std::chrono::seconds(10));
      auto [ec] = co_await stream->async_connect(tcp::endpoint(asio::ip::make_address(cfg.host), cfg.port), kNoThrow);
      if (ec) {
        results.error(results.errors_connect, "connect: " + ec.message());
        stream.reset();
        timer.expires_after(std::chrono::milliseconds(100));
        co_await timer.async_wait(kNoThrow);
        continue;
      }
      stream->socket().set_option(tcp::no_delay(true));
      buffer.clear();
    }
    arrivals.clear();
    counter.reset();
    const TimePoint sent = Clock::now();
    stream->expires_after(std::chrono::seconds(120));
    auto [wec, wn] = co_await asio::async_write(*stream, asio::buffer(run.request), kNoThrow);
    if (wec) {
      results.error(results.errors_connect, "write: " + wec.message());
      stream.reset();
      continue;
    }
    const int now_in_flight = run.in_flight.fetch_add(1) + 1;
    int seen_max = run.max_in_flight.load();
    while (now_in_flight > seen_max && !run.max_in_flight.compare_exchange_weak(seen_max, now_in_flight)) {
    }

    bhttp::response_parser<bhttp::buffer_body> parser;
    parser.body_limit(boost::none);
    auto on_body = [&](std::uint64_t, std::string_view body, beast::error_code&) -> std::size_t {
      const int found = counter.feed(body);
      if (found > 0) {
        const TimePoint t = Clock::now();
        for (int i = 0; i < found; ++i) arrivals.push_back(t);
      }
      return body.size();
    };
    parser.on_chunk_body(on_body);
    beast::error_code ec;
    while (!parser.is_done()) {
      char scratch[512];
      if (parser.is_header_done()) {
        parser.get().body().data = scratch;
        parser.get().body().size = sizeof(scratch);
      }
      std::tie(ec, std::ignore) = co_await bhttp::async_read_some(*stream, buffer, parser, kNoThrow);
      if (ec == bhttp::error::need_buffer) ec = {};
      if (ec) break;
    }
    run.in_flight.fetch_sub(1);
    if (ec) {
      results.error(results.errors_protocol, "read: " + ec.message());
      stream.reset();
      continue;
    }
    if (parser.get().result_int() != 200) {
      results.error(results.errors_status, "status " + std::to_string(parser.get().result_int()));
      if (!parser.get().keep_alive()) stream.reset();
      timer.expires_after(std::chrono::milliseconds(50));
      co_await timer.async_wait(kNoThrow);
      continue;
    }
    if (!parser.get().keep_alive()) stream.reset();
    if (static_cast<int>(arrivals.size()) != cfg.tokens) ++results.short_streams;
    if (sent < run.measure_from || Clock::now() > run.stop_at || arrivals.empty()) continue;
    ++results.streams;
    results.tokens += static_cast<std::int64_t>(arrivals.size());
    results.ttft_us.record(std::chrono::duration_cast<std::chrono::microseconds>(arrivals[0] - sent).count());
    for (std::size_t k = 0; k < arrivals.size(); ++k) {
      if (k > 0) results.itl_us.record(std::chrono::duration_cast<std::chrono::microseconds>(arrivals[k] - arrivals[k - 1]).count());
      const TimePoint intended = sent + ttft + itl * static_cast<int>(k);
      results.lateness_us.record(std::chrono::duration_cast<std::chrono::microseconds>(arrivals[k] - intended).count());
    }
  }
}

std::string build_request(const Config& cfg) {
  std::ostringstream body;
  if (cfg.anthropic) {
    body << R"({"model":"bench","max_tokens":)" << cfg.tokens
         << R"(,"stream":true,"messages":[{"role":"user","content":"Write a long answer."}]})";
  } else {
    body << R"({"model":"bench","max_tokens":)" << cfg.tokens
         << R"(,"stream":true,"messages":[{"role":"user","content":"Write a long answer."}]})";
  }
  const std::string b = body.str();
  std::ostringstream req;
  req << "POST " << (cfg.anthropic ? "/v1/messages" : "/v1/chat/completions") << " HTTP/1.1\r\n"
      << "Host: " << cfg.host << "\r\n"
      << "Content-Type: application/json\r\n"
      << "x-mock-ttft-ms: " << cfg.ttft_ms << "\r\n"
      << "x-mock-itl-ms: " << cfg.itl_ms << "\r\n"
      << "x-mock-output-tokens: " << cfg.tokens << "\r\n"
      << "Content-Length: " << b.size() << "\r\n\r\n"
      << b;
  return req.str();
}

/// GET /metrics; returns the body or "".
std::string fetch_metrics(const Config& cfg) {
  try {
    asio::io_context ctx;
    beast::tcp_stream stream(ctx);
    stream.connect(tcp::endpoint(asio::ip::make_address(cfg.host), cfg.port));
    bhttp::request<bhttp::empty_body> req{bhttp::verb::get, "/metrics", 11};
    req.set(bhttp::field::host, cfg.host);
    bhttp::write(stream, req);
    beast::flat_buffer buffer;
    bhttp::response<bhttp::string_body> res;
    bhttp::read(stream, buffer, res);
    return res.body();
  } catch (const std::exception&) {
    return {};
  }
}

/// The upper bound of the bucket holding the p-th percentile of a Prometheus histogram.
std::optional<double> prometheus_quantile_bound(const std::string& text, std::string_view name, double p) {
  std::vector<std::pair<double, double>> buckets;  // (le, cumulative count)
  std::istringstream lines(text);
  std::string line;
  const std::string prefix = std::string(name) + "_bucket{le=\"";
  while (std::getline(lines, line)) {
    if (!line.starts_with(prefix)) continue;
    const std::size_t q = line.find('"', prefix.size());
    const std::string le = line.substr(prefix.size(), q - prefix.size());
    const double bound = le == "+Inf" ? 1e300 : std::stod(le);
    buckets.emplace_back(bound, std::stod(line.substr(line.rfind(' ') + 1)));
  }
  if (buckets.empty() || buckets.back().second <= 0) return std::nullopt;
  const double target = p / 100.0 * buckets.back().second;
  for (const auto& [bound, count] : buckets) {
    if (count >= target) return bound;
  }
  return std::nullopt;
}

bool parse_args(int argc, char** argv, Config& cfg) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view flag = argv[i];
    if (i + 1 >= argc) {
      std::cerr << "lab_mock_llm_bench: " << flag << ": missing value\n";
      return false;
    }
    const std::string value = argv[++i];
    try {
      if (flag == "--url") {
        const std::string_view v = value;
        if (!v.starts_with("http://")) throw std::invalid_argument("expected http://HOST:PORT");
        const std::string_view rest = v.substr(7);
        const std::size_t colon = rest.rfind(':');
        if (colon == std::string_view::npos) throw std::invalid_argument("expected http://HOST:PORT");
        cfg.host = std::string(rest.substr(0, colon));
        if (cfg.host == "localhost") cfg.host = "127.0.0.1";
        cfg.port = static_cast<std::uint16_t>(std::stoi(std::string(rest.substr(colon + 1))));
      } else if (flag == "--streams") cfg.streams = std::stoi(value);
      else if (flag == "--duration") cfg.duration_s = std::stod(value);
      else if (flag == "--warmup") cfg.warmup_s = std::stod(value);
      else if (flag == "--ramp") cfg.ramp_s = std::stod(value);
      else if (flag == "--ttft-ms") cfg.ttft_ms = std::stod(value);
      else if (flag == "--itl-ms") cfg.itl_ms = std::stod(value);
      else if (flag == "--tokens") cfg.tokens = std::stoi(value);
      else if (flag == "--threads") cfg.threads = std::stoi(value);
      else if (flag == "--api") {
        if (value != "openai" && value != "anthropic") throw std::invalid_argument("expected openai or anthropic");
        cfg.anthropic = value == "anthropic";
      } else if (flag == "--max-median-error-pct") cfg.max_median_error_pct = std::stod(value);
      else if (flag == "--max-lateness-p99-ms") cfg.max_lateness_p99_ms = std::stod(value);
      else {
        std::cerr << "lab_mock_llm_bench: " << flag << ": unknown flag\n";
        return false;
      }
    } catch (const std::exception& e) {
      std::cerr << "lab_mock_llm_bench: " << flag << " " << value << ": " << e.what() << "\n";
      return false;
    }
  }
  if (cfg.port == 0 || cfg.streams < 1 || cfg.tokens < 1 || cfg.threads < 1 || cfg.duration_s <= cfg.warmup_s) {
    std::cerr << "lab_mock_llm_bench: need --url, streams >= 1, tokens >= 1, threads >= 1, duration > warmup\n";
    return false;
  }
  return true;
}

double ms(std::int64_t us) { return static_cast<double>(us) / 1000.0; }

}  // namespace

int main(int argc, char** argv) {
  Run run;
  if (!parse_args(argc, argv, run.config)) return 2;
  const Config& cfg = run.config;
  run.request = build_request(cfg);
  run.start = Clock::now() + std::chrono::milliseconds(100);
  run.measure_from = run.start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(cfg.warmup_s));
  run.stop_at = run.start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(cfg.duration_s));

  std::vector<std::unique_ptr<asio::io_context>> contexts;
  std::vector<Results> results(static_cast<std::size_t>(cfg.threads));
  for (int t = 0; t < cfg.threads; ++t) contexts.push_back(std::make_unique<asio::io_context>(1));
  for (int u = 0; u < cfg.streams; ++u) {
    const std::size_t t = static_cast<std::size_t>(u % cfg.threads);
    // Spread the first requests evenly over the ramp so the token phases are spread too.
    const auto offset = std::chrono::duration_cast<Clock::duration>(
        std::chrono::duration<double>(cfg.ramp_s * u / cfg.streams));
    asio::co_spawn(*contexts[t], virtual_user(run, results[t], run.start + offset), asio::detached);
  }
  std::vector<std::thread> threads;
  for (auto& ctx : contexts) threads.emplace_back([&ctx] { ctx->run(); });
  for (auto& t : threads) t.join();

  Results total;
  for (const Results& r : results) {
    total.ttft_us.merge(r.ttft_us);
    total.itl_us.merge(r.itl_us);
    total.lateness_us.merge(r.lateness_us);
    total.streams += r.streams;
    total.tokens += r.tokens;
    total.errors_connect += r.errors_connect;
    total.errors_status += r.errors_status;
    total.errors_protocol += r.errors_protocol;
    total.short_streams += r.short_streams;
    if (total.first_error.empty()) total.first_error = r.first_error;
  }
  const double window_s = cfg.duration_s - cfg.warmup_s;
  std::printf("mock-llm bench: %d concurrent %s streams, TTFT %.1f ms, ITL %.1f ms, %d tokens, %.0f s (%.0f s warm-up), %d client thread(s)\n",
              cfg.streams, cfg.anthropic ? "anthropic" : "openai", cfg.ttft_ms, cfg.itl_ms, cfg.tokens,
              cfg.duration_s, cfg.warmup_s, cfg.threads);
  std::printf("  streams measured %lld, tokens %lld (%.0f tokens/s), max in flight %d, errors: connect %lld status %lld protocol %lld, short streams %lld\n",
              static_cast<long long>(total.streams), static_cast<long long>(total.tokens),
              static_cast<double>(total.tokens) / window_s, run.max_in_flight.load(),
              static_cast<long long>(total.errors_connect), static_cast<long long>(total.errors_status),
              static_cast<long long>(total.errors_protocol), static_cast<long long>(total.short_streams));
  if (!total.first_error.empty()) std::printf("  first error: %s\n", total.first_error.c_str());
  auto row = [](const char* name, const lab::Histogram& h) {
    std::printf("  %-9s p50 %8.3f  p90 %8.3f  p99 %8.3f  p99.9 %8.3f  max %8.3f ms\n", name,
                ms(h.value_at_percentile(50)), ms(h.value_at_percentile(90)), ms(h.value_at_percentile(99)),
                ms(h.value_at_percentile(99.9)), ms(h.max()));
  };
  row("TTFT", total.ttft_us);
  row("ITL", total.itl_us);
  row("lateness", total.lateness_us);
  const double ttft_err = 100.0 * (ms(total.ttft_us.value_at_percentile(50)) - cfg.ttft_ms) / cfg.ttft_ms;
  const double itl_err = 100.0 * (ms(total.itl_us.value_at_percentile(50)) - cfg.itl_ms) / cfg.itl_ms;
  const double late_p99 = ms(total.lateness_us.value_at_percentile(99));
  std::printf("  median error: TTFT %+.2f%%, ITL %+.2f%%; client-side token lateness p99 %.3f ms\n", ttft_err, itl_err, late_p99);
  const std::string metrics = fetch_metrics(cfg);
  if (auto bound = prometheus_quantile_bound(metrics, "mock_llm_token_lateness_seconds", 99)) {
    if (*bound > 1e6) {
      std::printf("  server-side token lateness p99 > 1 s (whole run, from /metrics)\n");
    } else {
      std::printf("  server-side token lateness p99 <= %.3f ms (histogram bucket bound, whole run, from /metrics)\n",
                  *bound * 1000.0);
    }
  }
  bool ok = total.streams > 0 && total.errors_connect + total.errors_status + total.errors_protocol == 0;
  if (cfg.max_median_error_pct >= 0.0) {
    ok = ok && std::abs(ttft_err) <= cfg.max_median_error_pct && std::abs(itl_err) <= cfg.max_median_error_pct;
  }
  if (cfg.max_lateness_p99_ms >= 0.0) ok = ok && late_p99 <= cfg.max_lateness_p99_ms;
  if (cfg.max_median_error_pct >= 0.0 || cfg.max_lateness_p99_ms >= 0.0) {
    std::printf("  verdict: %s\n", ok ? "PASS" : "FAIL");
  }
  return ok ? 0 : 1;
}
