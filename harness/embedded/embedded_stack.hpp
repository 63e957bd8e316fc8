#pragma once
// The embedded stack: what `agentlab run` boots on loopback when no target is given, from the
// scenario's `system:` block (scenarios/README.md, "The embedded stack"):
//
//   llm, llm_backup   the mock LLM and an optional backup provider (a second mock)
//   runtime           the reference runtime (keys as in runtime/README.md), in-process. With
//                     `queue: redis` / `store: postgres` (no URL) the stack starts a Redis / a
//                     PostgreSQL of its own (scripts/services, state in the run's temporary
//                     directory) and stops them at the end; URLs are used as given. Every run
//                     gets a fresh Redis `namespace`.
//   worker_processes  N: the in-process runtime is the gateway only, and N child processes
//                     `agentlab serve --role worker --instance wK` run the workers (shared
//                     Redis queue and PostgreSQL store required)
//   chaos_proxy       [redis, postgres, llm]: the built-in chaos proxy (Toxiproxy's API) runs
//                     in-process with one proxy of that name per upstream; the processes that run
//                     workers reach those upstreams through it (the gateway stays direct), and
//                     proxy.toxic / proxy.down faults without `url:` go to its API
//
// It also performs the faults only it can (Fault::Kind::kStack): process.kill {role: worker,
// signal, count} (workers chosen with the run's seed, restarted with the same instance at the
// fault's end) and service.restart {service} (its own server stopped at the start, back on the
// same port and data at the end); and answers the ledger's question about the store.

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/clock/clock.hpp"
#include "harness/run/runner.hpp"
#include "harness/scenario/scenario.hpp"

namespace lab::mocks::llm {
class MockLlm;
}
namespace lab::mocks::proxy {
class ChaosProxy;
}
namespace lab::runtime {
class Runtime;
}

namespace lab::harness {

class LocalServices;
class ProcessSupervisor;

struct EmbeddedStackOptions {
  /// The program the worker processes run (`BINARY serve --role worker ...`): this very program
  /// by default; tests name the agentlab binary.
  std::string serve_binary = "/proc/self/exe";
  Nanos worker_ready_timeout = std::chrono::seconds(20);
};

class EmbeddedStack {
 public:
  /// Validates `system:` and the faults that need the stack (every problem into diag, with file
  /// and line) and starts what it asks for. nullptr when anything is invalid (then nothing was
  /// left running) or did not start (the problem in diag).
  static std::unique_ptr<EmbeddedStack> start(const Scenario& sc, std::uint64_t seed, Diagnostics& diag,
                                              const EmbeddedStackOptions& options = {});
  ~EmbeddedStack();

  /// The URL the scenario's requests go to.
  std::string target_url() const { return target_; }
  /// Where relative fault URLs (the mock's /admin/faults) go.
  std::string admin_url() const { return admin_; }
  /// The chaos proxy's API ("http://127.0.0.1:PORT"), "" without `chaos_proxy:`.
  std::string proxy_api_url() const;
  std::string describe() const { return description_; }
  bool has_runtime() const { return runtime_ != nullptr; }
  std::size_t worker_processes() const;

  /// Performs a Fault::Kind::kStack fault's start or end (RunOptions::stack_action). Blocks
  /// while a process or server restarts. Thread-safe.
  StackActionResult perform(const Fault& fault, bool start);
  /// The store's turns and message rows for these tasks (RunOptions::store_effects).
  StoreEffects task_effects(const std::vector<std::string>& task_ids);

  /// Stops the worker processes (SIGTERM, then SIGKILL), the runtime, the proxy, the mocks and
  /// the stack's own servers, and removes the temporary directory unless something went wrong
  /// there (then its path is printed). Idempotent.
  void stop();

 private:
  EmbeddedStack() = default;
  StackActionResult kill_workers(const Fault& fault, bool start);
  StackActionResult restart_service(const Fault& fault, bool start);

  std::uint64_t seed_ = 1;
  std::string temp_dir_;
  bool keep_temp_ = false;
  std::unique_ptr<LocalServices> services_;
  std::unique_ptr<mocks::llm::MockLlm> llm_;
  std::unique_ptr<mocks::llm::MockLlm> backup_;
  std::unique_ptr<mocks::proxy::ChaosProxy> proxy_;
  std::unique_ptr<runtime::Runtime> runtime_;
  std::unique_ptr<ProcessSupervisor> workers_;
  Nanos worker_drain{std::chrono::seconds(10)};
  std::string target_, admin_, description_;

  std::mutex faults_mutex_;
  std::map<const Fault*, std::vector<std::size_t>> killed_;  ///< per process.kill fault
  std::uint64_t kills_ = 0;                                  ///< process.kill starts so far
  bool stopped_ = false;
};

}  // namespace lab::harness
