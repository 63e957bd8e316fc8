#include "mocks/proxy/command.hpp"
#include "common/cli/stop_signals.hpp"

#include <pthread.h>
#include <signal.h>

#include <charconv>
#include <cstdint>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "mocks/proxy/api.hpp"
#include "mocks/proxy/chaos_proxy.hpp"

namespace lab::mocks::proxy {

namespace {

constexpr std::uint16_t kDefaultPort = 8474;  // Toxiproxy's
constexpr std::size_t kMaxConfigBytes = 4 << 20;

constexpr std::string_view kUsage =
    "usage: agentlab chaos-proxy [--port N] [--host ADDR] [--config FILE] [--seed N] [--threads N]\n"
    "\n"
    "A TCP fault-injection proxy with Toxiproxy's HTTP API (proxies, toxics, populate, reset).\n"
    "\n"
    "  --port N        API port (default 8474; 0 = any free port)\n"
    "  --host ADDR     API address (default 127.0.0.1)\n"
    "  --config FILE   JSON array of proxies to create at start (as POST /populate)\n"
    "  --seed N        seed for toxicity, jitter and slicer draws (default 1)\n"
    "  --threads N     data-plane threads (default 1)\n";

template <typename T>
bool parse_number(std::string_view text, T& out, T lo, T hi) {
  T v{};
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || v < lo || v > hi) return false;
  out = v;
  return true;
}

/// "-port" → "--port", so Toxiproxy's flag spelling works.
std::string normalise(std::string_view flag) {
  if (flag.size() > 1 && flag[0] == '-' && flag[1] != '-') return "-" + std::string(flag);
  return std::string(flag);
}

bool read_file(const std::string& path, std::string& out, std::string& error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = "--config: cannot open '" + path + "'";
    return false;
  }
  std::ostringstream text;
  text << in.rdbuf();
  out = text.str();
  if (out.size() > kMaxConfigBytes) {
    error = "--config: '" + path + "' is larger than " + std::to_string(kMaxConfigBytes) + " bytes";
    return false;
  }
  return true;
}

}  // namespace

int command_main(int argc, char** argv) {
  ChaosProxyOptions options;
  options.port = kDefaultPort;
  std::string config_path;
  std::vector<std::string> errors;

  for (int i = 1; i < argc; ++i) {
    const std::string flag = normalise(argv[i]);
    if (flag == "--help" || flag == "-h" || flag == "--h") {
      std::cout << kUsage;
      return 0;
    }
    if (!flag.starts_with("--")) {
      errors.push_back("'" + flag + "': unexpected argument");
      continue;
    }
    if (i + 1 >= argc) {
      errors.push_back(flag + ": missing value");
      continue;
    }
    const std::string_view value = argv[++i];
    if (flag == "--port") {
      if (!parse_number<std::uint16_t>(value, options.port, 0, 65535)) {
        errors.push_back("--port: expected a port number in [0, 65535], got '" + std::string(value) + "'");
      }
    } else if (flag == "--host") {
      if (value.empty()) errors.push_back("--host: expected an address");
      options.host = std::string(value);
    } else if (flag == "--config") {
      config_path = std::string(value);
    } else if (flag == "--seed") {
      if (!parse_number<std::uint64_t>(value, options.data.seed, 0, UINT64_MAX)) {
        errors.push_back("--seed: expected a non-negative integer, got '" + std::string(value) + "'");
      }
    } else if (flag == "--threads") {
      if (!parse_number<int>(value, options.data.threads, 1, 64)) {
        errors.push_back("--threads: expected an integer in [1, 64], got '" + std::string(value) + "'");
      }
    } else {
      --i;  // the value was not consumed
      errors.push_back(flag + ": unknown flag");
    }
  }

  std::vector<ProxyConfig> configs;
  if (!config_path.empty() && errors.empty()) {
    std::string text, error;
    if (!read_file(config_path, text, error)) {
      errors.push_back(error);
    } else if (auto parsed = parse_proxy_configs(text); !parsed.ok()) {
      errors.push_back("--config: " + config_path + ": " + parsed.error().message);
    } else {
      configs = std::move(parsed.value());
    }
  }
  if (!errors.empty()) {
    for (const std::string& e : errors) std::cerr << "chaos-proxy: " << e << "\n";
    std::cerr << kUsage;
    return 2;
  }

  const sigset_t stop_signals = cli::block_stop_signals();

  ChaosProxy proxy(options);
  try {
    proxy.start();
  } catch (const std::system_error& e) {
    std::cerr << "chaos-proxy: API: " << e.what() << "\n";
    return 2;
  }
  if (!configs.empty()) {
    auto populated = proxy.registry().populate(configs);
    if (!populated.ok()) {
      std::cerr << "chaos-proxy: --config: " << config_path << ": "
                << populated.error().message << "\n";
      proxy.stop();
      return 2;
    }
    for (const ProxyInfo& p : populated.value()) {
      std::cerr << "chaos-proxy: proxy " << p.name << " " << p.listen << " -> " << p.upstream
                << (p.enabled ? "" : " (disabled)") << "\n";
    }
  }
  std::cout << "chaos-proxy API on " << proxy.url() << std::endl;
  const int signal = cli::wait_for_stop_signal(stop_signals);
  std::cerr << "chaos-proxy: " << (signal == SIGINT ? "SIGINT" : "SIGTERM") << ", stopping\n";
  proxy.stop();
  return 0;
}

}  // namespace lab::mocks::proxy
