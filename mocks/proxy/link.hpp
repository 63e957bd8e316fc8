#pragma once
// The data plane's shared pieces: the shards (io_context + thread + RNG), the state a proxy
// shares with its live connections, and the entry points the registry uses to start, update
// and close connections. Internal to mocks/proxy (the registry is the public face).
//
// Threading: a connection lives on one shard for its whole life; its links, timers and toxic
// state are touched only there, so they need no locks. ProxyState::mutex guards what the
// control plane changes (upstream, toxic chains, epoch); connections read it when they start.
// ProxyState::connections[i] is touched only on shard i's thread.

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "mocks/proxy/toxic.hpp"

namespace lab::mocks::proxy {

/// Limits and timeouts of the proxied TCP streams.
struct DataPlaneOptions {
  int threads = 1;         ///< data-plane threads (each an io_context); connections round-robin
  std::uint64_t seed = 1;  ///< seeds toxicity draws, jitter and slicer sizes (per shard)
  std::chrono::milliseconds connect_timeout{5'000};  ///< dialling the upstream
  /// One write to a peer that does not read. Toxics slow the *proxy's* pace, not the peer's,
  /// so this only catches stuck peers.
  std::chrono::milliseconds write_timeout{60'000};
  /// No byte in either direction for this long closes the connection; 0 = never. Long by
  /// default because a `timeout` toxic of 0 legitimately holds a connection silent.
  std::chrono::milliseconds idle_timeout{3'600'000};
  std::size_t max_connections_per_proxy = 4096;  ///< over it, new clients are closed at once
  std::size_t buffer_bytes = 256 * 1024;  ///< bytes read ahead per direction (then backpressure)
  std::size_t read_chunk_bytes = 32 * 1024;
};

namespace detail {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

/// One data-plane thread and everything that lives only on it.
struct Shard {
  explicit Shard(int i, std::uint64_t seed) : index(i), rng(seed) {}
  const int index;
  asio::io_context ctx{1};
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::thread thread;
  std::mt19937_64 rng;  ///< shard thread only
};

/// The toxics of one direction, in the order they were added (Toxiproxy's chain order).
using Chain = std::vector<std::shared_ptr<const Toxic>>;
using Chains = std::array<std::shared_ptr<const Chain>, kDirections>;

struct ProxyCounters {
  std::atomic<std::uint64_t> accepted{0};
  std::atomic<std::uint64_t> open{0};
  std::atomic<std::uint64_t> rejected{0};           ///< over max_connections_per_proxy
  std::atomic<std::uint64_t> upstream_failures{0};  ///< resolve/connect failed or timed out
  std::atomic<std::uint64_t> closed_by_toxic{0};    ///< timeout, reset_peer, limit_data
  std::array<std::atomic<std::uint64_t>, kDirections> received{};  ///< bytes read, per direction
  std::array<std::atomic<std::uint64_t>, kDirections> sent{};      ///< bytes written
};

class Connection;

/// What a proxy shares with its connections; outlives both (shared_ptr).
struct ProxyState {
  ProxyState(std::string proxy_name, std::size_t shards)
      : name(std::move(proxy_name)), connections(shards) {}
  const std::string name;

  mutable std::mutex mutex;  ///< guards the four fields below
  std::string upstream;
  Chains chains;
  std::uint64_t epoch = 0;  ///< grows on every stop; a connection from an older epoch closes
  bool running = false;

  std::vector<std::unordered_set<Connection*>> connections;  ///< [shard], shard thread only
  ProxyCounters counters;
};

/// Starts proxying an accepted client on `shard` (the socket belongs to shard.ctx). `epoch` is
/// the proxy's epoch when the listener that accepted it started. Call from any thread.
void start_connection(std::shared_ptr<ProxyState> proxy, Shard& shard,
                      const DataPlaneOptions& options, tcp::socket client, std::uint64_t epoch);

/// On shard's thread: hands the proxy's live connections there the current chains (toxics
/// added, removed or updated act on open connections too).
void update_connections(ProxyState& proxy, Shard& shard, const Chains& chains);

/// On shard's thread: closes every connection of the proxy there (disable, delete, stop).
void close_connections(ProxyState& proxy, Shard& shard);

}  // namespace detail
}  // namespace lab::mocks::proxy
