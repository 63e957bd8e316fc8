#pragma once
// Many non-blocking socket calls (send, recv) made with as few system calls as the kernel allows.
//
// A thread that serves or reads thousands of streams makes a small call on each of dozens of
// sockets at every tick. One system call per socket pays the kernel entry and exit each time
// (on the VMs this project runs on, with page-table isolation and no PCID, each also flushes
// the TLB). SocketCalls::run() hands a whole list to the kernel with one io_uring_enter per
// kQueueDepth calls; each is still non-blocking (MSG_DONTWAIT: a full or empty socket answers
// at once, never waits) and completes inside that call, so run() returns with every result.
// Where io_uring cannot be set up (an old kernel, a seccomp filter, kernel.io_uring_disabled,
// or AGENTLAB_IO_URING=0 in the environment) run() makes one send()/recv() per call; the
// results are the same.
//
// Not thread-safe: use one from one thread at a time.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

namespace lab::http {

/// One non-blocking call on a socket.
struct SocketCall {
  enum class Kind { kSend, kRecv };
  int fd = -1;
  Kind kind = Kind::kSend;
  char* data = nullptr;  ///< what to send, or where to receive
  std::size_t length = 0;
  long result = 0;       ///< after run(): bytes sent or received (0 at EOF), or -errno (-EAGAIN: nothing now)
};

class SocketCalls {
 public:
  /// Calls handed to the kernel per io_uring_enter.
  static constexpr unsigned kQueueDepth = 256;

  enum class Mode {
    kAuto,      ///< io_uring when it can be set up (and AGENTLAB_IO_URING is not 0)
    kOneByOne,  ///< one send()/recv() per call
  };

  explicit SocketCalls(Mode mode = Mode::kAuto);
  ~SocketCalls();
  SocketCalls(const SocketCalls&) = delete;
  SocketCalls& operator=(const SocketCalls&) = delete;

  /// Makes every call and sets its result. Calls on different sockets have no order between
  /// them (give one socket at most one call per run()).
  void run(std::span<SocketCall> calls);

  /// True when calls go through io_uring.
  bool uses_io_uring() const { return ring_ != nullptr; }
  /// Socket calls made so far and the system calls that made them (calls per system call is
  /// the batching).
  std::uint64_t calls() const { return calls_; }
  std::uint64_t system_calls() const { return system_calls_; }

 private:
  struct Ring;
  void run_one_by_one(std::span<SocketCall> calls);
  void run_ring(std::span<SocketCall> calls);

  std::unique_ptr<Ring> ring_;
  std::uint64_t calls_ = 0;
  std::uint64_t system_calls_ = 0;
};

}  // namespace lab::http
