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
// The client is a plain epoll loop per thread (non-blocking sockets, a small HTTP/1.1 response
// reader) rather than Asio coroutines: at 100k tokens/s on one core the client's own cost per
// token must stay well under the server's, or the client's lateness is what gets measured. For
// the same reason the reads of all the sockets one poll finds ready go to the kernel together
// (http::SocketCalls: one io_uring_enter where the kernel has io_uring, one recv() each where
// it has not or AGENTLAB_IO_URING=0).
//
//   lab_mock_llm_bench --url http://127.0.0.1:8000 --streams 1000 --duration 20
//       --ttft-ms 200 --itl-ms 20 --tokens 100 [--api openai|anthropic] [--threads 1]
//       [--warmup 3] [--ramp 1] [--max-median-error-pct 5] [--max-lateness-p99-ms 2]
//       [--poll-us 0]

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <queue>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include "common/hdr/histogram.hpp"
#include "common/http/socket_calls.hpp"

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;

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
  int poll_us = 0;           // > 0: sleep this long between non-blocking polls (see ClientLoop)
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

/// Reads one HTTP/1.1 response as its bytes arrive: the header, then a chunked body (or a
/// Content-Length body, or one that ends with the connection), passing body bytes to a sink.
/// Enough HTTP for a load client of a known server; anything unexpected is a protocol error.
class ResponseReader {
 public:
  static constexpr std::size_t kMaxHeaderBytes = 64 * 1024;

  void reset() {
    state_ = State::kHeader;
    header_.clear();
    status_ = 0;
    keep_alive_ = true;
    remaining_ = 0;
    line_bytes_ = 0;
    saw_digit_ = false;
    in_extension_ = false;
    error_.clear();
  }

