#include "mocks/llm/testing/http_fetch.hpp"

#include <algorithm>
#include <cctype>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

namespace lab::mocks::llm::testing {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;

std::string FetchResult::header(std::string_view name) const {
  std::string key(name);
  std::transform(key.begin(), key.end(), key.begin(), [](unsigned char c) { return std::tolower(c); });
  const auto it = headers.find(key);
  return it == headers.end() ? std::string() : it->second;
}

FetchResult fetch(std::uint16_t port, bhttp::verb method, std::string_view target,
                  std::string_view body, const FetchOptions& options) {
  FetchResult result;
  const auto start = std::chrono::steady_clock::now();
  asio::io_context ctx;
  beast::tcp_stream stream(ctx);
  stream.expires_after(options.timeout);
  stream.connect(asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), port), result.error);
  if (result.error) return result;

  bhttp::request<bhttp::string_body> req{method, std::string(target), 11};
  req.set(bhttp::field::host, "127.0.0.1");
  if (!body.empty()) req.set(bhttp::field::content_type, "application/json");
  for (const auto& [name, value] : options.headers) req.set(name, value);
  req.body() = std::string(body);
  req.prepare_payload();
  bhttp::write(stream, req, result.error);
  if (result.error) return result;

  beast::flat_buffer buffer;
  bhttp::response_parser<bhttp::string_body> parser;
  parser.body_limit(64 << 20);
  // tcp_stream timeouts only apply to async operations: run the read asynchronously.
  bhttp::async_read(stream, buffer, parser, [&](const beast::error_code& ec, std::size_t) { result.error = ec; });
  ctx.run();
  if (parser.is_header_done()) {
    const auto& res = parser.get();
    result.status = static_cast<int>(res.result_int());
    for (const auto& field : res) {
      std::string name(field.name_string());
      std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
      result.headers[name] = std::string(field.value());
    }
    result.body = res.body();
  }
  result.elapsed = std::chrono::steady_clock::now() - start;
  return result;
}

std::vector<lab::http::SseEvent> sse_events(std::string_view body) {
  std::vector<lab::http::SseEvent> events;
  lab::http::SseParser parser;
  parser.feed(body, [&](lab::http::SseEvent&& e) { events.push_back(std::move(e)); });
  return events;
}

}  // namespace lab::mocks::llm::testing
