// Proxies, toxics and the data-plane threads (see registry.hpp for the rules).
//
// Control calls hold mutex_ for their whole length; they change a proxy's Entry, then tell
// the data plane: the ProxyState fields (under its own mutex) for connections that start
// later, and a task posted to every shard — and waited for — for the connections that are
// open. Listeners are acceptors on shard 0; accepted sockets go round-robin to the shards.

#include "mocks/proxy/registry.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <future>
#include <map>
#include <set>
#include <thread>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "mocks/proxy/address.hpp"

namespace lab::mocks::proxy {

namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;
using detail::Chain;
using detail::Chains;
using detail::ProxyState;
using detail::Shard;

constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
/// Pause after a failed accept (EMFILE and the like) so the loop does not spin.
constexpr std::chrono::milliseconds kAcceptRetryDelay{50};
constexpr const char* kDefaultListen = "127.0.0.1:0";

ApiError bad_request(std::string message) { return {400, std::move(message)}; }
ApiError proxy_not_found() { return {404, "proxy not found"}; }
ApiError toxic_not_found() { return {404, "toxic not found"}; }

struct Listener {
  explicit Listener(asio::io_context& ctx) : acceptor(ctx) {}
  tcp::acceptor acceptor;
};

/// A proxy on the control side.
struct Entry {
  std::shared_ptr<ProxyState> state;
  std::string listen;            ///< the bound address once bound; what the API shows
  std::string requested_listen;  ///< as configured (port 0 stays 0), for /populate's compare
  std::string upstream;
  bool enabled = false;
  std::array<Chain, kDirections> toxics;
  std::shared_ptr<Listener> listener;
};

std::string listen_or_default(const std::string& listen) {
  return listen.empty() ? kDefaultListen : listen;
}

std::optional<ApiError> check_upstream(const std::string& upstream) {
  std::string why;
  const auto target = parse_host_port(upstream, &why);
  if (!target) return bad_request("invalid upstream: " + why);
  if (target->port == 0) return bad_request("invalid upstream: port 0");
  return std::nullopt;
}

std::optional<ApiError> check_listen(const std::string& listen) {
  std::string why;
  if (!parse_host_port(listen_or_default(listen), &why)) return bad_request("invalid listen: " + why);
  return std::nullopt;
}

Toxic* find_toxic(Entry& e, const std::string& name, Direction* dir = nullptr,
                  std::size_t* index = nullptr) {
  for (int d = 0; d < kDirections; ++d) {
    auto& chain = e.toxics[static_cast<std::size_t>(d)];
    for (std::size_t i = 0; i < chain.size(); ++i) {
      if (chain[i]->name == name) {
        if (dir != nullptr) *dir = static_cast<Direction>(d);
        if (index != nullptr) *index = i;
        return const_cast<Toxic*>(chain[i].get());
      }
    }
  }
  return nullptr;
}

std::size_t toxic_count(const Entry& e) { return e.toxics[0].size() + e.toxics[1].size(); }

void log_accept_failure(const std::exception_ptr& error) {
  if (!error) return;
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& ex) {
    std::fprintf(stderr, "chaos-proxy: accept loop: %s\n", ex.what());
  }
}

}  // namespace

struct Registry::Impl {
  Impl(DataPlaneOptions o, RegistryLimits l) : options(std::move(o)), limits(l) {}

  DataPlaneOptions options;
  RegistryLimits limits;
  std::vector<std::unique_ptr<Shard>> shards;
  bool started = false;
  bool stopped = false;
  mutable std::mutex mutex;  ///< serialises control calls
  std::map<std::string, Entry> proxies;
  std::uint64_t next_toxic_id = 1;
  std::atomic<std::size_t> next_shard{0};

  void check_thread() const {
    for (const auto& shard : shards) {
      if (shard->thread.get_id() == std::this_thread::get_id()) {
        std::fprintf(stderr, "chaos-proxy: Registry called from a data-plane thread\n");
        std::abort();
      }
    }
  }

