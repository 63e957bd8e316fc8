#include "runtime/command.hpp"
#include "common/cli/stop_signals.hpp"

#include <pthread.h>
#include <signal.h>

#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "runtime/service/runtime.hpp"

namespace lab::runtime {

namespace {

constexpr std::string_view kUsage =
    "usage: agentlab serve [--role all|gateway|worker] [--queue memory|redis://...]\n"
    "                      [--store memory|postgresql://...] [--namespace NAME] [--instance NAME]\n"
    "                      [--llm URL[,URL...]] [--host ADDR] [--port N] [--workers N]\n"
    "                      [--http-threads N] [--config FILE]\n"
    "\n"
    "The reference agent runtime: gateway (HTTP API), queue, scheduler, stores and workers, in\n"
    "one process or, on shared backends, as gateway and worker processes. SIGINT/SIGTERM drain\n"
    "it gracefully. See runtime/README.md.\n"
    "\n"
    "  --llm URL[,URL]  OpenAI-compatible LLM base URLs: the primary, then backups (required)\n"
    "  --port N         listen port (default 8080; 0 = any free port)\n"
    "  --host ADDR      listen address (default 127.0.0.1)\n"
    "  --workers N      worker instances (default 2)\n"
    "  --http-threads N API io threads (default 2)\n"
    "  --queue URL      memory (default), or redis://[[user]:password@]host[:port][/db]: the\n"
    "                   queue (Redis Streams), event bus and locks on that Redis\n"
    "  --store URL      memory (default), or postgresql://user@host:port/db (migrations applied\n"
    "                   at start)\n"
    "  --namespace NAME Redis key prefix shared by one deployment's processes (default agentlab)\n"
    "  --instance NAME  worker ids NAME-1, NAME-2, ... (default worker); restart a worker with the\n"
    "                   same name and it recovers the agents it left PROCESSING\n"
    "  --role           all (default), gateway (the API only) or worker (no API but /healthz,\n"
    "                   /api/system, /metrics); gateway and worker need redis:// and postgresql://\n"
    "  --config FILE    YAML settings (runtime/README.md); flags override it\n"
    "  AGENTLAB_JWT_SECRET  the HS256 secret (default agentlab-dev-secret)\n";

template <typename T>
bool parse_number(std::string_view text, T& out, T lo, T hi) {
  T v{};
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || v < lo || v > hi) return false;
  out = v;
  return true;
}

std::vector<std::string> split_urls(std::string_view text) {
  std::vector<std::string> out;
  while (!text.empty()) {
    const auto comma = text.find(',');
    const std::string_view part = text.substr(0, comma);
    if (!part.empty()) out.emplace_back(part);
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
  }
  return out;
}

}  // namespace

int serve_main(int argc, char** argv) {
  RuntimeConfig config;
  config.port = 8080;
  std::vector<std::string> errors;
  std::string config_path;
  // The config file first (flags override it), so find it before the other flags.
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::string_view(argv[i]) == "--config") config_path = argv[i + 1];
  }
  if (!config_path.empty()) load_runtime_config_file(config_path, config, errors);

  for (int i = 1; i < argc; ++i) {
    const std::string_view flag = argv[i];
    if (flag == "--help" || flag == "-h") {
      std::cout << kUsage;
      return 0;
    }
    if (i + 1 >= argc) {
      errors.push_back(std::string(flag) + ": " + (flag.starts_with("--") ? "missing value" : "unexpected argument"));
      continue;
    }
    const std::string_view value = argv[++i];
    if (flag == "--config") {
      continue;  // read above
    } else if (flag == "--role") {
      if (value == "all") {
        config.role = ServiceRole::kAll;
      } else if (value == "gateway") {
        config.role = ServiceRole::kGateway;
      } else if (value == "worker") {
        config.role = ServiceRole::kWorker;
      } else {
        errors.push_back("--role: expected all, gateway or worker, got '" + std::string(value) + "'");
      }
    } else if (flag == "--queue") {
      config.queue = std::string(value);
    } else if (flag == "--store") {
      config.store = std::string(value);
    } else if (flag == "--namespace") {
      config.namespace_ = std::string(value);
    } else if (flag == "--instance") {
      config.instance = std::string(value);
    } else if (flag == "--llm") {
      config.llm_urls = split_urls(value);
    } else if (flag == "--host") {
      config.host = std::string(value);
    } else if (flag == "--port") {
      if (!parse_number<std::uint16_t>(value, config.port, 0, 65535)) {
        errors.push_back("--port: expected a port number in [0, 65535], got '" + std::string(value) + "'");
      }
    } else if (flag == "--workers") {
      if (!parse_number<int>(value, config.workers, 1, 256)) {
        errors.push_back("--workers: expected an integer in [1, 256], got '" + std::string(value) + "'");
      }
    } else if (flag == "--http-threads") {
      if (!parse_number<int>(value, config.http_threads, 1, 256)) {
        errors.push_back("--http-threads: expected an integer in [1, 256], got '" + std::string(value) + "'");
      }
    } else {
      --i;  // the value was not consumed
      errors.push_back(std::string(flag) + ": unknown flag");
    }
  }
  if (const char* secret = std::getenv("AGENTLAB_JWT_SECRET"); secret != nullptr && *secret != '\0') {
    config.jwt_secret = secret;
  }
  for (auto& problem : config.validate()) errors.push_back(std::move(problem));
  if (!errors.empty()) {
    for (const std::string& e : errors) std::cerr << "serve: " << e << "\n";
    std::cerr << kUsage;
    return 2;
  }

  const sigset_t stop_signals = cli::block_stop_signals();

  std::unique_ptr<Runtime> runtime;
  try {
    runtime = std::make_unique<Runtime>(config);
    runtime->start();
  } catch (const std::exception& e) {
    std::cerr << "serve: " << e.what() << "\n";
    return 1;
  }
  std::cout << "agentlab serve: listening on " << runtime->url() << " (" << to_string(config.role) << ", ";
  if (config.role == ServiceRole::kGateway) {
    std::cout << "no workers";
  } else {
    std::cout << config.workers << " workers, LLM " << config.llm_urls.front()
              << (config.llm_urls.size() > 1 ? " + backups" : "");
  }
  std::cout << ", queue " << (config.redis_queue() ? "redis" : "memory") << ", store "
            << (config.postgres_store() ? "postgresql" : "memory") << ")" << std::endl;
  const int signal = cli::wait_for_stop_signal(stop_signals);
  std::cerr << "serve: " << (signal == SIGINT ? "SIGINT" : "SIGTERM") << ", draining (at most "
            << std::chrono::duration_cast<std::chrono::seconds>(config.drain).count() << "s)\n";
  runtime->stop(config.drain);
  const auto c = runtime->counters();
  std::cerr << "serve: stopped; tasks accepted " << c.ledger.accepted << ", completed " << c.ledger.completed
            << ", failed " << c.ledger.failed << ", queued " << c.queue_depth << ", in flight " << c.in_flight << "\n";
  return 0;
}

}  // namespace lab::runtime
