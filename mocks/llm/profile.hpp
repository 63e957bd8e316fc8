#pragma once
// A mock LLM profile: models, latency model, load model, rate limits, limits and startup
// faults. Loaded from YAML (JSON works too); the defaults model a 7–8B model on one H100
// (see mocks/llm/README.md for the calibration sources).

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>
#include <unordered_map>
#include <variant>
#include <vector>

#include "mocks/llm/faults.hpp"
#include "mocks/llm/latency.hpp"
#include "mocks/llm/rate_limiter.hpp"

namespace lab::mocks::llm {

struct Profile {
  std::vector<std::string> models = {"mock-llama-3.1-8b"};  ///< listed by /v1/models
  bool accept_any_model = true;  ///< false: an unlisted model gets the provider's 404
  LatencyProfile latency;
  OutputProfile output;
  LoadProfile load;
  RateLimit default_rate_limit;                              ///< for keys not listed
  std::unordered_map<std::string, RateLimit> key_rate_limits;
  double tool_call_probability = 1.0;  ///< tool_choice auto, tools offered, no tool result yet
  std::size_t max_body_bytes = 8u << 20;
  std::chrono::seconds max_hang{600};  ///< a hung or stalled request is dropped after this
  std::vector<FaultRule> faults;       ///< active from start
};

/// Parses profile YAML. On failure returns every problem, each "NAME:LINE: field: message".
std::variant<Profile, std::vector<std::string>> parse_profile(std::string_view yaml,
                                                              std::string_view name);
/// Reads and parses a profile file ("cannot read" is reported the same way).
std::variant<Profile, std::vector<std::string>> load_profile(const std::string& path);

}  // namespace lab::mocks::llm
