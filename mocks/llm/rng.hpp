#pragma once
// Deterministic randomness for the mock LLM. The same seed gives the same numbers on every
// platform: std::normal_distribution and friends are implementation-defined, so the normal and
// log-normal draws are computed here (Box–Muller over SplitMix64).

#include <cmath>
#include <cstdint>
#include <numbers>
#include <string_view>

namespace lab::mocks::llm {

/// One SplitMix64 finalisation: a strong 64-bit mixer, used to derive independent seeds.
constexpr std::uint64_t mix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

/// FNV-1a over `bytes`, continuing from `hash` (so several fields can be chained).
constexpr std::uint64_t fnv1a(std::string_view bytes,
                              std::uint64_t hash = 0xcbf29ce484222325ULL) {
  for (unsigned char c : bytes) {
    hash ^= c;
    hash *= 0x100000001b3ULL;
  }
  return hash;
}

/// A small, fast, seedable generator (SplitMix64 sequence). Not thread-safe; one per request.
class Rng {
 public:
  explicit Rng(std::uint64_t seed) : state_(seed) {}

  std::uint64_t next() {
    state_ += 0x9e3779b97f4a7c15ULL;
    std::uint64_t z = state_;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  /// Uniform in [0, 1).
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  /// Uniform integer in [0, n), n > 0.
  std::uint64_t below(std::uint64_t n) { return next() % n; }
  /// True with probability p.
  bool chance(double p) { return p > 0.0 && (p >= 1.0 || uniform() < p); }
  /// Standard normal N(0, 1) (Box–Muller; one draw per call keeps the sequence simple).
  double normal() {
    const double u1 = 1.0 - uniform();  // (0, 1]: log() stays finite
    const double u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
  }

 private:
  std::uint64_t state_;
};

}  // namespace lab::mocks::llm
