#include "harness/embedded/local_services.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <thread>
#include <vector>

#include "harness/embedded/process_supervisor.hpp"

#ifndef LAB_SOURCE_DIR
#error "LAB_SOURCE_DIR must name the source tree (harness/CMakeLists.txt defines it)"
#endif

extern char** environ;

namespace lab::harness {

using namespace std::chrono_literals;

namespace {

std::string tail_of(const std::string& path, std::size_t max_bytes = 1500) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  if (text.size() > max_bytes) {
    text.erase(0, text.size() - max_bytes);
    const auto nl = text.find('\n');
    if (nl != std::string::npos) text.erase(0, nl + 1);
  }
  while (!text.empty() && text.back() == '\n') text.pop_back();
  return text;
}

}  // namespace

LocalServices::LocalServices(std::string dir)
    : dir_(std::move(dir)), state_(dir_ + "/services.env"), log_(dir_ + "/services.log") {}

LocalServices::~LocalServices() { stop_all(); }

std::string LocalServices::script_path() {
  if (const char* p = std::getenv("AGENTLAB_SERVICES_SCRIPT"); p && *p) return p;
  return std::string(LAB_SOURCE_DIR) + "/scripts/services";
}

std::string LocalServices::run(const std::vector<std::string>& args, std::chrono::seconds bound,
                               const std::string& out_path) {
  const std::string script = script_path();
  std::vector<std::string> argv_text{"/bin/bash", script};
  argv_text.insert(argv_text.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_text) argv.push_back(a.data());
  argv.push_back(nullptr);
  // The environment, with this run's state file.
  std::vector<std::string> env_text;
  for (char** e = environ; *e; ++e)
    if (!std::string_view(*e).starts_with("AGENTLAB_SERVICES_STATE=")) env_text.emplace_back(*e);
  env_text.push_back("AGENTLAB_SERVICES_STATE=" + state_);
  std::vector<char*> envp;
  for (auto& e : env_text) envp.push_back(e.data());
  envp.push_back(nullptr);

  const std::string& out = out_path.empty() ? log_ : out_path;
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | (out_path.empty() ? O_APPEND : O_TRUNC), 0644);
  posix_spawn_file_actions_addopen(&fa, 2, log_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  // The servers the script starts are daemons: they must not inherit this process's sockets.
  posix_spawn_file_actions_addclosefrom_np(&fa, 3);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  const std::string what = "scripts/services " + [&] {
    std::string a;
    for (const auto& s : args) a += (a.empty() ? "" : " ") + s;
    return a;
  }();
  if (rc != 0) return what + ": cannot run " + script + ": " + std::strerror(rc);
  const auto deadline = std::chrono::steady_clock::now() + bound;
  int status = 0;
  for (;;) {
    const pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return what + " did not finish within " + std::to_string(bound.count()) + " s; " + log_ + " ends:\n" + tail_of(log_);
    }
    std::this_thread::sleep_for(20ms);  // bounded by the deadline
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return {};
  return what + " failed (" + describe_wait_status(status) + "); " + log_ + " ends:\n" + tail_of(log_);
}

std::string LocalServices::start(bool redis, bool postgres) {
  std::lock_guard lock(mutex_);
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  started_ = true;
  std::string problem;
  if (redis && postgres) problem = run({"start"}, 150s);
  else if (redis) problem = run({"start", "redis"}, 150s);
  else if (postgres) problem = run({"start", "postgres"}, 150s);
  if (!problem.empty()) return problem;
  const std::string env_out = dir_ + "/services.env.out";
  problem = run({"env"}, 30s, env_out);
  if (!problem.empty()) return problem;
  std::ifstream in(env_out);
  std::string line;
  while (std::getline(in, line)) {
    auto value = [&](std::string_view key) -> std::optional<std::string> {
      const std::string prefix = "export " + std::string(key) + "=";
      if (!line.starts_with(prefix)) return std::nullopt;
      return line.substr(prefix.size());
    };
    if (auto v = value("AGENTLAB_REDIS_URL")) redis_url_ = *v;
    if (auto v = value("AGENTLAB_PG_URL")) postgres_url_ = *v;
  }
  if (redis && redis_url_.empty()) return "scripts/services env printed no AGENTLAB_REDIS_URL (see " + env_out + ")";
  if (postgres && postgres_url_.empty()) return "scripts/services env printed no AGENTLAB_PG_URL (see " + env_out + ")";
  return {};
}

std::string LocalServices::stop_one(const std::string& service) {
  std::lock_guard lock(mutex_);
  return run({"stop", service}, 60s);
}

std::string LocalServices::start_one(const std::string& service) {
  std::lock_guard lock(mutex_);
  return run({"start", service}, 150s);
}

void LocalServices::stop_all() {
  std::lock_guard lock(mutex_);
  if (!started_) return;
  started_ = false;
  if (auto problem = run({"stop"}, 60s); !problem.empty())
    std::fprintf(stderr, "agentlab: embedded stack: %s\n", problem.c_str());
}

std::string LocalServices::redis_url() const {
  std::lock_guard lock(mutex_);
  return redis_url_;
}

std::string LocalServices::postgres_url() const {
  std::lock_guard lock(mutex_);
  return postgres_url_;
}

}  // namespace lab::harness
