#include "runtime/gateway/gateway.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <cmath>
#include <mutex>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/http/field.hpp>
#include <boost/json/array.hpp>
#include <boost/json/serialize.hpp>

#include "common/http/sse.hpp"
#include "common/text/json_util.hpp"

namespace lab::runtime {

namespace asio = boost::asio;
namespace bhttp = boost::beast::http;
namespace bj = boost::json;
using http::Exchange;
using http::PathParams;
using http::Status;

namespace {

constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
constexpr std::string_view kJson = "application/json";

std::string retry_after_seconds(Nanos d) {
  const auto s = std::max<std::int64_t>(1, static_cast<std::int64_t>(
                                               std::ceil(std::chrono::duration<double>(d).count())));
  return std::to_string(s);
}

using HeaderList = std::vector<std::pair<std::string, std::string>>;

/// Retry-After: 1 (a named helper: GCC 12 miscompiles braced lists as coroutine arguments).
HeaderList retry_in_one_second() {
  HeaderList h;
  h.emplace_back("Retry-After", "1");
  return h;
}

std::string_view header(const http::Request& req, std::string_view name) {
  const auto it = req.find(name);
  return it == req.end() ? std::string_view{} : std::string_view(it->value());
}

std::string_view header(const http::Request& req, bhttp::field name) {
  const auto it = req.find(name);
  return it == req.end() ? std::string_view{} : std::string_view(it->value());
}

/// A JSON object body, or the reason it is not one.
std::optional<bj::object> parse_object(std::string_view body, std::string& why) {
  if (body.empty()) {
    why = "expected a JSON object body";
    return std::nullopt;
  }
  std::string error;
  auto v = json::parse(body, &error);
  if (!v) {
    why = "malformed JSON: " + error;
    return std::nullopt;
  }
  if (!v->is_object()) {
    why = "expected a JSON object";
    return std::nullopt;
  }
  return std::move(v->get_object());
}

/// A string field: absent → nullopt, and `why` stays empty; present but not a non-empty string →
/// nullopt with `why` set.
std::optional<std::string> string_field(const bj::object& o, std::string_view name, std::string& why,
                                        bool required) {
  const bj::value* v = o.if_contains(name);
  if (v == nullptr || v->is_null()) {
    if (required) why = "missing field '" + std::string(name) + "'";
    return std::nullopt;
  }
  if (!v->is_string() || v->get_string().empty()) {
    why = "field '" + std::string(name) + "' must be a non-empty string";
    return std::nullopt;
  }
  return std::string(v->get_string());
}

bj::object agent_json(const AgentRecord& a) {
  bj::object o;
  o["id"] = a.id;
  o["name"] = a.name;
  o["template"] = a.template_id;
  o["state"] = to_string(a.state);
  o["messageCount"] = a.message_count;
  if (a.fork.is_fork()) {
    bj::object f;
    f["agentId"] = a.fork.parent_agent_id;
    f["checkpointId"] = a.fork.checkpoint_id;
    f["messageCount"] = a.fork.message_count;
    o["forkOf"] = std::move(f);
  }
  return o;
}

std::string hmac_hex(std::string_view key, std::string_view data) {
  std::array<unsigned char, 32> mac{};
  unsigned int len = 0;
  static const unsigned char kEmpty = 0;
  const void* k = key.empty() ? static_cast<const void*>(&kEmpty) : key.data();
  if (HMAC(EVP_sha256(), k, static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
           data.size(), mac.data(), &len) == nullptr) {
    std::abort();
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < len; ++i) {
    out += kHex[mac[i] >> 4];
    out += kHex[mac[i] & 0xF];
  }
  return out;
}

/// Events queued for one SSE client. The bus callback runs on the appending thread; the
/// stream's handler drains on its connection's executor.
struct SseFeed {
  explicit SseFeed(const asio::any_io_executor& ex, std::size_t max_pending)
      : executor(ex), timer(ex), max_pending(max_pending) {}
  asio::any_io_executor executor;
  asio::steady_timer timer;  // the handler waits on it; a posted cancel wakes it
  const std::size_t max_pending;
  std::mutex mutex;
  std::vector<Event> pending;  // guarded by mutex
  bool notified = false;       // guarded: a wake-up is posted and not yet consumed
  bool overflow = false;       // guarded: the client fell max_pending events behind
};

/// Runs a handler and records its duration. A coroutine with by-value parameters, so nothing
/// it uses lives in a lambda's captures.
template <class Fn>
asio::awaitable<void> run_timed(RuntimeMetrics* metrics, Route route, Fn fn, Exchange& ex,
                                const PathParams& params) {
  const auto started = std::chrono::steady_clock::now();
  co_await fn(ex, params);
  metrics->observe_request(route, std::chrono::steady_clock::now() - started);
}

}  // namespace

struct Gateway::Handlers {
  Gateway& g;

