#include "runtime/worker/llm_client.hpp"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstdlib>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/http/verb.hpp>

namespace lab::runtime {

namespace asio = boost::asio;
using resilience::ErrorClass;

namespace {

constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
constexpr std::string_view kChatPath = "/v1/chat/completions";

ErrorClass from_transport(http::ErrorClass c) {
  switch (c) {
    case http::ErrorClass::kConnect: return ErrorClass::kConnection;
    case http::ErrorClass::kTimeout: return ErrorClass::kTimeout;
    case http::ErrorClass::kProtocol: return ErrorClass::kConnection;  // reset, EOF mid-stream
    case http::ErrorClass::kAborted: return ErrorClass::kCancelled;
    case http::ErrorClass::kNone: break;
  }
  return ErrorClass::kOther;
}

std::optional<Nanos> retry_after_of(const http::ClientResponse& res) {
  const auto h = res.header("retry-after");
  if (!h) return std::nullopt;
  std::int64_t s = 0;
  const auto [end, ec] = std::from_chars(h->data(), h->data() + h->size(), s);
  if (ec != std::errc() || end != h->data() + h->size() || s < 0) return std::nullopt;
  return Seconds(s);
}

/// A provider's breaker decides: does this outcome count against the provider?
bool counts_as_failure(ErrorClass c) {
  return c != ErrorClass::kClientError && c != ErrorClass::kCancelled;
}

}  // namespace

std::string llm_breaker_name(std::size_t provider_index) {
  if (provider_index == 0) return "llm_primary";
  if (provider_index == 1) return "llm_backup";
  return "llm_backup_" + std::to_string(provider_index);
}

struct LlmClient::Provider {
  std::string name;  // breaker name
  LlmProviderConfig config;
  resilience::CircuitBreaker* breaker = nullptr;
  std::unique_ptr<http::ConnectionPool> pool;
};

struct LlmClient::Attempt {
  bool ok = false;
  ErrorClass error_class = ErrorClass::kOther;
  std::string error;
  std::optional<Nanos> retry_after;
};

LlmClient::LlmClient(asio::any_io_executor executor, LlmClientConfig config,
                     resilience::CircuitBreakerRegistry& breakers, const Clock& clock, std::uint64_t seed,
                     RuntimeMetrics* metrics)
    : executor_(std::move(executor)), config_(std::move(config)), clock_(clock), metrics_(metrics), rng_(seed) {
  http::ClientOptions options;
  options.connect_timeout = config_.connect_timeout;
  options.request_timeout = std::chrono::duration_cast<Millis>(config_.deadline);
  options.stream_idle_timeout = config_.idle_timeout;
  options.max_idle_connections = config_.max_idle_connections;
  for (std::size_t i = 0; i < config_.providers.size(); ++i) {
    auto p = std::make_unique<Provider>();
    p->name = llm_breaker_name(i);
    p->config = config_.providers[i];
    std::string why;
    auto url = http::parse_url(p->config.url, &why);
    if (!url) {
      std::fprintf(stderr, "agentlab runtime: LLM URL '%s': %s\n", p->config.url.c_str(), why.c_str());
      std::abort();  // configs are validated where they are read; a bad URL here is a bug
    }
    if (url->base_path.ends_with("/v1")) url->base_path.resize(url->base_path.size() - 3);
    p->breaker = &breakers.get_or_create(p->name, config_.breaker);
    p->pool = std::make_unique<http::ConnectionPool>(executor_, *url, options, SteadyClock::instance());
    providers_.push_back(std::move(p));
  }
}

LlmClient::~LlmClient() = default;

asio::awaitable<LlmClient::Attempt> LlmClient::attempt(Provider& p, const ChatRequestSpec& request,
                                                       const TextSink& on_text, LlmResult& result) {
  http::ClientRequest req;
  req.method = boost::beast::http::verb::post;
  req.target = std::string(kChatPath);
  req.body = build_chat_body(request, p.config.model);
  req.content_type = "application/json";
  if (!config_.api_key.empty()) req.headers.emplace_back("Authorization", "Bearer " + config_.api_key);
  for (const auto& h : config_.headers) req.headers.push_back(h);

  ChunkAccumulator acc;
  bool malformed = false;
  std::string delta;
  std::string text;
  const auto on_event = [&](http::SseEvent&& e, TimePoint) -> bool {
    delta.clear();
    const auto fed = acc.feed(e.data, delta);
    if (fed == ChunkAccumulator::Feed::kMalformed) {
      malformed = true;
      return false;
    }
    if (!delta.empty()) {
      if (!result.first_token_at) result.first_token_at = clock_.now();
      result.emitted_text = true;
      text += delta;
      on_text(delta);
    }
    return fed != ChunkAccumulator::Feed::kDone;
  };
  http::ClientResponse res;
  const http::ClientResult r = co_await p.pool->stream_sse(req, res, on_event, config_.deadline);

  Attempt a;
  if (!r.ok()) {
    a.error_class = from_transport(r.error);
    a.error = p.name + ": " + r.message;
  } else if (res.status != 200) {
    a.error_class = resilience::classify_http_status(static_cast<int>(res.status));
    a.error = p.name + ": HTTP " + std::to_string(res.status);
    a.retry_after = retry_after_of(res);
  } else if (malformed) {
    a.error_class = ErrorClass::kInvalidResponse;
    a.error = p.name + ": malformed stream chunk";
  } else if (!acc.finished()) {
    a.error_class = ErrorClass::kConnection;
    a.error = p.name + ": the stream ended before its finish_reason";
  } else {
    a.ok = true;
    result.text = std::move(text);
    result.finish_reason = acc.finish_reason();
    result.tool_calls = acc.take_tool_calls();
    result.model = acc.model().empty() ? p.config.model : acc.model();
    result.input_tokens = acc.prompt_tokens();
    result.output_tokens = acc.completion_tokens() > 0 ? acc.completion_tokens() : acc.text_deltas();
    result.provider = p.name;
  }
  co_return a;
}

asio::awaitable<LlmResult> LlmClient::complete(const ChatRequestSpec& request, bool prefer_backup,
                                               const TextSink& on_text) {
  LlmResult result;
  std::vector<Provider*> order;
  for (auto& p : providers_) order.push_back(p.get());
  if (prefer_backup && order.size() > 1) std::rotate(order.begin(), order.begin() + 1, order.end());

  resilience::RetryState retry(config_.retry);
  asio::steady_timer timer(executor_);
  for (;;) {
    bool any_permitted = false;
    Attempt last;
    for (std::size_t i = 0; i < order.size(); ++i) {
      Provider& p = *order[i];
      const auto permit = p.breaker->try_acquire();
      if (!permit) {
        if (metrics_) metrics_->count_llm(p.name, "circuit_open");
        last.error_class = ErrorClass::kCircuitOpen;
        last.error = p.name + ": circuit open";
        continue;
      }
      any_permitted = true;
      if (i > 0 && metrics_) metrics_->count_failover();
      ++result.attempts;
      const TimePoint started = clock_.now();
      Attempt a = co_await attempt(p, request, on_text, result);
      const Nanos took = clock_.now() - started;
      if (a.ok) {
        p.breaker->on_success(permit, took);
        if (metrics_) metrics_->count_llm(p.name, "ok");
        result.ok = true;
        co_return result;
      }
      if (counts_as_failure(a.error_class)) {
        p.breaker->on_error(permit, took);
      } else {
        p.breaker->release(permit);
      }
      if (metrics_) metrics_->count_llm(p.name, resilience::to_string(a.error_class));
      last = std::move(a);
      // Final: the request itself is wrong, or the client already saw part of this answer.
      if (last.error_class == ErrorClass::kClientError || last.error_class == ErrorClass::kCancelled ||
          result.emitted_text) {
        result.error_class = last.error_class;
        result.error = last.error;
        co_return result;
      }
    }
    result.error_class = last.error_class;
    result.error = last.error;
    if (!any_permitted) {
      result.error = "no LLM provider available (every circuit is open)";
      co_return result;
    }
    const auto decision = retry.on_failure(last.error_class, rng_, last.retry_after);
    if (!decision.should_retry()) co_return result;
    if (metrics_) metrics_->count_llm_retry();
    timer.expires_after(decision.delay);
    co_await timer.async_wait(kNoThrow);
  }
}

asio::awaitable<bool> LlmClient::probe(std::size_t provider_index) {
  if (provider_index >= providers_.size()) co_return false;
  Provider& p = *providers_[provider_index];
  const auto permit = p.breaker->try_acquire();
  if (!permit) co_return false;
  http::ClientRequest req;
  req.method = boost::beast::http::verb::post;
  req.target = std::string(kChatPath);
  req.body = build_probe_body(p.config.model);
  req.content_type = "application/json";
  req.timeout = config_.idle_timeout;
  if (!config_.api_key.empty()) req.headers.emplace_back("Authorization", "Bearer " + config_.api_key);
  for (const auto& h : config_.headers) req.headers.push_back(h);
  http::ClientResponse res;
  const TimePoint started = clock_.now();
  const http::ClientResult r = co_await p.pool->request(req, res);
  const Nanos took = clock_.now() - started;
  const bool ok = r.ok() && res.status == 200;
  if (ok) {
    p.breaker->on_success(permit, took);
  } else if (r.ok() && counts_as_failure(resilience::classify_http_status(static_cast<int>(res.status))) == false) {
    p.breaker->release(permit);
  } else {
    p.breaker->on_error(permit, took);
  }
  if (metrics_) metrics_->count_llm(p.name, ok ? "probe_ok" : "probe_failed");
  co_return ok;
}

}  // namespace lab::runtime