  /// Why a control call cannot run now, if it cannot (aborts on a data-plane thread).
  std::optional<ApiError> usable() const {
    check_thread();
    if (!started) return ApiError{503, "chaos proxy not started"};
    if (stopped) return ApiError{503, "chaos proxy stopped"};
    return std::nullopt;
  }

  /// Runs fn on the shard's thread and waits for it.
  template <class F>
  void run_on(Shard& shard, F fn) {
    if (!started || stopped) {
      fn();
      return;
    }
    std::promise<void> done;
    auto finished = done.get_future();
    asio::post(shard.ctx, [&] {
      fn();
      done.set_value();
    });
    finished.wait();
  }

  Shard& pick_shard() { return *shards[next_shard.fetch_add(1) % shards.size()]; }

  static asio::awaitable<void> accept_loop(Impl* impl, std::shared_ptr<Listener> listener,
                                           std::shared_ptr<ProxyState> state, std::uint64_t epoch) {
    tcp::acceptor& acceptor = listener->acceptor;
    asio::steady_timer backoff(acceptor.get_executor());
    for (;;) {
      Shard& shard = impl->pick_shard();
      auto [ec, socket] = co_await acceptor.async_accept(shard.ctx, kNoThrow);
      if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
      if (ec) {
        backoff.expires_after(kAcceptRetryDelay);
        co_await backoff.async_wait(kNoThrow);
        continue;
      }
      if (state->counters.open.load() >= impl->options.max_connections_per_proxy) {
        state->counters.rejected.fetch_add(1, std::memory_order_relaxed);
        error_code ignored;
        socket.close(ignored);
        continue;
      }
      state->counters.accepted.fetch_add(1, std::memory_order_relaxed);
      detail::start_connection(state, shard, impl->options, std::move(socket), epoch);
    }
  }