  // ---- helpers -------------------------------------------------------------------------------

  asio::awaitable<void> reply(Exchange& ex, Status status, std::string body,
                              std::vector<std::pair<std::string, std::string>> headers = {}) {
    http::Response res{status, ex.request().version()};
    res.set(bhttp::field::content_type, kJson);
    for (auto& [name, value] : headers) res.set(name, value);
    res.body() = std::move(body);
    co_await ex.respond(std::move(res));
  }

  asio::awaitable<void> reject(Exchange& ex, Rejection why, Status status, std::string_view message,
                               std::optional<Nanos> retry_after = std::nullopt) {
    g.deps_.metrics.count_rejection(why);
    std::vector<std::pair<std::string, std::string>> headers;
    if (retry_after) headers.emplace_back("Retry-After", retry_after_seconds(*retry_after));
    if (status == Status::unauthorized) headers.emplace_back("WWW-Authenticate", "Bearer");
    co_await reply(ex, status, http::json_error(message, to_string(why)), std::move(headers));
  }

  /// The caller's user id, or nullopt after answering 401.
  asio::awaitable<std::optional<std::string>> authenticate(Exchange& ex) {
    std::string why;
    auto user = g.auth_.user_of(header(ex.request(), bhttp::field::authorization), &why);
    if (!user) co_await reject(ex, Rejection::kUnauthorized, Status::unauthorized, why);
    co_return user;
  }

  /// The caller's agent, or nullopt after answering 404 (unknown, or another user's).
  asio::awaitable<std::optional<AgentRecord>> owned_agent(Exchange& ex, std::string_view user,
                                                          std::string_view agent_id) {
    auto rec = g.deps_.agents.get_agent(agent_id);
    if (rec.ok() && rec->user_id == user) co_return std::move(*rec);
    if (!rec.ok() && rec.error() != Errc::kNotFound) {
      co_await reply(ex, Status::service_unavailable,
                     http::json_error("agent store unavailable: " + rec.error().message(), "unavailable"),
                     retry_in_one_second());
      co_return std::nullopt;
    }
    co_await reject(ex, Rejection::kNotFound, Status::not_found, "agent not found");
    co_return std::nullopt;
  }

  asio::awaitable<std::optional<bj::object>> body_object(Exchange& ex) {
    std::string why;
    auto obj = parse_object(ex.request().body(), why);
    if (!obj) co_await reject(ex, Rejection::kBadRequest, Status::bad_request, why);
    co_return obj;
  }

  // ---- routes --------------------------------------------------------------------------------

