#pragma once
// A load shape for one phase. Open-model executors say *when* each iteration should start
// (the runner measures latency from that intended time, wrk2-style); closed-model executors say
// *how many* virtual users should be looping at each moment. Executors are pure schedules: no
// I/O, no clock, so their tests check exact times.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "harness/scenario/diagnostics.hpp"

namespace lab::harness {

using Nanos = std::chrono::nanoseconds;

enum class LoadModel { kOpen, kClosed };

class Executor {
 public:
  virtual ~Executor() = default;
  virtual LoadModel model() const = 0;
  /// The phase length (already multiplied by --time-scale).
  virtual Nanos duration() const = 0;

  /// Open model: the intended start of iteration `i` (0-based) as an offset from the phase
  /// start, or nullopt when iteration i falls at or after the end of the phase. Monotonic in i.
  virtual std::optional<Nanos> arrival(std::int64_t /*i*/) const { return std::nullopt; }
  /// Open model: the most iterations in flight at once; later arrivals wait for a slot and are
  /// measured from their intended start. Those still waiting at the phase end are dropped.
  virtual std::int64_t max_in_flight() const { return 0; }

  /// Closed model: the number of VUs that should be looping at offset t.
  virtual std::int64_t vus_at(Nanos /*t*/) const { return 0; }
  /// Closed model: the most VUs at any time.
  virtual std::int64_t max_vus() const { return 0; }
};

/// Builds an executor from its phase mapping; reports every problem to fields.diag().
using ExecutorFactory = std::function<std::unique_ptr<Executor>(Fields& fields)>;

class ExecutorRegistry {
 public:
  void add(std::string name, ExecutorFactory factory);
  const ExecutorFactory* find(const std::string& name) const;
  std::string names() const;  ///< "a, b, c" for messages

 private:
  std::map<std::string, ExecutorFactory> factories_;
};

/// Registers constant-arrival-rate, ramping-arrival-rate, constant-vus and ramping-vus.
/// Explicit, not static initialisers: the linker drops those from static libraries.
void register_builtin_executors(ExecutorRegistry& registry);

/// One stage of a ramping executor: reach `target` linearly over `duration`.
struct Stage {
  Nanos duration{0};
  double target = 0;
};
/// Parses `stages: [{target, duration}, ...]` (durations scaled).
std::optional<std::vector<Stage>> parse_stages(Fields& fields, const char* key);


}  // namespace lab::harness
