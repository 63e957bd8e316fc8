#pragma once
// A blocking TCP client for the chaos proxy's tests (plain POSIX sockets, so reads have real
// timeouts and a reset shows up as ECONNRESET).

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace lab::mocks::proxy::testing {

struct ReadResult {
  std::string data;
  bool eof = false;        ///< the peer closed cleanly
  int error = 0;           ///< errno of a failed recv (ECONNRESET, …)
  bool timed_out = false;  ///< the time ran out first
  std::size_t reads = 0;   ///< recv calls that returned bytes
  std::chrono::steady_clock::duration elapsed{};
};

class TcpClient {
 public:
  TcpClient() = default;
  ~TcpClient();
  TcpClient(const TcpClient&) = delete;
  TcpClient& operator=(const TcpClient&) = delete;

  /// Connects to 127.0.0.1:port. Returns 0 or the errno (ECONNREFUSED when nothing listens).
  int connect(std::uint16_t port);
  bool send(std::string_view data);
  /// Reads until `want` bytes arrived, EOF, an error or `timeout`.
  ReadResult read(std::size_t want, std::chrono::milliseconds timeout);
  /// Reads until EOF, an error or `timeout`.
  ReadResult read_to_end(std::chrono::milliseconds timeout);
  void shutdown_write();
  void close();

 private:
  int fd_ = -1;
};

/// Sends `request` on a fresh connection through `port` and returns the time until all of it
/// came back (the echo server answers); -1 ms when it did not within `timeout`.
std::chrono::milliseconds echo_round_trip(std::uint16_t port, std::string_view request,
                                          std::chrono::milliseconds timeout);

}  // namespace lab::mocks::proxy::testing