  asio::awaitable<void> create_agent(Exchange& ex) {
    auto user = co_await authenticate(ex);
    if (!user) co_return;
    auto body = co_await body_object(ex);
    if (!body) co_return;
    std::string why;
    auto name = string_field(*body, "name", why, true);
    auto tmpl = string_field(*body, "template", why, false);
    if (!why.empty()) co_return co_await reject(ex, Rejection::kBadRequest, Status::bad_request, why);
    if (name->size() > g.config_.max_name_bytes || (tmpl && tmpl->size() > g.config_.max_name_bytes)) {
      co_return co_await reject(ex, Rejection::kBadRequest, Status::bad_request,
                                "name and template are limited to " + std::to_string(g.config_.max_name_bytes) +
                                    " bytes");
    }
    NewAgent na{Authenticator::random_id("a"), *user, std::move(*name), tmpl ? std::move(*tmpl) : "default"};
    auto rec = g.deps_.agents.create_agent(na);
    if (!rec.ok()) {
      if (rec.error() == Errc::kLimitExceeded) {
        co_return co_await reject(ex, Rejection::kStoreFull, Status::insufficient_storage,
                                  "the agent store is full");
      }
      co_return co_await reply(ex, Status::service_unavailable,
                               http::json_error("agent store: " + rec.error().message(), "unavailable"),
                               retry_in_one_second());
    }
    bj::object out = agent_json(*rec);
    co_await reply(ex, Status::created, bj::serialize(out));
  }

  asio::awaitable<void> list_agents(Exchange& ex) {
    auto user = co_await authenticate(ex);
    if (!user) co_return;
    std::size_t limit = g.config_.list_limit;
    if (auto q = http::query_param(ex.request().target(), "limit")) {
      std::size_t v = 0;
      const auto [end, ec] = std::from_chars(q->data(), q->data() + q->size(), v);
      if (ec != std::errc() || end != q->data() + q->size() || v == 0) {
        co_return co_await reject(ex, Rejection::kBadRequest, Status::bad_request,
                                  "limit must be a positive integer");
      }
      limit = std::min(limit, v);
    }
    auto list = g.deps_.agents.list_agents(*user, limit);
    if (!list.ok()) {
      co_return co_await reply(ex, Status::service_unavailable,
                               http::json_error("agent store: " + list.error().message(), "unavailable"));
    }
    bj::array agents;
    agents.reserve(list->size());
    for (const auto& a : *list) agents.push_back(agent_json(a));
    bj::object out;
    out["agents"] = std::move(agents);
    co_await reply(ex, Status::ok, bj::serialize(out));
  }

  asio::awaitable<void> get_agent(Exchange& ex, const PathParams& params) {
    auto user = co_await authenticate(ex);
    if (!user) co_return;
    auto agent = co_await owned_agent(ex, *user, params.at("id"));
    if (!agent) co_return;
    co_await reply(ex, Status::ok, bj::serialize(agent_json(*agent)));
  }

