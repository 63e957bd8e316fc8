#pragma once
// A ControlPlane for gateway tests: switches the tests flip, and a record of the commands the
// gateway sent. Thread-safe (the gateway calls it from its io threads).

#include <atomic>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "runtime/api/agent_store.hpp"
#include "runtime/gateway/gateway.hpp"

namespace lab::runtime::testing {

class FakeControlPlane final : public ControlPlane {
 public:
  explicit FakeControlPlane(AgentStore& agents) : agents_(agents) {}

  std::atomic<bool> accepting{true};
  std::atomic<bool> is_draining{false};

  bool accept_new_work() override { return accepting.load(); }
  bool draining() override { return is_draining.load(); }

  std::string hibernate(std::string_view agent_id) override {
    std::lock_guard lock(mutex_);
    hibernated_.emplace_back(agent_id);
    return "not_resident";
  }

  Result<std::size_t> set_membership(std::string_view user_id, bool paused) override {
    return agents_.set_membership_paused(user_id, paused);
  }

  boost::json::object system_snapshot() override {
    boost::json::object o;
    o["degradation_level"] = accepting.load() ? 0 : 4;
    o["fake"] = true;
    return o;
  }

  std::string metrics_text() override { return "fake_metric 1\n"; }

  std::vector<std::string> hibernated() const {
    std::lock_guard lock(mutex_);
    return hibernated_;
  }

 private:
  AgentStore& agents_;
  mutable std::mutex mutex_;
  std::vector<std::string> hibernated_;
};

}  // namespace lab::runtime::testing
