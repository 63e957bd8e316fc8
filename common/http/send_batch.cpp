#include "common/http/send_batch.hpp"

#include <cerrno>
#include <utility>

namespace lab::http {

void SendBatch::add(int fd, std::initializer_list<std::string_view> parts, Sink& sink) {
  const std::size_t offset = arena_.size();
  for (std::string_view part : parts) arena_.append(part);
  queued_.push_back(Send{fd, offset, arena_.size() - offset, &sink});
}

std::size_t SendBatch::submit() {
  if (queued_.empty()) return 0;
  // Take the queue, so sinks can fill it again while they are told.
  std::swap(queued_, submitting_);
  std::swap(arena_, submitting_arena_);
  socket_calls_.clear();
  for (const Send& send : submitting_) {
    socket_calls_.push_back(
        {send.fd, SocketCall::Kind::kSend, submitting_arena_.data() + send.offset, send.length, 0});
  }
  calls_.run(socket_calls_);
  const std::size_t count = submitting_.size();
  for (std::size_t i = 0; i < count; ++i) {
    const Send& send = submitting_[i];
    const long result = socket_calls_[i].result;
    const std::string_view bytes(submitting_arena_.data() + send.offset, send.length);
    if (result >= 0) {
      send.sink->on_sent(bytes, static_cast<std::size_t>(result), {});
    } else if (result == -EAGAIN || result == -EWOULDBLOCK) {
      send.sink->on_sent(bytes, 0, {});
    } else {
      send.sink->on_sent(bytes, 0, {static_cast<int>(-result), boost::system::system_category()});
    }
  }
  submitting_.clear();
  submitting_arena_.clear();
  return count;
}

}  // namespace lab::http