  /// Binds and listens (synchronously, so the real port is known at once).
  Result<std::shared_ptr<Listener>> bind(const std::string& listen) {
    const std::string text = listen_or_default(listen);
    std::string why;
    const auto where = parse_host_port(text, &why);
    if (!where) return bad_request("invalid listen: " + why);
    auto fail = [&](const error_code& ec) {
      return ApiError{500, "listen tcp " + text + ": " + ec.message()};
    };
    asio::io_context& ctx = shards.front()->ctx;
    error_code ec;
    tcp::endpoint endpoint;
    const std::string host = where->host.empty() ? "0.0.0.0" : where->host;
    const auto address = asio::ip::make_address(host, ec);
    if (!ec) {
      endpoint = tcp::endpoint(address, where->port);
    } else {
      tcp::resolver resolver(ctx);
      const auto results =
          resolver.resolve(host, std::to_string(where->port), tcp::resolver::passive, ec);
      if (ec || results.empty()) return fail(ec ? ec : asio::error::host_not_found);
      endpoint = *results.begin();
    }
    auto listener = std::make_shared<Listener>(ctx);
    tcp::acceptor& a = listener->acceptor;
    a.open(endpoint.protocol(), ec);
    if (ec) return fail(ec);
    a.set_option(asio::socket_base::reuse_address(true), ec);
    if (ec) return fail(ec);
    a.bind(endpoint, ec);
    if (ec) return fail(ec);
    a.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) return fail(ec);
    return listener;
  }

  /// Marks the proxy running and starts accepting on `listener`.
  void start_accepting(Entry& e, std::shared_ptr<Listener> listener) {
    error_code ec;
    const auto local = listener->acceptor.local_endpoint(ec);
    if (!ec) e.listen = format_endpoint(local);
    std::uint64_t epoch = 0;
    {
      std::lock_guard lock(e.state->mutex);
      e.state->running = true;
      e.state->upstream = e.upstream;
      epoch = e.state->epoch;
    }
    e.listener = listener;
    e.enabled = true;
    asio::co_spawn(shards.front()->ctx, accept_loop(this, std::move(listener), e.state, epoch),
                   log_accept_failure);
  }

  std::optional<ApiError> start_entry(Entry& e) {
    if (e.enabled) return std::nullopt;
    auto listener = bind(e.listen);
    if (!listener.ok()) return listener.error();
    start_accepting(e, std::move(listener.value()));
    return std::nullopt;
  }

  /// Closes the listener, then every connection; returns when all are closed.
  void stop_entry(Entry& e) {
    if (!e.enabled) return;
    e.enabled = false;
    {
      std::lock_guard lock(e.state->mutex);
      e.state->running = false;
      ++e.state->epoch;
    }
    std::shared_ptr<Listener> listener = std::move(e.listener);
    if (listener) {
      run_on(*shards.front(), [&] {
        error_code ignored;
        listener->acceptor.close(ignored);
      });
    }
    for (auto& shard : shards) {
      run_on(*shard, [&] { detail::close_connections(*e.state, *shard); });
    }
  }

  /// Publishes the entry's toxics to new and open connections.
  void publish(Entry& e) {
    Chains chains;
    for (int d = 0; d < kDirections; ++d) {
      chains[static_cast<std::size_t>(d)] =
          std::make_shared<const Chain>(e.toxics[static_cast<std::size_t>(d)]);
    }
    {
      std::lock_guard lock(e.state->mutex);
      e.state->chains = chains;
    }
    for (auto& shard : shards) {
      run_on(*shard, [&] { detail::update_connections(*e.state, *shard, chains); });
    }
  }

  Entry make_entry(const ProxyConfig& c) const {
    Entry e;
    e.state = std::make_shared<ProxyState>(c.name, shards.size());
    e.requested_listen = listen_or_default(c.listen);
    e.listen = e.requested_listen;
    e.upstream = c.upstream;
    for (auto& chain : e.state->chains) chain = std::make_shared<const Chain>();
    {
      std::lock_guard lock(e.state->mutex);
      e.state->upstream = c.upstream;
    }
    return e;
  }

  static ProxyInfo info(const std::string& name, const Entry& e) {
    ProxyInfo out{name, e.listen, e.upstream, e.enabled, {}};
    for (const auto& chain : e.toxics) {
      for (const auto& t : chain) out.toxics.push_back(*t);
    }
    return out;
  }

  /// Whether /populate's config asks for something other than what the entry is.
  static bool differs(const Entry& e, const ProxyConfig& c) {
    const std::string listen = listen_or_default(c.listen);
    return c.upstream != e.upstream || (listen != e.listen && listen != e.requested_listen);
  }

  void shutdown() {
    for (auto& [name, e] : proxies) stop_entry(e);
    for (auto& shard : shards) {
      shard->work.reset();
      shard->ctx.stop();
    }
    for (auto& shard : shards) {
      if (shard->thread.joinable()) shard->thread.join();
    }
    stopped = true;
    // Destroying the io_contexts destroys what is left (closed connections' frames).
    shards.clear();
    proxies.clear();
  }
};

Registry::Registry(DataPlaneOptions options, RegistryLimits limits)
    : impl_(std::make_unique<Impl>(std::move(options), limits)) {
  const int threads = std::max(1, impl_->options.threads);
  for (int i = 0; i < threads; ++i) {
    // Each shard's RNG gets its own stream of the seed (splitmix-style spacing).
    const std::uint64_t seed = impl_->options.seed + 0x9E3779B97F4A7C15ULL * static_cast<std::uint64_t>(i);
    impl_->shards.push_back(std::make_unique<Shard>(i, seed));
  }
}

Registry::~Registry() { stop(); }

void Registry::start() {
  std::lock_guard lock(impl_->mutex);
  if (impl_->started) return;
  for (auto& shard : impl_->shards) {
    shard->work.emplace(shard->ctx.get_executor());
    shard->thread = std::thread([ctx = &shard->ctx] {
      for (;;) {
        try {
          ctx->run();
          return;
        } catch (const std::exception& e) {
          std::fprintf(stderr, "chaos-proxy: data-plane thread: %s\n", e.what());
        }
      }
    });
  }
  impl_->started = true;
}

