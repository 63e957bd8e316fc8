#include "common/http/socket_calls.hpp"

#include <liburing.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <utility>

namespace lab::http {

namespace {

constexpr int kFlags = MSG_DONTWAIT | MSG_NOSIGNAL;

bool io_uring_allowed() {
  const char* env = std::getenv("AGENTLAB_IO_URING");
  return env == nullptr || std::strcmp(env, "0") != 0;
}

[[noreturn]] void ring_failed(const char* what, int error) {
  std::fprintf(stderr, "agentlab http: SocketCalls: %s: %s\n", what, std::strerror(error));
  std::abort();
}

}  // namespace

struct SocketCalls::Ring {
  io_uring ring{};
  ~Ring() { io_uring_queue_exit(&ring); }
};

SocketCalls::SocketCalls(Mode mode) {
  if (mode != Mode::kAuto || !io_uring_allowed()) return;
  auto ring = std::make_unique<Ring>();
  // SUBMIT_ALL: one bad socket does not stop the calls behind it. (Not SINGLE_ISSUER: an
  // object may be made on one thread and used on another.) A kernel that does not know these
  // flags gets a plain ring.
  const unsigned flags = IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN;
  int rc = io_uring_queue_init(kQueueDepth, &ring->ring, flags);
  if (rc == -EINVAL) rc = io_uring_queue_init(kQueueDepth, &ring->ring, 0);
  if (rc < 0) return;  // not allowed here: one by one
  ring_ = std::move(ring);
}

SocketCalls::~SocketCalls() = default;

void SocketCalls::run(std::span<SocketCall> calls) {
  if (calls.empty()) return;
  calls_ += calls.size();
  if (ring_ != nullptr) {
    run_ring(calls);
  } else {
    run_one_by_one(calls);
  }
}

void SocketCalls::run_one_by_one(std::span<SocketCall> calls) {
  for (SocketCall& call : calls) {
    ++system_calls_;
    for (;;) {
      const ssize_t n = call.kind == SocketCall::Kind::kSend ? ::send(call.fd, call.data, call.length, kFlags)
                                                             : ::recv(call.fd, call.data, call.length, kFlags);
      if (n < 0 && errno == EINTR) continue;
      call.result = n >= 0 ? static_cast<long>(n) : -static_cast<long>(errno);
      break;
    }
  }
}

void SocketCalls::run_ring(std::span<SocketCall> calls) {
  io_uring* ring = &ring_->ring;
  for (std::size_t begin = 0; begin < calls.size(); begin += kQueueDepth) {
    const std::size_t end = std::min(calls.size(), begin + kQueueDepth);
    for (std::size_t i = begin; i < end; ++i) {
      io_uring_sqe* sqe = io_uring_get_sqe(ring);
      if (sqe == nullptr) ring_failed("no free submission entry", EBUSY);
      SocketCall& call = calls[i];
      if (call.kind == SocketCall::Kind::kSend) {
        io_uring_prep_send(sqe, call.fd, call.data, call.length, kFlags);
      } else {
        io_uring_prep_recv(sqe, call.fd, call.data, call.length, kFlags);
      }
      io_uring_sqe_set_data64(sqe, i);
    }
    // MSG_DONTWAIT calls complete inside the submitting call, so this waits for nothing; the
    // loop covers a kernel that submits fewer than asked (no SUBMIT_ALL) or an interrupt.
    std::size_t pending = end - begin;
    while (pending > 0) {
      ++system_calls_;
      const int rc = io_uring_submit_and_wait(ring, static_cast<unsigned>(pending));
      if (rc < 0 && rc != -EINTR && rc != -EAGAIN) ring_failed("io_uring_submit_and_wait", -rc);
      io_uring_cqe* cqe = nullptr;
      unsigned head = 0;
      unsigned seen = 0;
      io_uring_for_each_cqe(ring, head, cqe) {
        calls[io_uring_cqe_get_data64(cqe)].result = cqe->res;
        ++seen;
      }
      io_uring_cq_advance(ring, seen);
      pending -= seen;
    }
  }
}

}  // namespace lab::http