  asio::awaitable<void> chat(Exchange& ex) {
    auto user = co_await authenticate(ex);
    if (!user) co_return;
    if (g.deps_.control.draining()) {
      co_return co_await reject(ex, Rejection::kDraining, Status::service_unavailable,
                                "the runtime is shutting down", g.config_.queue_full_retry_after);
    }
    auto body = co_await body_object(ex);
    if (!body) co_return;
    std::string why;
    auto agent_id = string_field(*body, "agentId", why, true);
    auto message = string_field(*body, "message", why, true);
    Priority priority = Priority::kNormal;
    if (const bj::value* p = body->if_contains("priority"); p != nullptr && !p->is_null()) {
      const auto parsed = p->is_string() ? parse_priority(p->get_string()) : std::nullopt;
      if (!parsed) {
        why = "field 'priority' must be \"high\", \"medium\" or \"normal\"";
      } else {
        priority = *parsed;
      }
    }
    if (!why.empty()) co_return co_await reject(ex, Rejection::kBadRequest, Status::bad_request, why);
    if (message->size() > g.config_.max_message_bytes) {
      co_return co_await reject(ex, Rejection::kBodyTooLarge, Status::payload_too_large,
                                "message exceeds " + std::to_string(g.config_.max_message_bytes) + " bytes");
    }
    if (!g.deps_.control.accept_new_work()) {
      co_return co_await reject(ex, Rejection::kDegraded, Status::service_unavailable,
                                "maintenance mode (degradation level 4): no new work",
                                g.config_.degraded_retry_after);
    }
    const RateDecision rate = g.deps_.shared_rate ? g.deps_.shared_rate(*user) : g.limiter_.admit(*user);
    if (!rate.allowed) {
      co_return co_await reject(ex, Rejection::kRateLimited, Status::too_many_requests,
                                "over the per-user rate of " + std::to_string(g.config_.user_rate_per_s) + "/s",
                                rate.retry_after);
    }
    auto agent = co_await owned_agent(ex, *user, *agent_id);
    if (!agent) co_return;
    if (agent->state == AgentState::kMembershipPaused) {
      co_return co_await reject(ex, Rejection::kMembershipPaused, Status::payment_required,
                                "membership paused: the subscription was cancelled");
    }

    std::string task_id = g.auth_.make_task_id(*user);
    if (auto opened = g.deps_.bus.open(task_id); !opened.ok()) {
      co_return co_await reject(ex, Rejection::kQueueFull, Status::service_unavailable,
                                "event bus full: " + opened.error().message(), g.config_.queue_full_retry_after);
    }
    bj::object payload;
    payload["user"] = *user;
    payload["message"] = std::move(*message);
    payload["acceptedAtUs"] = std::chrono::duration_cast<std::chrono::microseconds>(
                                  std::chrono::system_clock::now().time_since_epoch())
                                  .count();
    // Mark the agent QUEUED (compare-and-set on what we read; a busy agent stays PROCESSING).
    const AgentState before = agent->state;
    const bool marked = before != AgentState::kQueued && before != AgentState::kProcessing &&
                        g.deps_.agents
                            .transition(*agent_id, Transition{.to = AgentState::kQueued, .expected_state = before})
                            .ok();
    const EnqueueResult enq = g.deps_.queue.enqueue(Task{task_id, *agent_id, priority, bj::serialize(payload)});
    if (!enq.accepted()) {
      if (marked) {
        // Undo the mark: QUEUED → READY is not a lifecycle edge, a never-run agent goes HIBERNATED.
        const AgentState back = before == AgentState::kReady ? AgentState::kHibernated : before;
        (void)g.deps_.agents.transition(*agent_id, Transition{.to = back, .expected_state = AgentState::kQueued});
      }
      if (enq.error == Errc::kQueueFull) {
        co_return co_await reject(ex, Rejection::kQueueFull, Status::service_unavailable,
                                  "queue full (" + std::to_string(enq.depth) + " tasks waiting)",
                                  g.config_.queue_full_retry_after);
      }
      if (enq.error == Errc::kClosed) {
        co_return co_await reject(ex, Rejection::kDraining, Status::service_unavailable,
                                  "the runtime is shutting down", g.config_.queue_full_retry_after);
      }
      co_return co_await reply(ex, Status::service_unavailable,
                               http::json_error("queue unavailable: " + enq.error.message(), "unavailable"),
                               retry_in_one_second());
    }
    g.deps_.metrics.count_accepted();
    std::string out = "{\"taskId\":\"" + task_id + "\",\"streamUrl\":\"/api/stream/" + task_id + "\"}";
    co_await reply(ex, Status::accepted, std::move(out));
  }

  asio::awaitable<void> fork(Exchange& ex) {
    auto user = co_await authenticate(ex);
    if (!user) co_return;
    auto body = co_await body_object(ex);
    if (!body) co_return;
    std::string why;
    auto agent_id = string_field(*body, "agentId", why, true);
    auto checkpoint = string_field(*body, "checkpointId", why, false);
    std::int64_t count = 1;
    if (const bj::value* c = body->if_contains("count"); c != nullptr && !c->is_null()) {
      if (!c->is_int64() && !c->is_uint64()) {
        why = "field 'count' must be an integer";
      } else {
        count = c->is_int64() ? c->get_int64() : static_cast<std::int64_t>(std::min<std::uint64_t>(c->get_uint64(), 1u << 20));
      }
    }
    if (why.empty() && (count < 1 || count > g.config_.max_forks)) {
      why = "count must be between 1 and " + std::to_string(g.config_.max_forks);
    }
    if (!why.empty()) co_return co_await reject(ex, Rejection::kBadRequest, Status::bad_request, why);
    auto agent = co_await owned_agent(ex, *user, *agent_id);
    if (!agent) co_return;
    ForkRequest req;
    req.parent_id = *agent_id;
    req.checkpoint_id = checkpoint.value_or("");
    for (std::int64_t i = 0; i < count; ++i) req.fork_ids.push_back(Authenticator::random_id("a"));
    auto forked = g.deps_.agents.fork(req);
    if (!forked.ok()) {
      const auto ec = forked.error();
      if (ec == Errc::kNotFound) {
        co_return co_await reject(ex, Rejection::kNotFound, Status::not_found, "checkpoint not found");
      }
      if (ec == Errc::kLimitExceeded) {
        co_return co_await reject(ex, Rejection::kStoreFull, Status::insufficient_storage,
                                  "fork refused: the store is full or the fork chain too deep");
      }
      co_return co_await reply(ex, Status::service_unavailable,
                               http::json_error("agent store: " + ec.message(), "unavailable"));
    }
    bj::array ids;
    for (const auto& f : forked->forks) ids.push_back(bj::string(f.id));
    bj::object out;
    out["forkIds"] = std::move(ids);
    out["checkpointId"] = forked->checkpoint.id;
    co_await reply(ex, Status::accepted, bj::serialize(out));
  }

