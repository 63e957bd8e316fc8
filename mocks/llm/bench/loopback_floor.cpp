// lab_mock_llm_loopback_floor: what one small TCP send over loopback costs the sending core on
// this machine, with nothing else around it. The mock LLM makes one such send per token, so
// this is the floor under its tokens-per-second-per-core figure (on loopback the sender's core
// also runs the kernel's receive path for the client).
//
//   lab_mock_llm_loopback_floor CONNECTIONS SENDS_PER_SECOND [SECONDS [READER_POLL_US]]
//
// The sender (core 0) sends 220-byte messages round-robin over CONNECTIONS sockets at the
// given rate, in bursts every 250 µs (the mock's pacing quantum), twice: once with one
// sendmsg() per message, once with each burst handed to the kernel as one http::SendBatch
// (one io_uring_enter per burst where the kernel has io_uring — what the mock does). A reader
// thread on core 1 drains them with epoll, waiting in epoll_wait (READER_POLL_US 0, the
// default) or, like lab_mock_llm_bench --poll-us, sleeping READER_POLL_US between non-blocking
// polls (then the sends never have to wake it, and the figure is the send path alone).
//
// It also reports how often the sender's 250 µs sleep lasted more than 2 ms: a pinned
// real-time thread that asked to wake up and did not run, so such stalls are the machine's
// (hypervisor, neighbours), and they bound any lateness figure measured at the time.

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "common/http/send_batch.hpp"

namespace {

void pin(int cpu) {
  if (cpu >= static_cast<int>(std::thread::hardware_concurrency())) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

double thread_cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_THREAD, &usage);
  return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s CONNECTIONS SENDS_PER_SECOND [SECONDS [READER_POLL_US]]\n", argv[0]);
    return 2;
  }
  const int connections = std::atoi(argv[1]);
  const double rate = std::atof(argv[2]);
  const double seconds = argc > 3 ? std::atof(argv[3]) : 3.0;
  const int poll_us = argc > 4 ? std::atoi(argv[4]) : 0;
  if (connections < 1 || rate <= 0 || seconds <= 0 || poll_us < 0) {
    std::fprintf(stderr, "%s: expected CONNECTIONS >= 1, SENDS_PER_SECOND > 0, SECONDS > 0, READER_POLL_US >= 0\n",
                 argv[0]);
    return 2;
  }

  const int listener = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || listen(listener, 4096) != 0 ||
      getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    std::perror("listen");
    return 1;
  }
  std::vector<int> readers(static_cast<std::size_t>(connections));
  std::vector<int> writers(static_cast<std::size_t>(connections));
  for (int i = 0; i < connections; ++i) {
    readers[i] = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(readers[i], reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      std::perror("connect");
      return 1;
    }
    writers[i] = accept(listener, nullptr, nullptr);
    const int one = 1;
    setsockopt(writers[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  }

  std::atomic<bool> stop{false};
  std::thread reader([&] {
    pin(1);
    const int ep = epoll_create1(0);
    for (int fd : readers) {
      epoll_event e{};
      e.events = EPOLLIN;
      e.data.fd = fd;
      epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
    }
    std::array<epoll_event, 256> events{};
    std::vector<char> buffer(1 << 16);
    while (!stop.load()) {
      if (poll_us > 0) std::this_thread::sleep_for(std::chrono::microseconds(poll_us));
      const int n = epoll_wait(ep, events.data(), static_cast<int>(events.size()), poll_us > 0 ? 0 : 50);
      for (int j = 0; j < n; ++j) {
        if (read(events[j].data.fd, buffer.data(), buffer.size()) < 0) std::perror("read");
      }
    }
    close(ep);
  });

  pin(0);
  const std::string message(220, 'x');  // about one OpenAI chunk
  struct Pass {
    const char* name;
    double cpu_seconds = 0;
    long sent = 0;
    long stalls = 0;
    std::chrono::steady_clock::duration max_gap{};
  };
  struct Ignore final : lab::http::SendBatch::Sink {
    void on_sent(std::string_view, std::size_t, const boost::system::error_code& ec) noexcept override {
      if (ec) std::fprintf(stderr, "send: %s\n", ec.message().c_str());
    }
  } ignore;
  const auto measure = [&](Pass& pass, lab::http::SendBatch* batch) {
    const auto start = std::chrono::steady_clock::now();
    const double cpu_start = thread_cpu_seconds();
    for (;;) {
      const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (elapsed >= seconds) break;
      const long due = static_cast<long>(elapsed * rate);
      for (; pass.sent < due; ++pass.sent) {
        const int fd = writers[static_cast<std::size_t>(pass.sent % connections)];
        if (batch != nullptr) {
          batch->add(fd, {message}, ignore);
        } else if (send(fd, message.data(), message.size(), MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
          std::perror("send");
          std::exit(1);
        }
      }
      if (batch != nullptr) batch->submit();
      const auto before = std::chrono::steady_clock::now();
      std::this_thread::sleep_for(std::chrono::microseconds(250));
      const auto slept = std::chrono::steady_clock::now() - before;
      pass.max_gap = std::max(pass.max_gap, slept);
      if (slept > std::chrono::milliseconds(2)) ++pass.stalls;
    }
    pass.cpu_seconds = thread_cpu_seconds() - cpu_start;
  };
  lab::http::SendBatch batch;
  Pass one_by_one{"one sendmsg() per send"};
  Pass batched{batch.uses_io_uring() ? "a SendBatch per burst (io_uring)" : "a SendBatch per burst (no io_uring here: sendmsg)"};
  measure(one_by_one, nullptr);
  measure(batched, &batch);
  stop.store(true);
  reader.join();
  std::printf("loopback floor: %d connections, reader %s, bursts every 250 us; 250 us sleeps that took > 2 ms: %ld "
              "(longest %.1f ms)\n",
              connections, poll_us > 0 ? ("polling every " + std::to_string(poll_us) + " us").c_str() : "waiting in epoll",
              one_by_one.stalls + batched.stalls,
              std::chrono::duration<double, std::milli>(std::max(one_by_one.max_gap, batched.max_gap)).count());
  for (const Pass* pass : {&one_by_one, &batched}) {
    std::printf("  %-50s %.0f sends/s, sender core busy %3.0f%% = %.2f us per send (at most %.0f sends/s per core)\n",
                pass->name, static_cast<double>(pass->sent) / seconds, 100.0 * pass->cpu_seconds / seconds,
                1e6 * pass->cpu_seconds / static_cast<double>(pass->sent),
                static_cast<double>(pass->sent) / pass->cpu_seconds);
  }
  std::printf("  batched / one by one: %.2f of the core time per send\n",
              (batched.cpu_seconds / static_cast<double>(batched.sent)) /
                  (one_by_one.cpu_seconds / static_cast<double>(one_by_one.sent)));
  return 0;
}
