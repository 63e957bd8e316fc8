#pragma once
// "host:port" addresses as Toxiproxy's listen and upstream fields spell them.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <boost/asio/ip/tcp.hpp>

namespace lab::mocks::proxy {

struct HostPort {
  std::string host;  ///< without brackets; "" for ":port"
  std::uint16_t port = 0;
};

/// Parses "host:port", "[v6]:port" or ":port". On failure returns nullopt and sets `error`
/// (when given) to the reason.
std::optional<HostPort> parse_host_port(std::string_view text, std::string* error = nullptr);

/// "127.0.0.1:8474" or "[::1]:8474", as Go prints a listener's address.
std::string format_endpoint(const boost::asio::ip::tcp::endpoint& endpoint);

}  // namespace lab::mocks::proxy
