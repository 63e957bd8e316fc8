#include "mocks/proxy/testing/tcp_client.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace lab::mocks::proxy::testing {

namespace {

using SteadyClock = std::chrono::steady_clock;

ReadResult read_until(int fd, std::size_t want, std::chrono::milliseconds timeout) {
  ReadResult r;
  const auto start = SteadyClock::now();
  const auto deadline = start + timeout;
  char buf[64 * 1024];
  while (r.data.size() < want) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now());
    if (left.count() <= 0) {
      r.timed_out = true;
      break;
    }
    pollfd p{fd, POLLIN, 0};
    const int ready = ::poll(&p, 1, static_cast<int>(left.count()));
    if (ready < 0 && errno == EINTR) continue;
    if (ready == 0) {
      r.timed_out = true;
      break;
    }
    const std::size_t room = std::min(sizeof(buf), want - r.data.size());
    const ssize_t n = ::recv(fd, buf, room, 0);
    if (n > 0) {
      r.data.append(buf, static_cast<std::size_t>(n));
      ++r.reads;
    } else if (n == 0) {
      r.eof = true;
      break;
    } else if (errno != EINTR && errno != EAGAIN) {
      r.error = errno;
      break;
    }
  }
  r.elapsed = SteadyClock::now() - start;
  return r;
}

}  // namespace

TcpClient::~TcpClient() { close(); }

int TcpClient::connect(std::uint16_t port) {
  close();
  fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd_ < 0) return errno;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
    const int error = errno;
    close();
    return error;
  }
  const int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return 0;
}

bool TcpClient::send(std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

ReadResult TcpClient::read(std::size_t want, std::chrono::milliseconds timeout) {
  return read_until(fd_, want, timeout);
}

ReadResult TcpClient::read_to_end(std::chrono::milliseconds timeout) {
  return read_until(fd_, static_cast<std::size_t>(-1), timeout);
}

void TcpClient::shutdown_write() { ::shutdown(fd_, SHUT_WR); }

void TcpClient::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

std::chrono::milliseconds echo_round_trip(std::uint16_t port, std::string_view request,
                                          std::chrono::milliseconds timeout) {
  TcpClient client;
  if (client.connect(port) != 0) return std::chrono::milliseconds(-1);
  const auto start = SteadyClock::now();
  if (!client.send(request)) return std::chrono::milliseconds(-1);
  const ReadResult r = client.read(request.size(), timeout);
  if (r.data != request) return std::chrono::milliseconds(-1);
  return std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - start);
}

}  // namespace lab::mocks::proxy::testing
