#pragma once
// The embedded stack: what `agentlab run` boots in-process on loopback when no target is given,
// from the scenario's `system:` block: the mock LLM (`system.llm`), an optional backup provider
// (`system.llm_backup`, a second mock), and the reference runtime (`system.runtime`, keys as in
// runtime/README.md) wired to them. With a runtime the load goes to it; otherwise to the mock.

#include <memory>
#include <string>

#include "common/clock/clock.hpp"
#include "harness/scenario/scenario.hpp"

namespace lab::mocks::llm {
class MockLlm;
}
namespace lab::runtime {
class Runtime;
}

namespace lab::harness {

class EmbeddedStack {
 public:
  /// Validates `system:` (every problem into diag, with lines) and starts what it asks for.
  /// nullptr when the block is invalid, absent, or asks for parts not built yet.
  static std::unique_ptr<EmbeddedStack> start(const Scenario& sc, std::uint64_t seed, Diagnostics& diag);
  ~EmbeddedStack();

  /// The URL the scenario's requests go to.
  std::string target_url() const { return target_; }
  /// Where relative fault URLs (the mock's /admin/faults) go.
  std::string admin_url() const { return admin_; }
  std::string describe() const { return description_; }
  bool has_runtime() const { return runtime_ != nullptr; }
  void stop();

 private:
  EmbeddedStack() = default;
  std::unique_ptr<mocks::llm::MockLlm> llm_;
  std::unique_ptr<mocks::llm::MockLlm> backup_;
  std::unique_ptr<runtime::Runtime> runtime_;
  std::string target_, admin_, description_;
};

}  // namespace lab::harness