void Registry::stop() {
  std::lock_guard lock(impl_->mutex);
  if (!impl_->started || impl_->stopped) return;
  impl_->check_thread();
  impl_->shutdown();
}

Result<ProxyInfo> Registry::create_proxy(const ProxyConfig& config) {
  std::lock_guard lock(impl_->mutex);
  if (auto err = impl_->usable()) return *err;
  if (config.name.empty()) return bad_request("missing required field: name");
  if (config.upstream.empty()) return bad_request("missing required field: upstream");
  if (auto err = check_upstream(config.upstream)) return *err;
  if (auto err = check_listen(config.listen)) return *err;
  if (impl_->proxies.contains(config.name)) return ApiError{409, "proxy already exists"};
  if (impl_->proxies.size() >= impl_->limits.max_proxies) {
    return bad_request("too many proxies (limit " + std::to_string(impl_->limits.max_proxies) + ")");
  }
  Entry e = impl_->make_entry(config);
  if (config.enabled) {
    if (auto err = impl_->start_entry(e)) return *err;
  }
  auto [it, inserted] = impl_->proxies.emplace(config.name, std::move(e));
  (void)inserted;
  return Impl::info(it->first, it->second);
}

Result<std::vector<ProxyInfo>> Registry::populate(const std::vector<ProxyConfig>& configs) {
  std::lock_guard lock(impl_->mutex);
  if (auto err = impl_->usable()) return *err;
  // 1. Validate everything before changing anything.
  std::set<std::string> names;
  std::size_t added = 0;
  for (std::size_t i = 0; i < configs.size(); ++i) {
    const ProxyConfig& c = configs[i];
    const std::string at = " at proxy " + std::to_string(i + 1);
    if (c.name.empty()) return bad_request("missing required field: name" + at);
    if (c.upstream.empty()) return bad_request("missing required field: upstream" + at);
    if (!names.insert(c.name).second) return bad_request("duplicate proxy name \"" + c.name + "\"");
    if (auto err = check_upstream(c.upstream)) return ApiError{400, err->message + at};
    if (auto err = check_listen(c.listen)) return ApiError{400, err->message + at};
    if (!impl_->proxies.contains(c.name)) ++added;
  }
  if (impl_->proxies.size() + added > impl_->limits.max_proxies) {
    return bad_request("too many proxies (limit " + std::to_string(impl_->limits.max_proxies) + ")");
  }

  // 2. Decide, and bind the new listeners that cannot clash with a proxy being replaced.
  struct Item {
    const ProxyConfig* config;
    Entry* existing = nullptr;
    bool keep = false;
    bool bind_after_stop = false;  ///< reuses the port of the proxy it replaces
    std::shared_ptr<Listener> listener;
  };
  std::vector<Item> items;
  for (const ProxyConfig& c : configs) {
    Item item{&c};
    const auto it = impl_->proxies.find(c.name);
    if (it != impl_->proxies.end()) {
      item.existing = &it->second;
      item.keep = !Impl::differs(it->second, c);
    }
    items.push_back(std::move(item));
  }
  for (Item& item : items) {
    if (item.keep || !item.config->enabled) continue;
    const auto want = parse_host_port(listen_or_default(item.config->listen));
    if (item.existing != nullptr && item.existing->enabled && want->port != 0) {
      const auto have = parse_host_port(item.existing->listen);
      if (have && have->port == want->port) {
        item.bind_after_stop = true;
        continue;
      }
    }
    auto listener = impl_->bind(item.config->listen);
    if (!listener.ok()) return listener.error();  // reserved listeners close as items go
    item.listener = std::move(listener.value());
  }

  // 3. Apply.
  std::vector<ProxyInfo> out;
  for (Item& item : items) {
    const ProxyConfig& c = *item.config;
    if (item.keep) {
      out.push_back(Impl::info(c.name, *item.existing));
      continue;
    }
    if (item.existing != nullptr) {
      impl_->stop_entry(*item.existing);
      impl_->proxies.erase(c.name);
    }
    Entry e = impl_->make_entry(c);
    if (item.bind_after_stop) {
      auto listener = impl_->bind(c.listen);
      if (!listener.ok()) return listener.error();
      item.listener = std::move(listener.value());
    }
    if (item.listener) impl_->start_accepting(e, std::move(item.listener));
    auto [it, inserted] = impl_->proxies.emplace(c.name, std::move(e));
    (void)inserted;
    out.push_back(Impl::info(it->first, it->second));
  }
  return out;
}

