#include "common/http/send_batch.hpp"

#include <liburing.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <utility>

namespace lab::http {

namespace {

/// Submission queue size: a longer batch goes in several calls of this many sends.
constexpr unsigned kRingEntries = 256;
constexpr int kSendFlags = MSG_DONTWAIT | MSG_NOSIGNAL;

bool io_uring_allowed() {
  const char* env = std::getenv("AGENTLAB_IO_URING");
  return env == nullptr || std::strcmp(env, "0") != 0;
}

[[noreturn]] void ring_failed(const char* what, int error) {
  std::fprintf(stderr, "agentlab http: SendBatch: %s: %s\n", what, std::strerror(error));
  std::abort();
}

}  // namespace

struct SendBatch::Ring {
  io_uring ring{};
  ~Ring() { io_uring_queue_exit(&ring); }
};

SendBatch::SendBatch(Mode mode) {
  if (mode != Mode::kAuto || !io_uring_allowed()) return;
  auto ring = std::make_unique<Ring>();
  // SUBMIT_ALL: one bad socket does not stop the sends behind it. (Not SINGLE_ISSUER: a batch
  // may be made on one thread and used on another.) A kernel that does not know these flags
  // gets a plain ring.
  const unsigned flags = IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN;
  int rc = io_uring_queue_init(kRingEntries, &ring->ring, flags);
  if (rc == -EINVAL) rc = io_uring_queue_init(kRingEntries, &ring->ring, 0);
  if (rc < 0) return;  // not allowed here: sendmsg
  ring_ = std::move(ring);
}

SendBatch::~SendBatch() = default;

void SendBatch::add(int fd, std::initializer_list<std::string_view> parts, Sink& sink) {
  const std::size_t offset = arena_.size();
  for (std::string_view part : parts) arena_.append(part);
  queued_.push_back(Send{fd, offset, arena_.size() - offset, &sink, 0});
}

std::size_t SendBatch::submit() {
  if (queued_.empty()) return 0;
  // Take the queue, so sinks can fill it again while they are told.
  std::swap(queued_, submitting_);
  std::swap(arena_, submitting_arena_);
  if (ring_ != nullptr) {
    send_ring(submitting_, submitting_arena_);
  } else {
    send_each(submitting_, submitting_arena_);
  }
  const std::size_t count = submitting_.size();
  sends_ += count;
  for (const Send& send : submitting_) {
    const std::string_view bytes(submitting_arena_.data() + send.offset, send.length);
    if (send.result >= 0) {
      send.sink->on_sent(bytes, static_cast<std::size_t>(send.result), {});
    } else if (send.result == -EAGAIN || send.result == -EWOULDBLOCK) {
      send.sink->on_sent(bytes, 0, {});
    } else {
      send.sink->on_sent(bytes, 0, {static_cast<int>(-send.result), boost::system::system_category()});
    }
  }
  submitting_.clear();
  submitting_arena_.clear();
  return count;
}

void SendBatch::send_each(std::vector<Send>& sends, const std::string& arena) {
  for (Send& send : sends) {
    ++calls_;
    for (;;) {
      const ssize_t sent = ::send(send.fd, arena.data() + send.offset, send.length, kSendFlags);
      if (sent < 0 && errno == EINTR) continue;
      send.result = sent >= 0 ? static_cast<long>(sent) : -static_cast<long>(errno);
      break;
    }
  }
}

void SendBatch::send_ring(std::vector<Send>& sends, const std::string& arena) {
  io_uring* ring = &ring_->ring;
  for (std::size_t begin = 0; begin < sends.size(); begin += kRingEntries) {
    const std::size_t end = std::min(sends.size(), begin + kRingEntries);
    for (std::size_t i = begin; i < end; ++i) {
      io_uring_sqe* sqe = io_uring_get_sqe(ring);
      if (sqe == nullptr) ring_failed("no free submission entry", EBUSY);
      io_uring_prep_send(sqe, sends[i].fd, arena.data() + sends[i].offset, sends[i].length, kSendFlags);
      io_uring_sqe_set_data64(sqe, i);
    }
    // MSG_DONTWAIT sends complete inside the submitting call, so this waits for nothing; the
    // loop covers a kernel that submits fewer than asked (no SUBMIT_ALL) or an interrupt.
    std::size_t pending = end - begin;
    while (pending > 0) {
      ++calls_;
      const int rc = io_uring_submit_and_wait(ring, static_cast<unsigned>(pending));
      if (rc < 0 && rc != -EINTR && rc != -EAGAIN) ring_failed("io_uring_submit_and_wait", -rc);
      io_uring_cqe* cqe = nullptr;
      unsigned head = 0;
      unsigned seen = 0;
      io_uring_for_each_cqe(ring, head, cqe) {
        sends[io_uring_cqe_get_data64(cqe)].result = cqe->res;
        ++seen;
      }
      io_uring_cq_advance(ring, seen);
      pending -= seen;
    }
  }
}

}  // namespace lab::http