  asio::awaitable<void> hibernate(Exchange& ex, const PathParams& params) {
    auto user = co_await authenticate(ex);
    if (!user) co_return;
    auto agent = co_await owned_agent(ex, *user, params.at("id"));
    if (!agent) co_return;
    const std::string result = g.deps_.control.hibernate(agent->id);
    bj::object out;
    out["agentId"] = agent->id;
    out["result"] = result;
    co_await reply(ex, Status::accepted, bj::serialize(out));
  }

  asio::awaitable<void> membership(Exchange& ex) {
    auto body = co_await body_object(ex);
    if (!body) co_return;
    std::string why;
    auto type = string_field(*body, "type", why, true);
    std::optional<std::string> user_id;
    if (const bj::value* d = body->if_contains("data"); d != nullptr && d->is_object()) {
      user_id = string_field(d->get_object(), "user_id", why, false);
      if (!user_id && why.empty()) user_id = string_field(d->get_object(), "userId", why, false);
    }
    if (why.empty() && !user_id) why = "missing field 'data.user_id'";
    if (why.empty() && *type != "subscription.cancelled" && *type != "subscription.renewed") {
      why = "type must be \"subscription.cancelled\" or \"subscription.renewed\"";
    }
    if (!why.empty()) co_return co_await reject(ex, Rejection::kBadRequest, Status::bad_request, why);

    // Signed by the payment provider, or sent by the user about themselves.
    bool allowed = false;
    constexpr std::string_view kPrefix = "sha256=";
    if (const auto sig = header(ex.request(), "X-Agentlab-Signature"); sig.starts_with(kPrefix)) {
      const std::string& secret = g.config_.webhook_secret.empty() ? g.config_.jwt_secret : g.config_.webhook_secret;
      const std::string expected = hmac_hex(secret, ex.request().body());
      const std::string_view given = sig.substr(kPrefix.size());
      allowed = given.size() == expected.size() && CRYPTO_memcmp(given.data(), expected.data(), given.size()) == 0;
    }
    if (!allowed) {
      std::string auth_why;
      auto caller = g.auth_.user_of(header(ex.request(), bhttp::field::authorization), &auth_why);
      if (!caller) {
        co_return co_await reject(ex, Rejection::kUnauthorized, Status::unauthorized,
                                  "webhook needs a valid X-Agentlab-Signature or a bearer token of the user");
      }
      if (*caller != *user_id) {
        // Another user's membership: as for agents, nothing is revealed.
        co_return co_await reject(ex, Rejection::kNotFound, Status::not_found, "user not found");
      }
    }
    const bool paused = *type == "subscription.cancelled";
    auto changed = g.deps_.control.set_membership(*user_id, paused);
    if (!changed.ok()) {
      co_return co_await reply(ex, Status::service_unavailable,
                               http::json_error("agent store: " + changed.error().message(), "unavailable"));
    }
    bj::object out;
    out["type"] = *type;
    out["userId"] = *user_id;
    out["agents"] = *changed;
    co_await reply(ex, Status::ok, bj::serialize(out));
  }

