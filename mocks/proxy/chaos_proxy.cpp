#include "mocks/proxy/chaos_proxy.hpp"

#include "mocks/proxy/api.hpp"

namespace lab::mocks::proxy {

namespace {

/// The API's limits: control requests are small and few.
constexpr std::size_t kApiBodyLimit = 1 << 20;
constexpr std::size_t kApiMaxConnections = 256;
constexpr std::chrono::milliseconds kApiReadTimeout{15'000};  // Toxiproxy's read_timeout
constexpr std::chrono::milliseconds kApiIdleTimeout{60'000};  // and its IdleTimeout

}  // namespace

ChaosProxy::ChaosProxy(ChaosProxyOptions options)
    : options_(std::move(options)),
      registry_(std::make_unique<Registry>(options_.data, options_.limits)) {
  http::ServerOptions server;
  server.address = options_.host;
  server.port = options_.port;
  server.threads = 1;
  server.body_limit = kApiBodyLimit;
  server.read_timeout = kApiReadTimeout;
  server.idle_timeout = kApiIdleTimeout;
  server.max_connections = kApiMaxConnections;
  server.server_name = "agentlab-chaos-proxy";
  server_ = std::make_unique<http::Server>(server, make_api_handler(*registry_));
}

ChaosProxy::~ChaosProxy() { stop(); }

void ChaosProxy::start() {
  if (started_) return;
  registry_->start();
  server_->start();
  started_ = true;
}

void ChaosProxy::stop() {
  if (!started_ || stopped_) return;
  stopped_ = true;
  server_->stop(std::chrono::milliseconds(500));
  registry_->stop();
}

std::uint16_t ChaosProxy::port() const { return server_->port(); }

std::string ChaosProxy::url() const { return server_->url(); }

Registry& ChaosProxy::registry() { return *registry_; }

const http::ServerStats& ChaosProxy::api_stats() const { return server_->stats(); }

}  // namespace lab::mocks::proxy
