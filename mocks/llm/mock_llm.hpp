#pragma once
// The mock LLM server: OpenAI- and Anthropic-compatible endpoints over lab::http::Server, with
// the latency and load model, per-key rate limits, seeded faults and Prometheus metrics.
//
//   POST /v1/chat/completions   OpenAI Chat Completions (stream or not, tools, usage)
//   POST /v1/messages           Anthropic Messages (stream or not, tool_use)
//   GET  /v1/models[/{id}]      OpenAI shape, or Anthropic's when anthropic-version is sent
//   POST/GET/DELETE /admin/faults, DELETE /admin/faults/{id}
//   GET  /metrics  GET /healthz
//
// Per-request headers: x-mock-ttft-ms, x-mock-itl-ms (pin the base latencies),
// x-mock-output-tokens, x-mock-fault (see faults.hpp).
//
// Clocks: rate-limit buckets and fault activation/duration run on the injected Clock (tests
// use a SimulatedClock). Token pacing runs on real steady-clock timers: a stream's deadlines
// are absolute steady_clock times from its admission.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include <boost/json/object.hpp>

#include "common/clock/clock.hpp"
#include "common/http/server.hpp"
#include "mocks/llm/faults.hpp"
#include "mocks/llm/profile.hpp"

namespace lab::mocks::llm {

struct MockLlmOptions {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;  ///< 0: the OS picks; read it back with port()
  int threads = 1;
};

class MockLlm {
 public:
  /// `seed` drives every random choice (tokens, latencies, faults, ids).
  MockLlm(Profile profile, Clock& clock, std::uint64_t seed, MockLlmOptions options = {});
  ~MockLlm();  ///< stop()
  MockLlm(const MockLlm&) = delete;
  MockLlm& operator=(const MockLlm&) = delete;

  /// Binds and starts serving (throws std::system_error naming the address on failure).
  void start();
  /// Stops accepting, gives open exchanges `drain` to finish (streams end early: they see
  /// Exchange::closed()), then closes everything. Idempotent.
  void stop(std::chrono::milliseconds drain = std::chrono::milliseconds(2000));

  std::uint16_t port() const;
  /// "http://HOST:PORT" (the base URL for the SDKs is url() + "/v1" for OpenAI, url() for
  /// Anthropic).
  std::string url() const;

  /// Fault rules, as the admin API manages them. Thread-safe.
  std::uint64_t add_fault(const FaultRule& rule);
  bool remove_fault(std::uint64_t id);
  void clear_faults();
  boost::json::object faults() const;

  /// The /metrics text.
  std::string metrics_text();
  /// Batch state now (sequences generating, requests waiting).
  int running() const;
  int waiting() const;
  const Profile& profile() const;
  const http::ServerStats& server_stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lab::mocks::llm
