#pragma once
// Non-blocking sends to many sockets, handed to the kernel together.
//
// A streaming server that paces thousands of streams from one timer sends a few hundred bytes
// on each of dozens of sockets at every tick. A SendBatch gathers the sends of one tick and
// makes them with SocketCalls (one io_uring_enter for the lot where the kernel allows it,
// socket_calls.hpp), then tells each sender what became of its bytes.
//
// The bytes are copied into the batch when queued, so the caller's buffer is free at once.
//
// Not thread-safe: one batch per thread. Every socket named in a batch must stay open until
// submit() returns.

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include <boost/system/error_code.hpp>

#include "common/http/socket_calls.hpp"

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

  explicit SendBatch(SocketCalls::Mode mode = SocketCalls::Mode::kAuto) : calls_(mode) {}

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
  bool uses_io_uring() const { return calls_.uses_io_uring(); }
  /// Sends submitted and system calls made for them so far (sends per call is the batching).
  std::uint64_t sends() const { return calls_.calls(); }
  std::uint64_t calls() const { return calls_.system_calls(); }

 private:
  struct Send {
    int fd;
    std::size_t offset;  ///< into the arena
    std::size_t length;
    Sink* sink;
  };

  SocketCalls calls_;
  std::vector<Send> queued_;
  std::string arena_;  ///< the queued bytes, back to back
  // Being submitted (swapped with the queue, so sinks can queue during submit()).
  std::vector<Send> submitting_;
  std::string submitting_arena_;
  std::vector<SocketCall> socket_calls_;
};

}  // namespace lab::http
