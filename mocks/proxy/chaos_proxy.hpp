#pragma once
// The chaos proxy: a TCP fault-injection proxy whose HTTP API is Shopify Toxiproxy's (see
// api.hpp), so Toxiproxy's client libraries drive it unchanged and a real Toxiproxy can take
// its place. For tests and the harness's embedded stack:
//
//   ChaosProxy proxy;                 // API on 127.0.0.1, OS-chosen port
//   proxy.start();
//   http::post(proxy.url() + "/proxies", {"name":"redis","listen":"127.0.0.1:0",
//                                         "upstream":"127.0.0.1:6379"})
//   proxy.registry().add_toxic("redis", latency)   // or in-process, same rules
//   proxy.stop();
//
// Toxics: latency (+jitter), bandwidth, slow_close, timeout, reset_peer, slicer, limit_data,
// each on the upstream or downstream stream with a per-connection toxicity; "down" is
// enabled=false. Randomness (toxicity, jitter, slicer sizes) comes from the seed.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "common/http/server.hpp"
#include "mocks/proxy/link.hpp"
#include "mocks/proxy/registry.hpp"

namespace lab::mocks::proxy {

struct ChaosProxyOptions {
  std::string host = "127.0.0.1";  ///< API address
  std::uint16_t port = 0;          ///< API port; 0 = OS-chosen (the CLI defaults to 8474)
  DataPlaneOptions data;           ///< threads, seed, timeouts and buffer bounds of the streams
  RegistryLimits limits;
};

class ChaosProxy {
 public:
  explicit ChaosProxy(ChaosProxyOptions options = {});
  ~ChaosProxy();  ///< stop()
  ChaosProxy(const ChaosProxy&) = delete;
  ChaosProxy& operator=(const ChaosProxy&) = delete;

  /// Starts the data-plane threads and the API server (throws std::system_error naming the
  /// address when the API cannot bind).
  void start();
  /// Stops the API, then closes every proxy listener and connection. Idempotent.
  void stop();

  std::uint16_t port() const;
  /// "http://HOST:PORT" of the API.
  std::string url() const;

  /// The proxies and toxics, for in-process control (same rules and errors as the API).
  Registry& registry();
  const http::ServerStats& api_stats() const;

 private:
  ChaosProxyOptions options_;
  std::unique_ptr<Registry> registry_;
  std::unique_ptr<http::Server> server_;
  bool started_ = false;
  bool stopped_ = false;
};

}  // namespace lab::mocks::proxy