  asio::awaitable<void> stream(Exchange& ex, const PathParams& params) {
    const auto setup_started = std::chrono::steady_clock::now();
    auto user = co_await authenticate(ex);
    if (!user) co_return;
    const std::string& task_id = params.at("taskId");
    if (!g.auth_.task_owned_by(task_id, *user)) {
      co_return co_await reject(ex, Rejection::kNotFound, Status::not_found, "task not found");
    }
    std::uint64_t after = 0;
    std::optional<std::string> last = std::string(header(ex.request(), "Last-Event-ID"));
    if (last->empty()) last = http::query_param(ex.request().target(), "lastEventId");
    if (last && !last->empty()) {
      const auto [end, ec] = std::from_chars(last->data(), last->data() + last->size(), after);
      if (ec != std::errc() || end != last->data() + last->size()) {
        co_return co_await reject(ex, Rejection::kBadRequest, Status::bad_request,
                                  "Last-Event-ID must be an event id (a non-negative integer)");
      }
    }

    auto feed = std::make_shared<SseFeed>(ex.executor(), g.config_.stream_max_pending);
    auto sub = g.deps_.bus.subscribe(task_id, after, [feed](const Event& e) {
      std::lock_guard lock(feed->mutex);
      if (feed->pending.size() >= feed->max_pending) {
        feed->overflow = true;
      } else {
        feed->pending.push_back(e);
      }
      if (!feed->notified) {
        feed->notified = true;
        asio::post(feed->executor, [feed] { feed->timer.cancel(); });
      }
    });
    if (!sub.ok()) {
      if (sub.error() == Errc::kNotFound) {
        co_return co_await reject(ex, Rejection::kNotFound, Status::not_found, "task not found (or expired)");
      }
      co_return co_await reply(ex, Status::service_unavailable,
                               http::json_error("event bus: " + sub.error().message(), "unavailable"));
    }
    if (co_await ex.start_stream(Status::ok, "text/event-stream")) co_return;
    g.deps_.metrics.observe_request(Route::kStreamSetup, std::chrono::steady_clock::now() - setup_started);
    g.deps_.metrics.sse_streams_open().Increment();
    struct Gauge {
      prometheus::Gauge& g;
      ~Gauge() { g.Decrement(); }
    } gauge{g.deps_.metrics.sse_streams_open()};

    std::string out;
    if (sub->truncated()) out += ": some events were trimmed before the first one sent\n\n";
    const bool ended_at_subscribe = sub->ended();
    const auto deadline = std::chrono::steady_clock::now() + g.config_.stream_max_duration;
    std::vector<Event> batch;
    for (;;) {
      bool overflow = false;
      {
        std::lock_guard lock(feed->mutex);
        batch.swap(feed->pending);
        feed->notified = false;
        overflow = feed->overflow;
      }
      if (!batch.empty()) {
        bool terminal = false;
        for (const Event& e : batch) {
          out += http::format_sse(to_string(e.kind), e.data, std::to_string(e.id));
          terminal = terminal || is_terminal(e.kind);
        }
        batch.clear();
        if (co_await ex.write_chunk(out)) break;
        out.clear();
        if (terminal) {
          co_await ex.finish_stream();
          break;
        }
        // Events may have arrived during the write (their wake-up found no waiter): look again
        // before waiting. The wait below only follows a swap that found nothing, with no
        // suspension in between, so a wake-up posted after that swap always finds the waiter.
        continue;
      }
      if (!out.empty()) {  // a comment (truncation note, keep-alive)
        if (co_await ex.write_chunk(out)) break;
        out.clear();
        continue;
      }
      if (ended_at_subscribe) {
        co_await ex.finish_stream();
        break;
      }
      if (overflow) {  // the client is too slow to keep up: cut it, it resumes with Last-Event-ID
        ex.abort();
        break;
      }
      const auto now = std::chrono::steady_clock::now();
      if (ex.closed()) break;
      if (now >= deadline) {
        co_await ex.finish_stream();
        break;
      }
      feed->timer.expires_after(std::min<std::chrono::steady_clock::duration>(g.config_.stream_keepalive,
                                                                              deadline - now));
      auto [ec] = co_await feed->timer.async_wait(kNoThrow);
      if (!ec) out += ": keep-alive\n\n";  // the timer expired: nothing happened for a while
    }
    sub->cancel();
  }

