#pragma once
// The proxies and their toxics, with Toxiproxy's rules, and the data-plane threads that move
// their bytes. The HTTP API (api.hpp) is a thin JSON layer over this; in-process users (tests,
// the harness's embedded stack) may call it directly with the same semantics.
//
// Errors carry Toxiproxy's HTTP status and message: 400 bad input, 404 unknown proxy or toxic,
// 409 duplicate name, 500 a listener that cannot bind.
//
// Thread-safety: every method may be called from any thread except a data-plane thread (that
// would deadlock; it aborts with a message). Calls are serialised. A call that changes toxics
// or disables a proxy returns after every live connection has seen the change.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "mocks/proxy/link.hpp"
#include "mocks/proxy/toxic.hpp"

namespace lab::mocks::proxy {

struct ApiError {
  int status = 500;
  std::string message;
};

/// A value or an ApiError.
template <class T>
class Result {
 public:
  Result(T value) : v_(std::move(value)) {}         // NOLINT: implicit by design
  Result(ApiError error) : v_(std::move(error)) {}  // NOLINT
  bool ok() const { return v_.index() == 0; }
  T& value() { return std::get<0>(v_); }
  const T& value() const { return std::get<0>(v_); }
  const ApiError& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, ApiError> v_;
};

/// What POST /proxies and /populate take.
struct ProxyConfig {
  std::string name;
  std::string listen;  ///< "host:port"; port 0 = any free port; "" = "127.0.0.1:0"
  std::string upstream;
  bool enabled = true;
};

/// What POST /proxies/{name} changes; absent fields keep their values.
struct ProxyUpdate {
  std::optional<std::string> listen;
  std::optional<std::string> upstream;
  std::optional<bool> enabled;
};

/// A proxy as the API shows it. `listen` is the bound address (the real port).
struct ProxyInfo {
  std::string name;
  std::string listen;
  std::string upstream;
  bool enabled = false;
  std::vector<Toxic> toxics;  ///< upstream toxics first, each direction in chain order
};

struct ProxyStats {
  std::string name;
  std::string listen;
  std::string upstream;
  std::uint64_t connections_accepted = 0;
  std::uint64_t connections_open = 0;
  std::uint64_t connections_rejected = 0;
  std::uint64_t upstream_failures = 0;
  std::uint64_t closed_by_toxic = 0;
  std::uint64_t received_bytes[kDirections] = {0, 0};  ///< read from the source, per direction
  std::uint64_t sent_bytes[kDirections] = {0, 0};      ///< written to the destination
};

struct RegistryLimits {
  std::size_t max_proxies = 1024;
  std::size_t max_toxics_per_proxy = 64;
};

class Registry {
 public:
  explicit Registry(DataPlaneOptions options = {}, RegistryLimits limits = {});
  ~Registry();  ///< stop()
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  /// Starts the data-plane threads. Other calls need it first.
  void start();
  /// Closes every listener and connection and joins the threads. Idempotent.
  void stop();

  /// POST /proxies: 201 in the API. 409 if the name exists, 400 without name or upstream.
  Result<ProxyInfo> create_proxy(const ProxyConfig& config);
  /// POST /populate: creates or replaces proxies; a proxy whose listen and upstream match the
  /// existing one (a listen of port 0 matches the port it got) is left as it is. Listeners
  /// are bound before anything changes, so a failure leaves the proxies as they were.
  Result<std::vector<ProxyInfo>> populate(const std::vector<ProxyConfig>& configs);
  std::vector<ProxyInfo> proxies() const;  ///< sorted by name
  Result<ProxyInfo> proxy(const std::string& name) const;
  /// Changing listen or upstream restarts the proxy (its connections close).
  Result<ProxyInfo> update_proxy(const std::string& name, const ProxyUpdate& update);
  std::optional<ApiError> delete_proxy(const std::string& name);

  Result<std::vector<Toxic>> toxics(const std::string& proxy) const;
  Result<Toxic> toxic(const std::string& proxy, const std::string& name) const;
  /// Adds a toxic (its name defaults to "<type>_<stream>"); it acts on open connections too.
  Result<Toxic> add_toxic(const std::string& proxy, Toxic toxic);
  /// Applies `change` to a copy of the toxic (name, type and stream are kept), validates and
  /// installs it. `change` returns an error message or "".
  Result<Toxic> update_toxic(const std::string& proxy, const std::string& name,
                             const std::function<std::string(Toxic&)>& change);
  std::optional<ApiError> remove_toxic(const std::string& proxy, const std::string& name);
  /// POST /reset: enables every proxy and removes every toxic.
  std::optional<ApiError> reset();

  std::vector<ProxyStats> stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lab::mocks::proxy
