#pragma once
// The runtime's HTTP API (DESIGN.md "Runtime HTTP API", after seed 000's API layer):
//
//   POST /api/agents {name, template?}            201 {id}
//   GET  /api/agents                              200 {agents:[…]} (the caller's)
//   GET  /api/agents/{id}                         200 {id, name, template, state, …}
//   POST /api/chat {agentId, message, priority?}  202 {taskId, streamUrl}; 503 + Retry-After
//                                                 (queue full, degraded, draining); 429 + Retry-After
//   POST /api/fork {agentId, checkpointId?, count≤10}  202 {forkIds, checkpointId}
//   GET  /api/stream/{taskId}                     SSE; Last-Event-ID (header or ?lastEventId=)
//   POST /api/agents/{id}/hibernate               202 {agentId, result}
//   POST /api/webhooks/membership {type, data:{user_id}}   200 {type, userId, agents}
//   GET  /api/system  /healthz  /readyz  /metrics
//
// Auth: every /api route but the webhook needs "Authorization: Bearer <JWT HS256>" (401
// otherwise); sub is the user id. An agent or task of another user is a 404, never a 403. The
// membership webhook is accepted when signed (X-Agentlab-Signature: sha256=HEX, an HMAC-SHA256
// of the body with the webhook secret) or when the bearer token's sub is the user it names.
//
// Errors are JSON {"error":{"message","type"}} with type = the rejection reason. Bodies over
// the server's limit get 413 from the server; messages over max_message_bytes get 413 here.
//
// Threading: handlers run on the HTTP server's io threads; every backend call is synchronous
// and short (the in-memory backends take one mutex). The SSE relay never blocks a thread: the
// bus callback (a worker's thread) queues events and posts a wake-up to the stream's executor.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include <boost/json/object.hpp>

#include "common/clock/clock.hpp"
#include "common/http/router.hpp"
#include "runtime/api/agent_store.hpp"
#include "runtime/api/event_bus.hpp"
#include "runtime/api/result.hpp"
#include "runtime/api/task_queue.hpp"
#include "runtime/gateway/auth.hpp"
#include "runtime/gateway/rate_limiter.hpp"
#include "runtime/service/runtime_metrics.hpp"

namespace lab::runtime {

/// What the gateway needs from the rest of the runtime (the workers and the resilience state).
/// The Runtime implements it; gateway tests use a fake. All members are thread-safe and quick.
class ControlPlane {
 public:
  virtual ~ControlPlane() = default;
  /// False at degradation level 4 (maintenance): new chat tasks get 503.
  virtual bool accept_new_work() = 0;
  /// True once shutdown began: new chat tasks get 503, /readyz 503.
  virtual bool draining() = 0;
  /// The hibernate command: "hibernated", "deferred" (busy: hibernates when its turn ends) or
  /// "not_resident".
  virtual std::string hibernate(std::string_view agent_id) = 0;
  /// subscription.cancelled / subscription.renewed for a user; the number of agents changed.
  virtual Result<std::size_t> set_membership(std::string_view user_id, bool paused) = 0;
  /// The /api/system body.
  virtual boost::json::object system_snapshot() = 0;
  /// The /metrics text.
  virtual std::string metrics_text() = 0;
};

struct GatewayConfig {
  std::string jwt_secret = "agentlab-dev-secret";
  std::string webhook_secret;              ///< empty: the JWT secret
  std::size_t max_message_bytes = 32 * 1024;
  std::size_t max_name_bytes = 256;
  double user_rate_per_s = 0;              ///< POST /api/chat per user; 0 = unlimited
  double user_burst = 20;
  Nanos queue_full_retry_after = Seconds(1);
  Nanos degraded_retry_after = Seconds(5);
  std::size_t list_limit = 1000;           ///< GET /api/agents returns at most this many
  int max_forks = 10;
  Nanos stream_keepalive = Seconds(15);    ///< SSE comment when no event for this long
  Nanos stream_max_duration = Seconds(300);  ///< then the stream ends; resume with Last-Event-ID
  std::size_t stream_max_pending = 4096;   ///< events queued for a slow SSE client before it is cut
};

struct GatewayDeps {
  AgentStore& agents;
  TaskQueue& queue;
  EventBus& bus;
  ControlPlane& control;
  RuntimeMetrics& metrics;
  const Clock& clock;  ///< the rate limiter's time
  /// When set, the per-user chat rate is decided here (counters shared by every gateway
  /// process, on Redis) instead of by this gateway's own token buckets.
  std::function<RateDecision(std::string_view user_id)> shared_rate = {};
};

/// Which routes add_routes registers: all of them, or only the operational ones a worker
/// process serves (/api/system, /healthz, /readyz, /metrics).
enum class RouteSet { kAll, kOperations };

class Gateway {
 public:
  Gateway(GatewayConfig config, GatewayDeps deps);
  ~Gateway();
  Gateway(const Gateway&) = delete;
  Gateway& operator=(const Gateway&) = delete;

  /// Registers the routes above on `router`. The gateway must outlive the router's use.
  void add_routes(http::Router& router, RouteSet set = RouteSet::kAll);

  /// Drops idle rate-limit buckets (call periodically).
  void prune();

  const Authenticator& auth() const { return auth_; }

 private:
  struct Handlers;
  GatewayConfig config_;
  GatewayDeps deps_;
  Authenticator auth_;
  UserRateLimiter limiter_;
  std::unique_ptr<Handlers> handlers_;
};

}  // namespace lab::runtime