  asio::awaitable<void> system(Exchange& ex) {
    co_await reply(ex, Status::ok, bj::serialize(g.deps_.control.system_snapshot()));
  }

  asio::awaitable<void> healthz(Exchange& ex) { co_await reply(ex, Status::ok, "{\"status\":\"ok\"}"); }

  asio::awaitable<void> readyz(Exchange& ex) {
    if (g.deps_.control.draining()) {
      co_return co_await reply(ex, Status::service_unavailable, "{\"status\":\"draining\"}");
    }
    co_await reply(ex, Status::ok, "{\"status\":\"ready\"}");
  }

  asio::awaitable<void> metrics(Exchange& ex) {
    co_await ex.respond(Status::ok, g.deps_.control.metrics_text(), "text/plain; version=0.0.4");
  }
};

Gateway::Gateway(GatewayConfig config, GatewayDeps deps)
    : config_(std::move(config)),
      deps_(deps),
      auth_(config_.jwt_secret),
      limiter_(config_.user_rate_per_s, config_.user_burst, deps.clock),
      handlers_(std::make_unique<Handlers>(Handlers{*this})) {}

Gateway::~Gateway() = default;

void Gateway::prune() { limiter_.prune(); }

void Gateway::add_routes(http::Router& router, RouteSet set) {
  Handlers* h = handlers_.get();
  RuntimeMetrics* m = &deps_.metrics;
  // Times a non-streaming handler into the route's latency histogram.
  auto timed = [m](Route route, auto fn) {
    return [m, route, fn](Exchange& ex, const PathParams& params) { return run_timed(m, route, fn, ex, params); };
  };
  using V = bhttp::verb;
  router.add(V::get, "/api/system",
             timed(Route::kSystem, [h](Exchange& ex, const PathParams&) { return h->system(ex); }));
  router.add(V::get, "/healthz",
             timed(Route::kHealth, [h](Exchange& ex, const PathParams&) { return h->healthz(ex); }));
  router.add(V::get, "/readyz",
             timed(Route::kHealth, [h](Exchange& ex, const PathParams&) { return h->readyz(ex); }));
  router.add(V::get, "/metrics",
             timed(Route::kMetrics, [h](Exchange& ex, const PathParams&) { return h->metrics(ex); }));
  if (set == RouteSet::kOperations) return;
  router.add(V::post, "/api/agents",
             timed(Route::kAgentsCreate, [h](Exchange& ex, const PathParams&) { return h->create_agent(ex); }));
  router.add(V::get, "/api/agents",
             timed(Route::kAgentsList, [h](Exchange& ex, const PathParams&) { return h->list_agents(ex); }));
  router.add(V::get, "/api/agents/{id}",
             timed(Route::kAgentGet, [h](Exchange& ex, const PathParams& p) { return h->get_agent(ex, p); }));
  router.add(V::post, "/api/agents/{id}/hibernate",
             timed(Route::kHibernate, [h](Exchange& ex, const PathParams& p) { return h->hibernate(ex, p); }));
  router.add(V::post, "/api/chat",
             timed(Route::kChat, [h](Exchange& ex, const PathParams&) { return h->chat(ex); }));
  router.add(V::post, "/api/fork",
             timed(Route::kFork, [h](Exchange& ex, const PathParams&) { return h->fork(ex); }));
  router.add(V::get, "/api/stream/{taskId}",
             [h](Exchange& ex, const PathParams& p) { return h->stream(ex, p); });
  router.add(V::post, "/api/webhooks/membership",
             timed(Route::kMembership, [h](Exchange& ex, const PathParams&) { return h->membership(ex); }));
}

}  // namespace lab::runtime