  /// Consumes `bytes`; body bytes go to `on_body(std::string_view)`. Bytes after the end of
  /// the response are a protocol error (the client never pipelines).
  template <class OnBody>
  void feed(std::string_view bytes, OnBody&& on_body) {
    std::size_t at = 0;
    if (state_ == State::kHeader) {
      const std::size_t before = header_.size();
      header_.append(bytes);
      const std::size_t end = header_.find("\r\n\r\n", before >= 3 ? before - 3 : 0);
      if (end == std::string::npos) {
        if (header_.size() > kMaxHeaderBytes) fail("response header too large");
        return;
      }
      at = end + 4 - before;
      header_.resize(end + 2);
      if (!parse_header()) return;
    }
    while (at < bytes.size() && state_ != State::kDone && state_ != State::kError) {
      const char c = bytes[at];
      switch (state_) {
        case State::kChunkSize:
          ++at;
          if (c == '\n') {
            if (!saw_digit_) return fail("chunk size line without a size");
            state_ = remaining_ == 0 ? State::kTrailer : State::kChunkData;
            line_bytes_ = 0;
            saw_digit_ = false;
            in_extension_ = false;
          } else if (c == ';') {
            in_extension_ = true;
          } else if (c != '\r' && !in_extension_) {
            const int digit = hex_digit(c);
            if (digit < 0 || remaining_ > (std::uint64_t{1} << 40)) return fail("bad chunk size");
            remaining_ = remaining_ * 16 + static_cast<std::uint64_t>(digit);
            saw_digit_ = true;
          }
          break;
        case State::kChunkData:
        case State::kLength: {
          const std::size_t take = static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, bytes.size() - at));
          on_body(bytes.substr(at, take));
          at += take;
          remaining_ -= take;
          if (remaining_ == 0) state_ = state_ == State::kLength ? State::kDone : State::kChunkEnd;
          break;
        }
        case State::kChunkEnd:  // the CRLF after a chunk's data
          ++at;
          if (c == '\n') {
            state_ = State::kChunkSize;
          } else if (c != '\r') {
            return fail("chunk data longer than its size");
          }
          break;
        case State::kTrailer:  // trailer lines until an empty one
          ++at;
          if (c == '\n') {
            if (line_bytes_ == 0) state_ = State::kDone;
            line_bytes_ = 0;
          } else if (c != '\r') {
            ++line_bytes_;
          }
          break;
        case State::kUntilClose:
          on_body(bytes.substr(at));
          at = bytes.size();
          break;
        case State::kHeader:
        case State::kDone:
        case State::kError:
          break;
      }
    }
    if (at < bytes.size() && state_ == State::kDone) fail("bytes after the end of the response");
  }

  /// The peer closed the connection: ends a body delimited by the close, fails anything else.
  void on_eof() {
    if (state_ == State::kUntilClose) {
      state_ = State::kDone;
      keep_alive_ = false;
    } else if (state_ != State::kDone) {
      fail("connection closed mid-response");
    }
  }

  bool done() const { return state_ == State::kDone; }
  bool failed() const { return state_ == State::kError; }
  const std::string& error() const { return error_; }
  int status() const { return status_; }
  bool keep_alive() const { return keep_alive_; }

 private:
  enum class State { kHeader, kChunkSize, kChunkData, kChunkEnd, kTrailer, kLength, kUntilClose, kDone, kError };

  static int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }

  static bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
             return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
           });
  }

  static std::string_view trim(std::string_view v) {
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
    while (!v.empty() && (v.back() == ' ' || v.back() == '\t' || v.back() == '\r')) v.remove_suffix(1);
    return v;
  }

  void fail(std::string what) {
    state_ = State::kError;
    error_ = std::move(what);
  }

  /// header_ holds the status line and the header lines, each ending in CRLF.
  bool parse_header() {
    const std::string_view head = header_;
    const std::size_t line_end = head.find("\r\n");
    const std::string_view status_line = head.substr(0, line_end);
    if (!status_line.starts_with("HTTP/1.") || status_line.size() < 12) {
      fail("bad status line");
      return false;
    }
    const bool http10 = status_line[7] == '0';
    const auto [ptr, ec] = std::from_chars(status_line.data() + 9, status_line.data() + 12, status_);
    if (ec != std::errc() || ptr != status_line.data() + 12) {
      fail("bad status code");
      return false;
    }
    bool chunked = false;
    std::optional<std::uint64_t> length;
    bool close = http10;
    for (std::size_t at = line_end + 2; at < head.size();) {
      const std::size_t end = head.find("\r\n", at);
      const std::string_view line = head.substr(at, end - at);
      at = end + 2;
      const std::size_t colon = line.find(':');
      if (colon == std::string_view::npos) continue;
      const std::string_view name = line.substr(0, colon);
      const std::string_view value = trim(line.substr(colon + 1));
      if (iequals(name, "transfer-encoding")) {
        chunked = iequals(value, "chunked");
      } else if (iequals(name, "content-length")) {
        std::uint64_t n = 0;
        const auto [p, e] = std::from_chars(value.data(), value.data() + value.size(), n);
        if (e != std::errc() || p != value.data() + value.size()) {
          fail("bad content-length");
          return false;
        }
        length = n;
      } else if (iequals(name, "connection")) {
        if (iequals(value, "close")) close = true;
        if (iequals(value, "keep-alive")) close = false;
      }
    }
    keep_alive_ = !close;
    if (chunked) {
      state_ = State::kChunkSize;
    } else if (length) {
      remaining_ = *length;
      state_ = remaining_ == 0 ? State::kDone : State::kLength;
    } else {
      state_ = State::kUntilClose;
      keep_alive_ = false;
    }
    return true;
  }

  State state_ = State::kHeader;
  std::string header_;
  int status_ = 0;
  bool keep_alive_ = true;
  std::uint64_t remaining_ = 0;  ///< chunk or Content-Length bytes still to come
  std::size_t line_bytes_ = 0;
  bool saw_digit_ = false;
  bool in_extension_ = false;
  std::string error_;
};

/// One virtual user: a connection that carries one streaming request after another.
struct VirtualUser {
  enum class Phase { kIdle, kConnecting, kSending, kReading };
  explicit VirtualUser(std::string_view marker) : counter(marker) {}
  int fd = -1;
  Phase phase = Phase::kIdle;
  std::size_t request_sent = 0;  ///< request bytes written
  TimePoint sent;                ///< when the request was written (the schedule's origin)
  TimePoint progress;            ///< last connect, write or read
  ResponseReader reader;
  MarkerCounter counter;
  std::vector<TimePoint> arrivals;  ///< one per content token
};

/// Runs `users` virtual users on one epoll loop (one per client thread): non-blocking sockets,
/// level-triggered, one read per readable socket per wake-up. A token's arrival time is taken
/// once per read, right after it returns. With poll_us > 0 the loop sleeps that long between
/// non-blocking polls instead of waiting in epoll_wait, so the server's sends never need to
/// wake it (on loopback, that wake-up is work done on the server's core); a token then arrives
/// up to poll_us later than it could have, which counts against the server.
class ClientLoop {
 public:
  /// Connect and whole-request deadlines (the server paces tokens; a stuck stream is an error).
  static constexpr auto kConnectTimeout = std::chrono::seconds(10);
  static constexpr auto kStallTimeout = std::chrono::seconds(30);
  static constexpr auto kConnectRetry = std::chrono::milliseconds(100);
  static constexpr auto kStatusRetry = std::chrono::milliseconds(50);
  /// Ready sockets taken per poll, and the bytes read from each per poll.
  static constexpr std::size_t kMaxEvents = 512;
  static constexpr std::size_t kReadBytes = 16 * 1024;

