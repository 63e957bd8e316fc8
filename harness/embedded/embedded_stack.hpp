#pragma once
// The embedded stack: what `agentlab run` boots in-process on loopback when no target is given,
// from the scenario's `system:` block. Today that is the mock LLM (`system.llm`); the reference
// runtime (`system.runtime`) joins it with the runtime issue.

#include <memory>
#include <string>

#include "common/clock/clock.hpp"
#include "harness/scenario/scenario.hpp"

namespace lab::mocks::llm {
class MockLlm;
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
  void stop();

 private:
  EmbeddedStack() = default;
  std::unique_ptr<mocks::llm::MockLlm> llm_;
  std::string target_, admin_, description_;
};

}  // namespace lab::harness