std::vector<ProxyInfo> Registry::proxies() const {
  std::lock_guard lock(impl_->mutex);
  std::vector<ProxyInfo> out;
  for (const auto& [name, e] : impl_->proxies) out.push_back(Impl::info(name, e));
  return out;
}

Result<ProxyInfo> Registry::proxy(const std::string& name) const {
  std::lock_guard lock(impl_->mutex);
  const auto it = impl_->proxies.find(name);
  if (it == impl_->proxies.end()) return proxy_not_found();
  return Impl::info(name, it->second);
}

Result<ProxyInfo> Registry::update_proxy(const std::string& name, const ProxyUpdate& update) {
  std::lock_guard lock(impl_->mutex);
  if (auto err = impl_->usable()) return *err;
  const auto it = impl_->proxies.find(name);
  if (it == impl_->proxies.end()) return proxy_not_found();
  Entry& e = it->second;
  const std::string listen = update.listen ? listen_or_default(*update.listen) : e.listen;
  const std::string upstream = update.upstream.value_or(e.upstream);
  const bool enabled = update.enabled.value_or(e.enabled);
  if (auto err = check_upstream(upstream)) return *err;
  if (auto err = check_listen(listen)) return *err;
  if (listen != e.listen || upstream != e.upstream) {
    impl_->stop_entry(e);
    e.listen = listen;
    e.requested_listen = listen;
    e.upstream = upstream;
    std::lock_guard state_lock(e.state->mutex);
    e.state->upstream = upstream;
  }
  if (enabled && !e.enabled) {
    if (auto err = impl_->start_entry(e)) return *err;
  } else if (!enabled) {
    impl_->stop_entry(e);
  }
  return Impl::info(name, e);
}

std::optional<ApiError> Registry::delete_proxy(const std::string& name) {
  std::lock_guard lock(impl_->mutex);
  if (auto err = impl_->usable()) return *err;
  const auto it = impl_->proxies.find(name);
  if (it == impl_->proxies.end()) return proxy_not_found();
  impl_->stop_entry(it->second);
  impl_->proxies.erase(it);
  return std::nullopt;
}

Result<std::vector<Toxic>> Registry::toxics(const std::string& proxy) const {
  std::lock_guard lock(impl_->mutex);
  const auto it = impl_->proxies.find(proxy);
  if (it == impl_->proxies.end()) return proxy_not_found();
  return Impl::info(proxy, it->second).toxics;
}

Result<Toxic> Registry::toxic(const std::string& proxy, const std::string& name) const {
  std::lock_guard lock(impl_->mutex);
  const auto it = impl_->proxies.find(proxy);
  if (it == impl_->proxies.end()) return proxy_not_found();
  const Toxic* t = find_toxic(it->second, name);
  if (t == nullptr) return toxic_not_found();
  return *t;
}

