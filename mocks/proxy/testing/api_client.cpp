#include "mocks/proxy/testing/api_client.hpp"

#include <chrono>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/json/parse.hpp>

namespace lab::mocks::proxy::testing {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using tcp = asio::ip::tcp;

namespace {

constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
constexpr std::chrono::seconds kTimeout{10};

asio::awaitable<void> exchange(std::uint16_t port, bhttp::verb method, std::string target,
                               std::string body, std::string user_agent, ApiResponse& out) {
  beast::tcp_stream stream(co_await asio::this_coro::executor);
  stream.expires_after(kTimeout);
  auto [cec] = co_await stream.async_connect(
      tcp::endpoint(asio::ip::make_address("127.0.0.1"), port), kNoThrow);
  if (cec) co_return;
  bhttp::request<bhttp::string_body> req{method, target, 11};
  req.set(bhttp::field::host, "127.0.0.1");
  req.set(bhttp::field::user_agent, user_agent);
  if (!body.empty()) req.set(bhttp::field::content_type, "application/json");
  req.body() = std::move(body);
  req.prepare_payload();
  auto [wec, wn] = co_await bhttp::async_write(stream, req, kNoThrow);
  if (wec) co_return;
  beast::flat_buffer buffer;
  bhttp::response<bhttp::string_body> res;
  auto [rec, rn] = co_await bhttp::async_read(stream, buffer, res, kNoThrow);
  if (rec) co_return;
  out.status = static_cast<int>(res.result_int());
  out.body = res.body();
  out.content_type = std::string(res[bhttp::field::content_type]);
  boost::system::error_code ec;
  out.json = boost::json::parse(out.body, ec);
  if (ec) out.json = nullptr;
}

}  // namespace

ApiResponse api_call(std::uint16_t port, bhttp::verb method, std::string_view target,
                     std::string_view body, std::string_view user_agent) {
  ApiResponse out;
  asio::io_context ctx;
  asio::co_spawn(ctx,
                 exchange(port, method, std::string(target), std::string(body),
                          std::string(user_agent), out),
                 asio::detached);
  ctx.run();
  return out;
}

std::uint16_t listen_port(const boost::json::value& proxy) {
  if (!proxy.is_object()) return 0;
  const auto* listen = proxy.as_object().if_contains("listen");
  if (listen == nullptr || !listen->is_string()) return 0;
  const std::string_view s = listen->get_string();
  const std::size_t colon = s.rfind(':');
  if (colon == std::string_view::npos) return 0;
  return static_cast<std::uint16_t>(std::stoi(std::string(s.substr(colon + 1))));
}

}  // namespace lab::mocks::proxy::testing
