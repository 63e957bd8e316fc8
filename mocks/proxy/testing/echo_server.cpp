#include "mocks/proxy/testing/echo_server.hpp"

#include <array>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

namespace lab::mocks::proxy::testing {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t kReadBytes = 16 * 1024;
}  // namespace

struct EchoServer::Impl {
  asio::io_context ctx{1};
  tcp::acceptor acceptor{ctx};
  std::thread thread;
  std::uint16_t port = 0;
  std::atomic<std::uint64_t> received{0};
  std::atomic<std::uint64_t> accepted{0};
  mutable std::mutex mutex;
  mutable std::condition_variable cv;
  std::uint64_t ended = 0;  ///< guarded by mutex

  static asio::awaitable<void> echo(Impl* self, tcp::socket socket) {
    std::array<char, kReadBytes> buf{};
    for (;;) {
      auto [ec, n] = co_await socket.async_read_some(asio::buffer(buf), kNoThrow);
      if (ec) break;
      self->received.fetch_add(n);
      auto [wec, wn] = co_await asio::async_write(socket, asio::buffer(buf.data(), n), kNoThrow);
      if (wec) break;
    }
    boost::system::error_code ignored;
    socket.shutdown(tcp::socket::shutdown_both, ignored);
    socket.close(ignored);
    {
      std::lock_guard lock(self->mutex);
      ++self->ended;
    }
    self->cv.notify_all();
  }

  static asio::awaitable<void> accept_loop(Impl* self) {
    for (;;) {
      auto [ec, socket] = co_await self->acceptor.async_accept(kNoThrow);
      if (ec) co_return;
      self->accepted.fetch_add(1);
      boost::system::error_code ignored;
      socket.set_option(tcp::no_delay(true), ignored);
      asio::co_spawn(self->ctx, echo(self, std::move(socket)), asio::detached);
    }
  }
};

EchoServer::EchoServer() : impl_(std::make_unique<Impl>()) {
  const tcp::endpoint endpoint(asio::ip::make_address("127.0.0.1"), 0);
  impl_->acceptor.open(endpoint.protocol());
  impl_->acceptor.set_option(asio::socket_base::reuse_address(true));
  impl_->acceptor.bind(endpoint);
  impl_->acceptor.listen();
  impl_->port = impl_->acceptor.local_endpoint().port();
  asio::co_spawn(impl_->ctx, Impl::accept_loop(impl_.get()), asio::detached);
  impl_->thread = std::thread([this] { impl_->ctx.run(); });
}

EchoServer::~EchoServer() {
  impl_->ctx.stop();
  impl_->thread.join();
}

std::uint16_t EchoServer::port() const { return impl_->port; }

std::string EchoServer::address() const { return "127.0.0.1:" + std::to_string(port()); }

std::uint64_t EchoServer::bytes_received() const { return impl_->received.load(); }

std::uint64_t EchoServer::connections_accepted() const { return impl_->accepted.load(); }

bool EchoServer::wait_ended(std::uint64_t n, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(impl_->mutex);
  return impl_->cv.wait_for(lock, timeout, [&] { return impl_->ended >= n; });
}

}  // namespace lab::mocks::proxy::testing
