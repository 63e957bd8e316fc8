#include "mocks/proxy/address.hpp"

#include <charconv>

namespace lab::mocks::proxy {

std::optional<HostPort> parse_host_port(std::string_view text, std::string* error) {
  auto fail = [&](std::string why) -> std::optional<HostPort> {
    if (error != nullptr) *error = "address '" + std::string(text) + "': " + std::move(why);
    return std::nullopt;
  };
  const std::size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) return fail("missing port");
  std::string_view host = text.substr(0, colon);
  const std::string_view port_text = text.substr(colon + 1);
  if (host.starts_with('[')) {
    if (!host.ends_with(']')) return fail("missing ']'");
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string_view::npos) {
    return fail("too many colons (write IPv6 addresses as [addr]:port)");
  }
  unsigned port = 0;
  const auto [end, ec] =
      std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (port_text.empty() || ec != std::errc() || end != port_text.data() + port_text.size() ||
      port > 65535) {
    return fail("invalid port '" + std::string(port_text) + "'");
  }
  return HostPort{std::string(host), static_cast<std::uint16_t>(port)};
}

std::string format_endpoint(const boost::asio::ip::tcp::endpoint& endpoint) {
  const auto address = endpoint.address();
  std::string host = address.to_string();
  if (address.is_v6()) host = "[" + host + "]";
  return host + ":" + std::to_string(endpoint.port());
}

}  // namespace lab::mocks::proxy
