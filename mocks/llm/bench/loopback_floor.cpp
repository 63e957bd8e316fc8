// lab_mock_llm_loopback_floor: what one small TCP send over loopback costs the sending core on
// this machine, with nothing else around it. The mock LLM writes one such send per token, so
// this is the floor under its tokens-per-second-per-core figure (on loopback the sender's core
// also runs the kernel's receive path for the client).
//
//   lab_mock_llm_loopback_floor CONNECTIONS SENDS_PER_SECOND [SECONDS [READER_POLL_US]]
//
// The sender (core 0) sends 220-byte messages round-robin over CONNECTIONS sockets at the
// given rate, in bursts every 250 µs; a reader thread on core 1 drains them with epoll,
// waiting in epoll_wait (READER_POLL_US 0, the default) or, like lab_mock_llm_bench
// --poll-us, sleeping READER_POLL_US between non-blocking polls (then the sends never have to
// wake it, and the figure is the send path alone).
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
    std::fprintf(stderr, "usage: %s CONNECTIONS SENDS_PER_SECOND [SECONDS]\n", argv[0]);
    return 2;
  }
  const int connections = std::atoi(argv[1]);
  const double rate = std::atof(argv[2]);
  const double seconds = argc > 3 ? std::atof(argv[3]) : 3.0;
  const int poll_us = argc > 4 ? std::atoi(argv[4]) : 0;
  if (connections < 1 || rate <= 0 || seconds <= 0 || poll_us < 0) return 2;

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
  const auto start = std::chrono::steady_clock::now();
  const double cpu_start = thread_cpu_seconds();
  long sent = 0;
  std::chrono::steady_clock::duration max_gap{};
  long stalls = 0;
  for (;;) {
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (elapsed >= seconds) break;
    const long due = static_cast<long>(elapsed * rate);
    for (; sent < due; ++sent) {
      if (send(writers[static_cast<std::size_t>(sent % connections)], message.data(), message.size(), 0) < 0) {
        std::perror("send");
        return 1;
      }
    }
    const auto before = std::chrono::steady_clock::now();
    std::this_thread::sleep_for(std::chrono::microseconds(250));
    const auto slept = std::chrono::steady_clock::now() - before;
    max_gap = std::max(max_gap, slept);
    if (slept > std::chrono::milliseconds(2)) ++stalls;
  }
  const double cpu = thread_cpu_seconds() - cpu_start;
  stop.store(true);
  reader.join();
  std::printf("loopback floor: %d connections, %.0f sends/s, reader %s, sender core busy %.0f%% = %.2f us per send "
              "(at most %.0f sends/s per core with nothing else to do); 250 us sleeps that "
              "took > 2 ms: %ld (longest %.1f ms)\n",
              connections, static_cast<double>(sent) / seconds,
              poll_us > 0 ? ("polling every " + std::to_string(poll_us) + " us").c_str() : "waiting in epoll",
              100.0 * cpu / seconds, 1e6 * cpu / static_cast<double>(sent),
              static_cast<double>(sent) / cpu, stalls,
              std::chrono::duration<double, std::milli>(max_gap).count());
  return 0;
}
