#pragma once
// A TCP echo server for the chaos proxy's tests: on 127.0.0.1, OS-chosen port, its own thread.
// Writes back whatever it reads; on EOF from the client it closes its side. Counts bytes and
// ended connections so tests can wait on them instead of sleeping.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

namespace lab::mocks::proxy::testing {

class EchoServer {
 public:
  EchoServer();   ///< binds and starts serving
  ~EchoServer();  ///< stops and joins
  EchoServer(const EchoServer&) = delete;
  EchoServer& operator=(const EchoServer&) = delete;

  std::uint16_t port() const;
  /// "127.0.0.1:PORT", as a proxy's upstream.
  std::string address() const;

  std::uint64_t bytes_received() const;
  std::uint64_t connections_accepted() const;
  /// Waits until at least `n` connections have ended; false if `timeout` passed first.
  bool wait_ended(std::uint64_t n, std::chrono::milliseconds timeout) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lab::mocks::proxy::testing