  ClientLoop(Run& run, Results& results) : run_(run), results_(results), cfg_(run.config) {
    addr_.sin_family = AF_INET;
    addr_.sin_port = htons(cfg_.port);
    if (inet_pton(AF_INET, cfg_.host.c_str(), &addr_.sin_addr) != 1) {
      std::fprintf(stderr, "lab_mock_llm_bench: %s: not an IPv4 address\n", cfg_.host.c_str());
      std::exit(2);
    }
    epoll_ = epoll_create1(EPOLL_CLOEXEC);
    if (epoll_ < 0) {
      std::perror("epoll_create1");
      std::exit(1);
    }
  }
  ~ClientLoop() {
    for (VirtualUser& vu : users_) close_socket(vu);
    ::close(epoll_);
  }
  ClientLoop(const ClientLoop&) = delete;
  ClientLoop& operator=(const ClientLoop&) = delete;

  void add_user(TimePoint first_start) {
    users_.emplace_back(cfg_.anthropic ? std::string_view("\"text_delta\"") : std::string_view("{\"content\":\""));
    users_.back().arrivals.reserve(static_cast<std::size_t>(cfg_.tokens) + 8);
    starts_.push({first_start, users_.size() - 1});
  }

  void run() {
    std::array<epoll_event, kMaxEvents> events{};
    // One receive buffer per ready socket of a poll: their reads go to the kernel together.
    std::vector<char> buffers(kMaxEvents * kReadBytes);
    std::vector<lab::http::SocketCall> reads;
    std::vector<std::size_t> readers;  // the user behind each read
    reads.reserve(kMaxEvents);
    readers.reserve(kMaxEvents);
    TimePoint next_sweep = Clock::now() + std::chrono::seconds(1);
    bool backlog = false;  // the last poll filled `events`: poll again at once
    for (;;) {
      TimePoint now = Clock::now();
      if (now >= run_.stop_at) break;
      while (!starts_.empty() && starts_.top().at <= now) {
        const std::size_t index = starts_.top().user;
        starts_.pop();
        begin(index, now);
      }
      if (now >= next_sweep) {
        sweep(now);
        next_sweep = now + std::chrono::seconds(1);
      }
      int timeout_ms = 0;
      if (cfg_.poll_us > 0 && !backlog) {
        // Sleep without waiting on the sockets, then poll: the server's sends then never have
        // to wake this thread (on loopback, waking it is work done on the server's core).
        const auto nap = std::min<Clock::duration>(std::chrono::microseconds(cfg_.poll_us), run_.stop_at - now);
        if (nap > Clock::duration::zero()) std::this_thread::sleep_for(nap);
      } else {
        TimePoint wake = std::min(next_sweep, run_.stop_at);
        if (!starts_.empty()) wake = std::min(wake, starts_.top().at);
        const auto wait = std::chrono::ceil<std::chrono::milliseconds>(wake - now).count();
        timeout_ms = static_cast<int>(std::clamp<std::int64_t>(wait, 0, 50));
      }
      const int n = epoll_wait(epoll_, events.data(), static_cast<int>(events.size()), timeout_ms);
      if (n < 0) {
        if (errno == EINTR) continue;
        std::perror("epoll_wait");
        std::exit(1);
      }
      backlog = n == static_cast<int>(events.size());
      reads.clear();
      readers.clear();
      for (int i = 0; i < n; ++i) {
        const std::size_t index = events[static_cast<std::size_t>(i)].data.u64;
        const std::uint32_t what = events[static_cast<std::size_t>(i)].events;
        VirtualUser& vu = users_[index];
        switch (vu.phase) {
          case VirtualUser::Phase::kConnecting: on_connected(index); break;
          case VirtualUser::Phase::kSending: send_request(index); break;
          case VirtualUser::Phase::kReading:
            if ((what & (EPOLLIN | EPOLLHUP | EPOLLERR)) != 0) {
              reads.push_back({vu.fd, lab::http::SocketCall::Kind::kRecv, buffers.data() + reads.size() * kReadBytes,
                               kReadBytes, 0});
              readers.push_back(index);
            }
            break;
          case VirtualUser::Phase::kIdle: break;
        }
      }
      // The ready sockets' reads in one system call (io_uring), then each user in turn. (A
      // read that fills its buffer leaves the rest for the next poll: the socket stays ready.)
      reads_.run(reads);
      for (std::size_t k = 0; k < reads.size(); ++k) on_read(readers[k], reads[k]);
    }
  }

