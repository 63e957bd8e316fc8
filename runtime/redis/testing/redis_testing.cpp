#include "runtime/redis/testing/redis_testing.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <thread>
#include <vector>

extern char** environ;

namespace lab::runtime::redis::testing {
namespace {

constexpr auto kStartBound = std::chrono::seconds(10);

int free_loopback_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

// Waits until the process exits or the bound passes; true when it exited.
bool wait_exit(pid_t pid, std::chrono::steady_clock::duration bound) {
  const auto deadline = std::chrono::steady_clock::now() + bound;
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid || r < 0) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

}  // namespace

Result<RedisOptions> options_from_env(std::string& message) {
  const char* url = std::getenv("AGENTLAB_REDIS_URL");
  if (url == nullptr || *url == '\0') {
    message =
        "AGENTLAB_REDIS_URL is not set: integration tests need the real Redis that "
        "scripts/services starts. Run them via scripts/test (or: scripts/services start && "
        "eval \"$(scripts/services env)\").";
    return Errc::kInvalidArgument;
  }
  auto options = parse_redis_url(url);
  if (!options.ok()) message = std::string("AGENTLAB_REDIS_URL is not a redis:// URL: ") + url;
  return options;
}

std::string unique_prefix(std::string_view test_name) {
  static std::atomic<int> counter{0};
  return "t:" + std::string(test_name) + ":" + std::to_string(::getpid()) + ":" +
         std::to_string(counter.fetch_add(1)) + ":";
}

void delete_keys(RedisPool& pool, std::string_view prefix) {
  std::string cursor = "0";
  do {
    auto r = pool.command(Args{"SCAN", cursor, "MATCH", std::string(prefix) + "*", "COUNT", "1000"});
    if (!r.ok() || r->size() != 2) return;
    cursor = r->elements[0].str;
    Args del{"DEL"};
    for (const auto& key : r->elements[1].elements) del.add(key.str);
    if (del.size() > 1) (void)pool.command(del);
  } while (cursor != "0");
}

PrivateRedis::~PrivateRedis() {
  stop();
  if (!dir_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
}

RedisOptions PrivateRedis::options() const {
  RedisOptions o;
  o.host = "127.0.0.1";
  o.port = port_;
  return o;
}

Result<void> PrivateRedis::start(std::string& message) {
  if (dir_.empty()) {
    std::string pattern = std::filesystem::temp_directory_path() / "agentlab-redis-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) {
      message = "mkdtemp failed";
      return Errc::kBackendError;
    }
    dir_ = pattern;
  }
  for (int attempt = 0; attempt < 3; ++attempt) {  // a port taken after we probed it: retry
    if (port_ == 0 || attempt > 0) port_ = free_loopback_port();
    if (auto ok = spawn(message); ok.ok()) return ok;
  }
  return Errc::kUnavailable;
}

Result<void> PrivateRedis::spawn(std::string& message) {
  const std::string port = std::to_string(port_);
  const std::string log = dir_ + "/redis.log";
  std::vector<std::string> args = {"redis-server", "--port", port, "--bind", "127.0.0.1",
                                   "--dir", dir_, "--logfile", log, "--save", "",
                                   "--appendonly", "yes", "--appendfsync", "everysec",
                                   "--daemonize", "no"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  if (::posix_spawnp(&pid, "redis-server", nullptr, nullptr, argv.data(), environ) != 0) {
    message = "cannot run redis-server (is Debian's redis-server installed? scripts/bootstrap)";
    return Errc::kUnavailable;
  }
  pid_ = pid;
  SteadyClock& clock = SteadyClock::instance();
  RedisOptions o = options();
  o.backoff_initial = Millis(1);
  o.backoff_max = Millis(1);
  o.connect_timeout = Millis(200);
  RedisConnection probe(o, clock);
  const auto deadline = std::chrono::steady_clock::now() + kStartBound;
  while (std::chrono::steady_clock::now() < deadline) {
    if (auto pong = probe.command(Args{"PING"}); pong.ok()) return {};
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {  // exited: port taken, or a bad option
      pid_ = -1;
      message = "redis-server exited at start (see " + log + ")";
      return Errc::kUnavailable;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  message = "redis-server did not answer PING on port " + port + " within 10 s";
  stop();
  return Errc::kUnavailable;
}

void PrivateRedis::stop() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGTERM);  // redis-server shuts down cleanly on SIGTERM: AOF fsynced
  if (!wait_exit(pid_, std::chrono::seconds(10))) {
    ::kill(pid_, SIGKILL);
    wait_exit(pid_, std::chrono::seconds(10));
  }
  pid_ = -1;
}

Result<void> PrivateRedis::restart(std::string& message) {
  stop();
  return spawn(message);
}

int PrivateRedis::cli(std::string_view args) const {
  const std::string cmd =
      "redis-cli -h 127.0.0.1 -p " + std::to_string(port_) + " " + std::string(args) + " >/dev/null 2>&1";
  return std::system(cmd.c_str());
}

}  // namespace lab::runtime::redis::testing
