#pragma once
// Redis and PostgreSQL owned by one run of the embedded stack: `scripts/services` with a state
// file of the run's own (AGENTLAB_SERVICES_STATE), so concurrent runs and the developer's own
// servers never meet. The stack starts what the scenario names without a URL (`queue: redis`,
// `store: postgres`), stops one for a while for `service.restart` (same port and data when it
// comes back), and stops and removes everything at the end.
//
// The script is found at AGENTLAB_SERVICES_SCRIPT, else <source dir>/scripts/services (the
// source directory is compiled in). Each call is bounded (start 150 s, stop 60 s); the script's
// output is appended to a log file whose tail goes into error messages.
//
// Thread-safety: calls are serialised by a mutex.

#include <chrono>
#include <mutex>
#include <string>
#include <vector>

#include "common/clock/clock.hpp"

namespace lab::harness {

class LocalServices {
 public:
  /// `dir`: where the state file and the script's log go (the run's temporary directory).
  explicit LocalServices(std::string dir);
  ~LocalServices();  ///< stop_all()
  LocalServices(const LocalServices&) = delete;
  LocalServices& operator=(const LocalServices&) = delete;

  /// The script this build uses (AGENTLAB_SERVICES_SCRIPT, else the source tree's).
  static std::string script_path();

  /// Starts the servers asked for and reads their URLs from `scripts/services env`. Returns ""
  /// or the problem with the tail of the script's output.
  std::string start(bool redis, bool postgres);
  /// Stops one server ("redis" or "postgres"), keeping its port and data. "" or the problem.
  std::string stop_one(const std::string& service);
  /// Starts a server stopped by stop_one on its old port and data. "" or the problem.
  std::string start_one(const std::string& service);
  /// Stops both and removes their directory (idempotent).
  void stop_all();

  std::string redis_url() const;     ///< "redis://127.0.0.1:PORT" once started, else ""
  std::string postgres_url() const;  ///< "postgresql://postgres@127.0.0.1:PORT/agentlab", else ""
  std::string state_file() const { return state_; }

 private:
  /// Runs `script ARGS...` with the state file in its environment, output appended to the log
  /// (or written to `out_path` when given). "" or the problem.
  std::string run(const std::vector<std::string>& args, std::chrono::seconds bound,
                  const std::string& out_path = {});

  std::string dir_, state_, log_;
  mutable std::mutex mutex_;
  std::string redis_url_, postgres_url_;
  bool started_ = false;
};

}  // namespace lab::harness
