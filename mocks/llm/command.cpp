#include "mocks/llm/command.hpp"
#include "common/cli/stop_signals.hpp"

#include <pthread.h>
#include <signal.h>

#include <charconv>
#include <cstdio>
#include <iostream>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "mocks/llm/mock_llm.hpp"

namespace lab::mocks::llm {

namespace {

constexpr std::string_view kUsage =
    "usage: agentlab mock-llm [--port N] [--profile FILE] [--seed N] [--threads N] [--host ADDR]\n"
    "\n"
    "An OpenAI- and Anthropic-compatible mock LLM with a load-dependent latency model,\n"
    "per-key rate limits and seeded faults (POST/GET/DELETE /admin/faults).\n"
    "\n"
    "  --port N        listen port (default 8000; 0 = any free port)\n"
    "  --host ADDR     listen address (default 127.0.0.1)\n"
    "  --profile FILE  YAML profile (default: a 7-8B model on one H100, see mocks/llm/README.md)\n"
    "  --seed N        seed for tokens, latencies and faults (default 1)\n"
    "  --threads N     I/O threads (default 1)\n";

template <typename T>
bool parse_number(std::string_view text, T& out, T lo, T hi) {
  T v{};
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || v < lo || v > hi) return false;
  out = v;
  return true;
}

}  // namespace

int command_main(int argc, char** argv) {
  MockLlmOptions options;
  options.port = 8000;
  std::uint64_t seed = 1;
  std::string profile_path;
  std::vector<std::string> errors;

  for (int i = 1; i < argc; ++i) {
    const std::string_view flag = argv[i];
    if (flag == "--help" || flag == "-h") {
      std::cout << kUsage;
      return 0;
    }
    if (i + 1 >= argc) {
      errors.push_back(std::string(flag) + ": " +
                       (flag.starts_with("--") ? "missing value" : "unexpected argument"));
      continue;
    }
    const std::string_view value = argv[++i];
    if (flag == "--port") {
      if (!parse_number<std::uint16_t>(value, options.port, 0, 65535)) {
        errors.push_back("--port: expected a port number in [0, 65535], got '" + std::string(value) + "'");
      }
    } else if (flag == "--threads") {
      if (!parse_number<int>(value, options.threads, 1, 256)) {
        errors.push_back("--threads: expected an integer in [1, 256], got '" + std::string(value) + "'");
      }
    } else if (flag == "--seed") {
      if (!parse_number<std::uint64_t>(value, seed, 0, UINT64_MAX)) {
        errors.push_back("--seed: expected a non-negative integer, got '" + std::string(value) + "'");
      }
    } else if (flag == "--host") {
      if (value.empty()) errors.push_back("--host: expected an address");
      options.host = std::string(value);
    } else if (flag == "--profile") {
      profile_path = std::string(value);
    } else {
      --i;  // the value was not consumed
      errors.push_back(std::string(flag) + ": unknown flag");
    }
  }

  Profile profile;
  if (!profile_path.empty()) {
    auto loaded = load_profile(profile_path);
    if (auto* errs = std::get_if<std::vector<std::string>>(&loaded)) {
      errors.insert(errors.end(), errs->begin(), errs->end());
    } else {
      profile = std::move(std::get<Profile>(loaded));
    }
  }
  if (!errors.empty()) {
    for (const std::string& e : errors) std::cerr << "mock-llm: " << e << "\n";
    std::cerr << kUsage;
    return 2;
  }

  const sigset_t stop_signals = cli::block_stop_signals();

  MockLlm mock(std::move(profile), SteadyClock::instance(), seed, options);
  try {
    mock.start();
  } catch (const std::system_error& e) {
    std::cerr << "mock-llm: " << e.what() << "\n";
    return 2;
  }
  std::cout << "mock-llm listening on " << mock.url() << std::endl;
  const int signal = cli::wait_for_stop_signal(stop_signals);
  std::cerr << "mock-llm: " << (signal == SIGINT ? "SIGINT" : "SIGTERM") << ", draining\n";
  mock.stop(std::chrono::milliseconds(2000));
  return 0;
}

}  // namespace lab::mocks::llm