Result<Toxic> Registry::add_toxic(const std::string& proxy, Toxic toxic) {
  std::lock_guard lock(impl_->mutex);
  if (auto err = impl_->usable()) return *err;
  const auto it = impl_->proxies.find(proxy);
  if (it == impl_->proxies.end()) return proxy_not_found();
  Entry& e = it->second;
  if (toxic.name.empty()) {
    toxic.name = std::string(to_string(toxic.type)) + "_" + std::string(to_string(toxic.stream));
  }
  if (find_toxic(e, toxic.name) != nullptr) return ApiError{409, "toxic already exists"};
  if (const std::string why = validate(toxic); !why.empty()) {
    return bad_request("bad request body: " + why);
  }
  if (toxic_count(e) >= impl_->limits.max_toxics_per_proxy) {
    return bad_request("too many toxics (limit " +
                       std::to_string(impl_->limits.max_toxics_per_proxy) + ")");
  }
  toxic.id = impl_->next_toxic_id++;
  toxic.revision = 0;
  e.toxics[static_cast<std::size_t>(toxic.stream)].push_back(std::make_shared<const Toxic>(toxic));
  impl_->publish(e);
  return toxic;
}

Result<Toxic> Registry::update_toxic(const std::string& proxy, const std::string& name,
                                     const std::function<std::string(Toxic&)>& change) {
  std::lock_guard lock(impl_->mutex);
  if (auto err = impl_->usable()) return *err;
  const auto it = impl_->proxies.find(proxy);
  if (it == impl_->proxies.end()) return proxy_not_found();
  Entry& e = it->second;
  Direction dir{};
  std::size_t index = 0;
  const Toxic* current = find_toxic(e, name, &dir, &index);
  if (current == nullptr) return toxic_not_found();
  Toxic updated = *current;
  if (const std::string why = change(updated); !why.empty()) {
    return bad_request("bad request body: " + why);
  }
  // Identity is not the caller's to change.
  updated.name = current->name;
  updated.type = current->type;
  updated.stream = current->stream;
  updated.id = current->id;
  updated.revision = current->revision + 1;
  if (const std::string why = validate(updated); !why.empty()) {
    return bad_request("bad request body: " + why);
  }
  e.toxics[static_cast<std::size_t>(dir)][index] = std::make_shared<const Toxic>(updated);
  impl_->publish(e);
  return updated;
}

std::optional<ApiError> Registry::remove_toxic(const std::string& proxy, const std::string& name) {
  std::lock_guard lock(impl_->mutex);
  if (auto err = impl_->usable()) return *err;
  const auto it = impl_->proxies.find(proxy);
  if (it == impl_->proxies.end()) return proxy_not_found();
  Entry& e = it->second;
  Direction dir{};
  std::size_t index = 0;
  if (find_toxic(e, name, &dir, &index) == nullptr) return toxic_not_found();
  auto& chain = e.toxics[static_cast<std::size_t>(dir)];
  chain.erase(chain.begin() + static_cast<std::ptrdiff_t>(index));
  impl_->publish(e);
  return std::nullopt;
}

std::optional<ApiError> Registry::reset() {
  std::lock_guard lock(impl_->mutex);
  if (auto err = impl_->usable()) return *err;
  for (auto& [name, e] : impl_->proxies) {
    if (auto err = impl_->start_entry(e)) return err;
    if (toxic_count(e) > 0) {
      for (auto& chain : e.toxics) chain.clear();
      impl_->publish(e);
    }
  }
  return std::nullopt;
}

std::vector<ProxyStats> Registry::stats() const {
  std::lock_guard lock(impl_->mutex);
  std::vector<ProxyStats> out;
  for (const auto& [name, e] : impl_->proxies) {
    const detail::ProxyCounters& c = e.state->counters;
    ProxyStats s;
    s.name = name;
    s.listen = e.listen;
    s.upstream = e.upstream;
    s.connections_accepted = c.accepted.load(std::memory_order_relaxed);
    s.connections_open = c.open.load(std::memory_order_relaxed);
    s.connections_rejected = c.rejected.load(std::memory_order_relaxed);
    s.upstream_failures = c.upstream_failures.load(std::memory_order_relaxed);
    s.closed_by_toxic = c.closed_by_toxic.load(std::memory_order_relaxed);
    for (std::size_t d = 0; d < kDirections; ++d) {
      s.received_bytes[d] = c.received[d].load(std::memory_order_relaxed);
      s.sent_bytes[d] = c.sent[d].load(std::memory_order_relaxed);
    }
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace lab::mocks::proxy