 private:
  struct Start {
    TimePoint at;
    std::size_t user;
    bool operator>(const Start& other) const { return at > other.at; }
  };

  void begin(std::size_t index, TimePoint now) {
    VirtualUser& vu = users_[index];
    if (vu.fd >= 0) {
      start_request(index);
      return;
    }
    vu.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (vu.fd < 0) return retry(index, results_.errors_connect, std::string("socket: ") + std::strerror(errno), kConnectRetry);
    const int one = 1;
    ::setsockopt(vu.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    vu.progress = now;
    if (::connect(vu.fd, reinterpret_cast<const sockaddr*>(&addr_), sizeof(addr_)) == 0) {
      watch(vu, index, EPOLLIN, EPOLL_CTL_ADD);
      start_request(index);
      return;
    }
    if (errno != EINPROGRESS) {
      return retry(index, results_.errors_connect, std::string("connect: ") + std::strerror(errno), kConnectRetry);
    }
    vu.phase = VirtualUser::Phase::kConnecting;
    watch(vu, index, EPOLLOUT, EPOLL_CTL_ADD);
  }

  void on_connected(std::size_t index) {
    VirtualUser& vu = users_[index];
    int error = 0;
    socklen_t len = sizeof(error);
    ::getsockopt(vu.fd, SOL_SOCKET, SO_ERROR, &error, &len);
    if (error != 0) return retry(index, results_.errors_connect, std::string("connect: ") + std::strerror(error), kConnectRetry);
    watch(vu, index, EPOLLIN, EPOLL_CTL_MOD);
    start_request(index);
  }

  void start_request(std::size_t index) {
    VirtualUser& vu = users_[index];
    vu.arrivals.clear();
    vu.counter.reset();
    vu.reader.reset();
    vu.request_sent = 0;
    vu.sent = Clock::now();
    vu.progress = vu.sent;
    const int now_in_flight = run_.in_flight.fetch_add(1) + 1;
    int seen_max = run_.max_in_flight.load();
    while (now_in_flight > seen_max && !run_.max_in_flight.compare_exchange_weak(seen_max, now_in_flight)) {
    }
    send_request(index);
  }

  void send_request(std::size_t index) {
    VirtualUser& vu = users_[index];
    const std::string& request = run_.request;
    while (vu.request_sent < request.size()) {
      const ssize_t n = ::send(vu.fd, request.data() + vu.request_sent, request.size() - vu.request_sent, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        if (vu.phase != VirtualUser::Phase::kSending) watch(vu, index, EPOLLOUT, EPOLL_CTL_MOD);
        vu.phase = VirtualUser::Phase::kSending;
        return;
      }
      if (n < 0) {
        run_.in_flight.fetch_sub(1);
        return retry(index, results_.errors_connect, std::string("write: ") + std::strerror(errno), std::chrono::milliseconds(0));
      }
      vu.request_sent += static_cast<std::size_t>(n);
    }
    if (vu.phase == VirtualUser::Phase::kSending) watch(vu, index, EPOLLIN, EPOLL_CTL_MOD);
    vu.phase = VirtualUser::Phase::kReading;
  }

  void on_read(std::size_t index, const lab::http::SocketCall& read) {
    VirtualUser& vu = users_[index];
    const long n = read.result;
    if (n == -EAGAIN || n == -EWOULDBLOCK || n == -EINTR) return;
    const TimePoint now = Clock::now();
    vu.progress = now;
    if (n < 0) {
      run_.in_flight.fetch_sub(1);
      return retry(index, results_.errors_protocol, std::string("read: ") + std::strerror(static_cast<int>(-n)),
                   std::chrono::milliseconds(0));
    }
    if (n == 0) {
      vu.reader.on_eof();
    } else {
      vu.reader.feed(std::string_view(read.data, static_cast<std::size_t>(n)), [&](std::string_view body) {
        const int found = vu.counter.feed(body);
        for (int i = 0; i < found; ++i) vu.arrivals.push_back(now);
      });
    }
    if (vu.reader.failed()) {
      run_.in_flight.fetch_sub(1);
      return retry(index, results_.errors_protocol, "read: " + vu.reader.error(), std::chrono::milliseconds(0));
    }
    if (!vu.reader.done()) return;
    run_.in_flight.fetch_sub(1);
    if (!vu.reader.keep_alive()) close_socket(vu);
    if (vu.reader.status() != 200) {
      results_.error(results_.errors_status, "status " + std::to_string(vu.reader.status()));
      vu.phase = VirtualUser::Phase::kIdle;
      starts_.push({now + kStatusRetry, index});
      return;
    }
    record(vu, now);
    vu.phase = VirtualUser::Phase::kIdle;
    begin(index, now);
  }

  void record(const VirtualUser& vu, TimePoint end) {
    if (static_cast<int>(vu.arrivals.size()) != cfg_.tokens) ++results_.short_streams;
    if (vu.sent < run_.measure_from || end > run_.stop_at || vu.arrivals.empty()) return;
    const auto ttft = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double, std::milli>(cfg_.ttft_ms));
    const auto itl = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double, std::milli>(cfg_.itl_ms));
    ++results_.streams;
    results_.tokens += static_cast<std::int64_t>(vu.arrivals.size());
    results_.ttft_us.record(std::chrono::duration_cast<std::chrono::microseconds>(vu.arrivals[0] - vu.sent).count());
    for (std::size_t k = 0; k < vu.arrivals.size(); ++k) {
      if (k > 0) {
        results_.itl_us.record(std::chrono::duration_cast<std::chrono::microseconds>(vu.arrivals[k] - vu.arrivals[k - 1]).count());
      }
      const TimePoint intended = vu.sent + ttft + itl * static_cast<int>(k);
      results_.lateness_us.record(std::chrono::duration_cast<std::chrono::microseconds>(vu.arrivals[k] - intended).count());
    }
  }

  /// Drops connections that made no progress for too long (counted as errors).
  void sweep(TimePoint now) {
    for (std::size_t i = 0; i < users_.size(); ++i) {
      VirtualUser& vu = users_[i];
      if (vu.phase == VirtualUser::Phase::kConnecting && now - vu.progress > kConnectTimeout) {
        retry(i, results_.errors_connect, "connect: timeout", std::chrono::milliseconds(0));
      } else if ((vu.phase == VirtualUser::Phase::kSending || vu.phase == VirtualUser::Phase::kReading) &&
                 now - vu.progress > kStallTimeout) {
        run_.in_flight.fetch_sub(1);
        retry(i, results_.errors_protocol, "read: timeout", std::chrono::milliseconds(0));
      }
    }
  }

  void retry(std::size_t index, std::int64_t& counter, const std::string& what, Clock::duration after) {
    results_.error(counter, what);
    VirtualUser& vu = users_[index];
    close_socket(vu);
    vu.phase = VirtualUser::Phase::kIdle;
    starts_.push({Clock::now() + after, index});
  }

  void watch(VirtualUser& vu, std::size_t index, std::uint32_t events, int op) {
    epoll_event e{};
    e.events = events;
    e.data.u64 = index;
    if (::epoll_ctl(epoll_, op, vu.fd, &e) != 0) {
      std::perror("epoll_ctl");
      std::exit(1);
    }
  }

  static void close_socket(VirtualUser& vu) {
    if (vu.fd >= 0) ::close(vu.fd);  // also leaves the epoll set
    vu.fd = -1;
  }

  Run& run_;
  Results& results_;
  const Config& cfg_;
  sockaddr_in addr_{};
  int epoll_ = -1;
  lab::http::SocketCalls reads_;
  std::vector<VirtualUser> users_;
  std::priority_queue<Start, std::vector<Start>, std::greater<>> starts_;
};

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
      else if (flag == "--poll-us") {
        cfg.poll_us = std::stoi(value);
        if (cfg.poll_us < 0 || cfg.poll_us > 10'000) throw std::invalid_argument("expected 0..10000");
      }
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

  std::vector<Results> results(static_cast<std::size_t>(cfg.threads));
  std::vector<std::unique_ptr<ClientLoop>> loops;
  for (int t = 0; t < cfg.threads; ++t) {
    loops.push_back(std::make_unique<ClientLoop>(run, results[static_cast<std::size_t>(t)]));
  }
  for (int u = 0; u < cfg.streams; ++u) {
    // Spread the first requests evenly over the ramp so the token phases are spread too.
    const auto offset = std::chrono::duration_cast<Clock::duration>(
        std::chrono::duration<double>(cfg.ramp_s * u / cfg.streams));
    loops[static_cast<std::size_t>(u % cfg.threads)]->add_user(run.start + offset);
  }
  std::vector<std::thread> threads;
  for (auto& loop : loops) threads.emplace_back([&loop] { loop->run(); });
  for (auto& t : threads) t.join();
  loops.clear();

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
