#pragma once
// Non-blocking sends to many sockets, handed to the kernel together.
//
// A thread that paces thousands of streams sends a few hundred bytes on each of dozens of
// sockets at every tick. One sendmsg() per socket costs a system call each, and on the VMs this
// project runs on (page-table isolation without PCID) every kernel entry and exit also flushes
// the TLB. A SendBatch gathers the sends of one tick and submits them with one io_uring_enter;
// each is still a non-blocking send (MSG_DONTWAIT: a full socket answers at once with what it
// took, never waits) and completes inside that call, so submit() returns with every result.
// Where io_uring is not available (an old kernel, a seccomp filter, io_uring_disabled, or
// AGENTLAB_IO_URING=0 in the environment) submit() sends them one by one with sendmsg(); the
// results are the same.
//
// The bytes are copied into the batch when queued, so the caller's buffer is free at once.
//
// Not thread-safe: one batch per thread. Every socket named in a batch must stay open until
// submit() returns.

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <boost/system/error_code.hpp>

namespace lab::http {

class SendBatch {
 public:
  /// Told, from submit(), what became of one queued send.
  class Sink {
   public:
    /// `bytes`: what was queued (valid only during the call); `sent`: how many of them the
    /// socket took (all, some, or 0 when its buffer was full); `ec`: set when the socket
    /// failed (the peer is gone); then `sent` is 0.
    virtual void on_sent(std::string_view bytes, std::size_t sent,
                         const boost::system::error_code& ec) noexcept = 0;

   protected:
    ~Sink() = default;
  };

  /// How submit() reaches the kernel.
  enum class Mode {
    kAuto,     ///< io_uring when it can be set up (and AGENTLAB_IO_URING is not 0), else sendmsg
    kSendmsg,  ///< one sendmsg() per send
  };

  explicit SendBatch(Mode mode = Mode::kAuto);
  ~SendBatch();
  SendBatch(const SendBatch&) = delete;
  SendBatch& operator=(const SendBatch&) = delete;

  /// Queues `parts`, back to back, as one send to `fd`; `sink` hears the result from the next
  /// submit(). A socket should have at most one send in a batch (two would be submitted
  /// without an order between them).
  void add(int fd, std::initializer_list<std::string_view> parts, Sink& sink);

  /// Sends everything queued, then tells each sink in the order they were queued. A sink may
  /// queue again (that goes out with the next submit()). Returns the number of sends.
  std::size_t submit();

  std::size_t size() const { return queued_.size(); }
  bool empty() const { return queued_.empty(); }
  /// True when sends go through io_uring.
  bool uses_io_uring() const { return ring_ != nullptr; }
  /// Sends submitted and system calls made for them so far (sends per call is the batching).
  std::uint64_t sends() const { return sends_; }
  std::uint64_t calls() const { return calls_; }

 private:
  struct Ring;
  struct Send {
    int fd;
    std::size_t offset;  ///< into the arena
    std::size_t length;
    Sink* sink;
    long result;         ///< bytes sent, or -errno
  };
  void send_each(std::vector<Send>& sends, const std::string& arena);
  void send_ring(std::vector<Send>& sends, const std::string& arena);

  std::unique_ptr<Ring> ring_;
  std::vector<Send> queued_;
  std::string arena_;  ///< the queued bytes, back to back
  // Being submitted (swapped with the queue, so sinks can queue during submit()).
  std::vector<Send> submitting_;
  std::string submitting_arena_;
  std::uint64_t sends_ = 0;
  std::uint64_t calls_ = 0;
};

}  // namespace lab::http
