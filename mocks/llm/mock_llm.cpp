#include "mocks/llm/mock_llm.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/http/field.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "common/http/router.hpp"
#include "mocks/llm/anthropic_wire.hpp"
#include "mocks/llm/batch_slots.hpp"
#include "mocks/llm/generation.hpp"
#include "mocks/llm/metrics.hpp"
#include "mocks/llm/openai_wire.hpp"
#include "mocks/llm/pacing_wheel.hpp"
#include "mocks/llm/rate_limiter.hpp"
#include "mocks/llm/request.hpp"
#include "mocks/llm/tokens.hpp"

namespace lab::mocks::llm {

namespace asio = boost::asio;
namespace json = boost::json;
namespace bhttp = boost::beast::http;

namespace {

constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
/// How often a waiting request (queued, hung, stalled) checks whether its client is gone.
constexpr std::chrono::milliseconds kPollInterval{200};
constexpr std::uint64_t kTimingStream = 0x74696d696e67ULL;  // "timing": a second RNG stream

using Steady = std::chrono::steady_clock;

double seconds(Nanos d) { return std::chrono::duration<double>(d).count(); }

/// Waits until `deadline` (at once when it has passed), rounded up to a multiple of `quantum`
/// like the streams' deadlines (for non-streaming answers; streams wait in the PacingWheel).
/// Long waits go in slices of kPollInterval so a client that leaves is noticed. Returns false
/// when the exchange closed.
asio::awaitable<bool> wait_until(http::Exchange& ex, asio::steady_timer& timer, TimePoint deadline,
                                 Nanos quantum) {
  if (quantum > Nanos(0)) {
    const Nanos since_epoch = deadline.time_since_epoch();
    deadline = TimePoint(((since_epoch + quantum - Nanos(1)) / quantum) * quantum);
  }
  for (;;) {
    const TimePoint now = Steady::now();
    if (now >= deadline) co_return true;
    const bool slice = deadline - now > kPollInterval;
    timer.expires_at(slice ? now + kPollInterval : deadline);
    co_await timer.async_wait(kNoThrow);
    if (slice && ex.closed()) co_return false;
  }
}

std::optional<double> header_number(const http::Request& req, std::string_view name) {
  const auto it = req.find(name);
  if (it == req.end()) return std::nullopt;
  const std::string_view v = it->value();
  double d = -1.0;
  const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), d);
  if (ec != std::errc() || end != v.data() + v.size()) return -1.0;  // present but bad
  return d;
}

struct Overrides {
  std::optional<double> ttft_ms;
  std::optional<double> itl_ms;
  std::optional<int> output_tokens;
  FaultDecision fault;
};

std::optional<std::string> parse_overrides(const http::Request& req, Overrides& out) {
  constexpr double kMaxMs = 3'600'000.0;
  if (auto v = header_number(req, "x-mock-ttft-ms")) {
    if (*v < 0.0 || *v > kMaxMs) return "x-mock-ttft-ms: expected milliseconds in [0, 3600000]";
    out.ttft_ms = *v;
  }
  if (auto v = header_number(req, "x-mock-itl-ms")) {
    if (*v < 0.0 || *v > kMaxMs) return "x-mock-itl-ms: expected milliseconds in [0, 3600000]";
    out.itl_ms = *v;
  }
  if (auto v = header_number(req, "x-mock-output-tokens")) {
    if (*v < 1.0 || *v > 1'000'000.0 || *v != static_cast<int>(*v)) {
      return "x-mock-output-tokens: expected an integer in [1, 1000000]";
    }
    out.output_tokens = static_cast<int>(*v);
  }
  if (const auto it = req.find("x-mock-fault"); it != req.end()) {
    if (auto err = parse_fault_header(it->value(), out.fault)) return err;
  }
  return std::nullopt;
}

std::string api_key(const http::Request& req) {
  if (const auto it = req.find(bhttp::field::authorization); it != req.end()) {
    std::string_view v = it->value();
    if (v.starts_with("Bearer ")) return std::string(v.substr(7));
    return std::string(v);
  }
  if (const auto it = req.find("x-api-key"); it != req.end()) return std::string(it->value());
  return {};
}

std::string error_body(Api api, int status, std::string_view message, std::string_view param = {},
                       std::string_view openai_type = "invalid_request_error",
                       std::string_view code = {}) {
  if (api == Api::kAnthropic) return render_anthropic_error(anthropic_error_type(status), message);
  return render_openai_error(message, openai_type, param, code);
}

/// Holds one batch slot for a request's lifetime.
class SlotGuard {
 public:
  explicit SlotGuard(BatchSlots& slots) : slots_(slots) {}
  ~SlotGuard() { slots_.release(); }
  SlotGuard(const SlotGuard&) = delete;
  SlotGuard& operator=(const SlotGuard&) = delete;

 private:
  BatchSlots& slots_;
};

class StreamGauge {
 public:
  explicit StreamGauge(prometheus::Gauge& gauge) : gauge_(gauge) { gauge_.Increment(); }
  ~StreamGauge() { gauge_.Decrement(); }
  StreamGauge(const StreamGauge&) = delete;
  StreamGauge& operator=(const StreamGauge&) = delete;

 private:
  prometheus::Gauge& gauge_;
};

enum class Admission { kAdmitted, kRejected, kGone };

/// At most this many overdue tokens of one stream go into one write (a stream that fell behind
/// catches up in a few sends, not one per token, with its buffer bounded).
constexpr std::size_t kMaxTokensPerWrite = 64;
/// How often a stream asks its exchange whether it closed (a client that leaves is also seen
/// at the next write, which fails; this catches a server stop and a half-closed client).
constexpr std::chrono::milliseconds kClosedCheckInterval{50};

/// What a stream sends and how it is timed, fixed for the stream's life.
struct StreamSpec {
  const ChatRequest& chat;
  const Generation& gen;
  const LatencyPlan& plan;
  const LoadProfile& load;
  int stop_at = 0;          ///< tokens to send (fewer than gen.output_tokens after a fault's cut)
  bool fault_end = false;   ///< the stream ends by a fault: no closing events
  int malformed = -1;       ///< the token sent as cut-off JSON, or -1
  TimePoint arrival;
  TimePoint first_token;    ///< token 0's deadline
};

/// One streaming response, paced by its thread's PacingWheel. on_due() renders every token
/// that is due (normally one) into one buffer and queues it as one non-blocking write in the
/// wheel's SendBatch; told the result (on_chunk_written, once the wheel has submitted the
/// tick's sends), it registers again for the next deadline. No coroutine runs per token. The handler's
/// coroutine sleeps in park() and is woken only when the stream is over (every token sent,
/// the peer gone, the server stopping) or a socket was full (it then flushes under the write
/// timeout and hands the stream back with resume()).
class TokenStream final : public PacingWheel::Entry, private http::Exchange::ChunkSink {
 public:
  enum class Phase { kRunning, kFlush, kDone, kGone };

  /// Draws the stream's inter-token gaps from (a copy of) `timing`.
  TokenStream(http::Exchange& ex, PacingWheel& wheel, StreamRenderer& renderer, const StreamSpec& spec,
              const Rng& timing, BatchSlots& slots, Metrics& metrics)
      : ex_(ex),
        wheel_(wheel),
        renderer_(renderer),
        spec_(spec),
        slots_(slots),
        pacer_(spec.first_token),
        load_(spec.load),
        plan_(spec.plan),
        timing_(timing),
        fragments_(spec.gen.tool_call ? spec.gen.tool_call->escaped_fragments.data() : nullptr),
        last_(spec.gen.output_tokens - 1),
        stop_at_(spec.stop_at),
        malformed_(spec.malformed),
        tokens_(spec.gen.text_seed),
        lateness_seen_(metrics.lateness_bounds()),
        itl_seen_(metrics.itl_bounds()),
        metrics_(metrics),
        wake_(ex.executor()) {}

  ~TokenStream() {
    itl_seen_.flush(metrics_.itl());
    lateness_seen_.flush(metrics_.lateness());
  }

  /// Hands the stream to the wheel (after a flush too). The first closed() call also starts
  /// watching the socket for the client leaving.
  void resume() {
    phase_ = Phase::kRunning;
    checked_ = Steady::now();
    if (ex_.closed()) {
      phase_ = Phase::kGone;
      return;
    }
    if (next_ >= stop_at_) {
      phase_ = Phase::kDone;
      return;
    }
    wheel_.schedule(*this, wait_target(Steady::now()));
  }

  /// Returns when the wheel has handed the stream back (phase() is no longer kRunning).
  asio::awaitable<void> park() {
    while (phase_ == Phase::kRunning) {
      wake_.expires_at(asio::steady_timer::time_point::max());
      co_await wake_.async_wait(kNoThrow);
    }
  }

  /// After kFlush: the kept bytes are out now; counts their tokens as sent at `now`.
  void flushed(TimePoint now) { record(now); }

  Phase phase() const { return phase_; }
  int sent() const { return sent_; }

  void on_due(TimePoint now) noexcept override {
    if (now < pacer_.deadline() || now - checked_ >= kClosedCheckInterval) {
      checked_ = now;
      if (ex_.closed()) return hand_back(Phase::kGone);
    }
    if (now < pacer_.deadline()) {  // a poll during a long wait (TTFT)
      wheel_.schedule(*this, wait_target(now));
      return;
    }
    std::string& buffer = wheel_.scratch();
    buffer.clear();
    do {
      render(next_, buffer);
      batch_[batch_size_++] = pacer_.deadline();
      if (next_ != last_) pacer_.advance(plan_.itl(timing_, load_, slots_.running()));
      ++next_;
    } while (next_ < stop_at_ && pacer_.deadline() <= now && batch_size_ < batch_.size());
    const http::Exchange::ChunkWrite queued = ex_.queue_chunk(wheel_.batch(), buffer, *this);
    if (queued != http::Exchange::ChunkWrite::kQueued) on_chunk_written(queued);
  }

 private:
  /// The next wake-up: the token's deadline, or sooner to check on the client in a long wait.
  TimePoint wait_target(TimePoint now) const {
    return std::min(pacer_.deadline(), now + kPollInterval);
  }

  void render(int k, std::string& buffer) {
    if (k == 0) renderer_.open(buffer);
    const std::string_view text = fragments_ != nullptr ? std::string_view(fragments_[k]) : tokens_.next();
    if (k == malformed_) {
      renderer_.malformed(buffer);
    } else {
      renderer_.token(buffer, text, k);
    }
    if (k == last_ && !spec_.fault_end) {
      renderer_.close(buffer, spec_.gen.finish, Usage{spec_.chat.input_tokens, spec_.gen.output_tokens});
    }
  }

  /// What became of the tokens queued by on_due().
  void on_chunk_written(http::Exchange::ChunkWrite result) noexcept override {
    switch (result) {
      case http::Exchange::ChunkWrite::kFailed: return hand_back(Phase::kGone);
      case http::Exchange::ChunkWrite::kPending: return hand_back(Phase::kFlush);
      case http::Exchange::ChunkWrite::kSent: break;
      case http::Exchange::ChunkWrite::kQueued:  // a sink is told an outcome, never this
        std::fprintf(stderr, "agentlab mock-llm: a queued chunk reported as queued\n");
        std::abort();
    }
    record(Steady::now());
    if (next_ >= stop_at_) return hand_back(Phase::kDone);
    wheel_.schedule(*this, pacer_.deadline());
  }

  /// The tokens of the last write reached the socket at `now`: lateness, TTFT, ITL.
  void record(TimePoint now) {
    for (std::size_t i = 0; i < batch_size_; ++i) {
      const TimePoint due = batch_[i];
      lateness_seen_.observe(seconds(now > due ? now - due : Nanos(0)));
      if (sent_ == 0) {
        metrics_.ttft().Observe(seconds(now - spec_.arrival));
      } else {
        itl_seen_.observe(seconds(now - previous_));
      }
      previous_ = now;
      ++sent_;
    }
    batch_size_ = 0;
  }

  void hand_back(Phase phase) {
    phase_ = phase;
    wake_.cancel();
  }

  // What every token touches first (few cache lines per token; what the spec holds is copied
  // here so the coroutine frame is not touched per token), then the rest.
  http::Exchange& ex_;
  PacingWheel& wheel_;
  StreamRenderer& renderer_;
  const StreamSpec& spec_;
  BatchSlots& slots_;
  TokenPacer pacer_;
  const LoadProfile& load_;
  LatencyPlan plan_;
  Rng timing_;
  const std::string* fragments_;  ///< a tool call's argument fragments, or null for text
  int last_;                      ///< the index of the response's last token
  int stop_at_;
  int malformed_;
  TimePoint previous_{};
  TimePoint checked_{};  ///< the last closed() check
  int next_ = 0;         ///< the next token to render
  int sent_ = 0;
  std::size_t batch_size_ = 0;
  Phase phase_ = Phase::kRunning;
  TokenGenerator tokens_;
  LocalHistogram lateness_seen_;
  LocalHistogram itl_seen_;
  std::array<TimePoint, kMaxTokensPerWrite> batch_;  ///< deadlines of the tokens in the last write
  Metrics& metrics_;
  asio::steady_timer wake_;  ///< the coroutine waits on it; cancel() hands the stream back
};

}  // namespace

struct MockLlm::Impl {
  Impl(Profile p, Clock& c, std::uint64_t s, MockLlmOptions o)
      : profile(std::move(p)),
        clock(c),
        seed(s),
        options(std::move(o)),
        faults(c, mix64(s ^ 0x6661756c7473ULL)),
        limiter(c, profile.default_rate_limit, profile.key_rate_limits),
        slots(profile.load.max_num_seqs, profile.load.max_waiting) {
    for (const FaultRule& rule : profile.faults) faults.add(rule);
    add_routes();
  }

  void add_routes();
  asio::awaitable<void> chat(http::Exchange& ex, Api api);
  asio::awaitable<Admission> admit(http::Exchange& ex);
  asio::awaitable<void> stream(http::Exchange& ex, const ChatRequest& chat, const Generation& gen,
                               const FaultDecision& fault, const LatencyPlan& plan, Rng& timing,
                               TimePoint arrival, TimePoint first_token, HeaderList headers);
  asio::awaitable<void> complete(http::Exchange& ex, const ChatRequest& chat, const Generation& gen,
                                 const FaultDecision& fault, const LatencyPlan& plan, Rng& timing,
                                 TimePoint first_token, HeaderList headers);
  asio::awaitable<void> hold(http::Exchange& ex);
  asio::awaitable<void> send(http::Exchange& ex, Api api, int status, std::string body,
                             const HeaderList& headers = {});
  asio::awaitable<void> send_json(http::Exchange& ex, http::Status status, std::string body);
  asio::awaitable<void> admin_add(http::Exchange& ex);
  std::string make_id(Api api);
  /// The pacing wheel of the I/O thread behind `executor` (created on first use).
  PacingWheel& wheel_for(const asio::any_io_executor& executor);

  Profile profile;
  Clock& clock;
  std::uint64_t seed;
  MockLlmOptions options;
  FaultInjector faults;
  RateLimiter limiter;
  BatchSlots slots;
  Metrics metrics;
  std::atomic<std::uint64_t> ordinal{0};
  http::Router router;
  /// One per I/O thread. Declared before `server`: the wheels outlive its io_contexts.
  std::mutex wheels_mutex;
  std::vector<std::unique_ptr<PacingWheel>> wheels;
  std::unique_ptr<http::Server> server;
};

PacingWheel& MockLlm::Impl::wheel_for(const asio::any_io_executor& executor) {
  std::lock_guard lock(wheels_mutex);
  for (const auto& wheel : wheels) {
    if (wheel->executor() == executor) return *wheel;
  }
  wheels.push_back(std::make_unique<PacingWheel>(executor, profile.latency.pacing_quantum));
  return *wheels.back();
}

std::string MockLlm::Impl::make_id(Api api) {
  static constexpr char kAlphabet[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  Rng rng(mix64(seed ^ mix64(ordinal.fetch_add(1, std::memory_order_relaxed))));
  std::string id = api == Api::kOpenAi ? "chatcmpl-" : "msg_01";
  const int length = api == Api::kOpenAi ? 29 : 22;
  for (int i = 0; i < length; ++i) id += kAlphabet[rng.below(sizeof(kAlphabet) - 1)];
  return id;
}

asio::awaitable<void> MockLlm::Impl::send(http::Exchange& ex, Api api, int status,
                                          std::string body, const HeaderList& headers) {
  http::Response res{static_cast<http::Status>(status), ex.request().version()};
  res.set(bhttp::field::content_type, "application/json");
  for (const auto& [name, value] : headers) res.set(name, value);
  res.body() = std::move(body);
  metrics.count_request(api, status);
  co_await ex.respond(std::move(res));
}

asio::awaitable<void> MockLlm::Impl::send_json(http::Exchange& ex, http::Status status,
                                               std::string body) {
  co_await ex.respond(status, std::move(body), "application/json");
}

asio::awaitable<void> MockLlm::Impl::hold(http::Exchange& ex) {
  asio::steady_timer timer(ex.executor());
  const TimePoint until = Steady::now() + profile.max_hang;
  while (!ex.closed() && Steady::now() < until) {
    timer.expires_after(kPollInterval);
    co_await timer.async_wait(kNoThrow);
  }
  ex.abort();
}

asio::awaitable<Admission> MockLlm::Impl::admit(http::Exchange& ex) {
  auto waiter = std::make_shared<BatchSlots::Waiter>();
  auto timer = std::make_shared<asio::steady_timer>(ex.executor());
  waiter->wake = [timer, executor = ex.executor()] {
    asio::post(executor, [timer] { timer->cancel(); });
  };
  switch (slots.acquire(waiter)) {
    case BatchSlots::Admit::kRunning: co_return Admission::kAdmitted;
    case BatchSlots::Admit::kRejected: co_return Admission::kRejected;
    case BatchSlots::Admit::kQueued: break;
  }
  // The wake-up is posted to this executor after `granted` is set, so checking the flag and
  // re-arming the timer (both on this thread) cannot miss it.
  for (;;) {
    if (waiter->granted.load(std::memory_order_acquire)) co_return Admission::kAdmitted;
    if (ex.closed()) {
      if (!slots.cancel(waiter)) slots.release();  // granted meanwhile: give it back
      co_return Admission::kGone;
    }
    timer->expires_after(kPollInterval);
    co_await timer->async_wait(kNoThrow);
  }
}

asio::awaitable<void> MockLlm::Impl::chat(http::Exchange& ex, Api api) {
  const TimePoint arrival = Steady::now();
  const http::Request& req = ex.request();
  ChatRequest chat;
  if (auto err = api == Api::kOpenAi ? parse_openai_request(req.body(), chat)
                                     : parse_anthropic_request(req.body(), chat)) {
    co_await send(ex, api, err->status, error_body(api, err->status, err->message, err->param, err->type, err->code));
    co_return;
  }
  if (!profile.accept_any_model &&
      std::find(profile.models.begin(), profile.models.end(), chat.model) == profile.models.end()) {
    const std::string message = api == Api::kOpenAi
        ? "The model `" + chat.model + "` does not exist or you do not have access to it."
        : "model: " + chat.model;
    co_await send(ex, api, 404, error_body(api, 404, message, "model", "invalid_request_error", "model_not_found"));
    co_return;
  }
  Overrides overrides;
  if (auto err = parse_overrides(req, overrides)) {
    co_await send(ex, api, 400, error_body(api, 400, *err));
    co_return;
  }

  // What the response will be: a pure function of (seed, request content, overrides).
  Rng rng(mix64(seed ^ chat.content_hash));
  const Generation gen = plan_generation(
      chat, profile.output, {profile.tool_call_probability, overrides.output_tokens}, rng);

  // Rate limits first, as a provider's edge enforces them.
  const RateLimitStatus limit = limiter.admit(api_key(req), chat.input_tokens + gen.output_tokens);
  HeaderList headers;
  if (api == Api::kOpenAi) {
    add_openai_rate_headers(limit, headers);
  } else {
    add_anthropic_rate_headers(limit, headers, std::chrono::system_clock::now());
  }
  if (!limit.allowed) {
    metrics.count_rate_limited(limit.reason);
    std::string message;
    if (limit.too_large) {
      message = "Request too large for tokens per min (TPM): Limit " + std::to_string(limit.limit_tokens) +
                ", Requested " + std::to_string(chat.input_tokens + gen.output_tokens) + ".";
    } else if (limit.reason == "tokens") {
      message = "Rate limit reached for tokens per min (TPM): Limit " + std::to_string(limit.limit_tokens) +
                ". Please try again in " + go_duration(limit.retry_after) + ".";
    } else {
      message = "Rate limit reached for requests per min (RPM): Limit " + std::to_string(limit.limit_requests) +
                ". Please try again in " + go_duration(limit.retry_after) + ".";
    }
    co_await send(ex, api, 429, error_body(api, 429, message, {}, limit.reason, "rate_limit_exceeded"), headers);
    co_return;
  }

  FaultDecision fault = faults.decide(api);
  fault.merge(overrides.fault);
  if (fault.hang) {
    metrics.count_fault("hang");
    co_await hold(ex);
    co_return;
  }
  if (fault.error_status != 0) {
    metrics.count_fault("error");
    const int status = fault.error_status;
    if (status == 429 || status == 503 || status == 529) {
      headers.emplace_back("retry-after", std::to_string(profile.load.retry_after.count()));
    }
    // (Bodies are computed outside co_await expressions: GCC 12 destroys temporaries of a
    // conditional expression inside co_await twice.)
    std::string body = api == Api::kOpenAi ? render_openai_status_error(status)
                                           : render_anthropic_status_error(status);
    co_await send(ex, api, status, std::move(body), headers);
    co_return;
  }
  if (fault.latency_multiplier != 1.0) metrics.count_fault("latency");

  switch (co_await admit(ex)) {
    case Admission::kAdmitted: break;
    case Admission::kGone:
      metrics.client_disconnects().Increment();
      ex.abort();
      co_return;
    case Admission::kRejected: {
      metrics.count_rate_limited("queue_full");
      headers.emplace_back("retry-after", std::to_string(profile.load.retry_after.count()));
      const std::string message = "The server is overloaded: " + std::to_string(slots.capacity()) +
                                  " sequences running and the waiting queue (" +
                                  std::to_string(profile.load.max_waiting) + ") is full. Please retry later.";
      co_await send(ex, api, 429, error_body(api, 429, message, {}, "requests", "rate_limit_exceeded"), headers);
      co_return;
    }
  }
  SlotGuard slot(slots);
  const TimePoint admitted = Steady::now();

  LatencyPlan plan = LatencyPlan::from(profile.latency);
  if (overrides.ttft_ms) {
    plan.ttft_ms = Distribution::constant(*overrides.ttft_ms);
    plan.prefill_ms_per_token = 0.0;
  }
  if (overrides.itl_ms) plan.itl_ms = Distribution::constant(*overrides.itl_ms);
  plan.multiplier = fault.latency_multiplier;
  Rng timing(mix64(seed ^ chat.content_hash ^ kTimingStream));
  const TimePoint first_token = admitted + plan.ttft(timing, chat.input_tokens, profile.load, slots.running());

  headers.emplace_back(api == Api::kOpenAi ? "x-request-id" : "request-id", "req_" + std::to_string(ordinal.load(std::memory_order_relaxed)));
  if (chat.stream) {
    co_await stream(ex, chat, gen, fault, plan, timing, arrival, first_token, std::move(headers));
  } else {
    co_await complete(ex, chat, gen, fault, plan, timing, first_token, std::move(headers));
  }
}

asio::awaitable<void> MockLlm::Impl::stream(http::Exchange& ex, const ChatRequest& chat,
                                            const Generation& gen, const FaultDecision& fault,
                                            const LatencyPlan& plan, Rng& timing,
                                            TimePoint arrival, TimePoint first_token,
                                            HeaderList headers) {
  const ResponseIds ids{make_id(chat.api),
                        std::chrono::duration_cast<std::chrono::seconds>(
                            std::chrono::system_clock::now().time_since_epoch()).count()};
  std::unique_ptr<StreamRenderer> renderer = chat.api == Api::kOpenAi
                                                 ? make_openai_stream(chat, gen, ids)
                                                 : make_anthropic_stream(chat, gen, ids);
  if (auto ec = co_await ex.start_stream(http::Status::ok, "text/event-stream; charset=utf-8",
                                         std::move(headers))) {
    metrics.client_disconnects().Increment();
    co_return;
  }
  metrics.count_request(chat.api, 200);
  StreamGauge gauge(metrics.active_streams());

  const int n = gen.output_tokens;
  const int cut = fault.disconnect_after >= 0 ? std::min(fault.disconnect_after, n) : -1;
  const int stall = fault.stall_after >= 0 ? std::min(fault.stall_after, n) : -1;
  const int stop_at = std::min(cut >= 0 ? cut : n, stall >= 0 ? stall : n);
  const bool fault_end = cut >= 0 || stall >= 0;  // the stream ends by a fault, not normally
  const int malformed =
      fault.malformed_at >= 0.0 ? std::min(n - 1, static_cast<int>(fault.malformed_at * n)) : -1;
  if (malformed >= 0) metrics.count_fault("malformed");

  const StreamSpec spec{chat, gen, plan, profile.load, stop_at, fault_end, malformed, arrival, first_token};
  bool peer_gone = false;
  {
    TokenStream tokens(ex, wheel_for(ex.executor()), *renderer, spec, timing, slots, metrics);
    tokens.resume();
    for (;;) {
      co_await tokens.park();
      if (tokens.phase() != TokenStream::Phase::kFlush) break;
      if (co_await ex.flush()) {
        peer_gone = true;
        break;
      }
      tokens.flushed(Steady::now());
      tokens.resume();
    }
    peer_gone = peer_gone || tokens.phase() == TokenStream::Phase::kGone;
    metrics.count_tokens(chat.api, chat.input_tokens, tokens.sent());
  }
  if (peer_gone) {
    metrics.client_disconnects().Increment();
    ex.abort();
  } else if (!fault_end) {
    co_await ex.finish_stream();
  } else if (cut >= 0 && (stall < 0 || cut <= stall)) {
    metrics.count_fault("disconnect");
    ex.abort();
  } else {
    metrics.count_fault("stall");
    co_await hold(ex);
  }
}

asio::awaitable<void> MockLlm::Impl::complete(http::Exchange& ex, const ChatRequest& chat,
                                              const Generation& gen, const FaultDecision& fault,
                                              const LatencyPlan& plan, Rng& timing,
                                              TimePoint first_token, HeaderList headers) {
  const int n = gen.output_tokens;
  const int cut = fault.disconnect_after >= 0 ? std::min(fault.disconnect_after, n) : -1;
  const int stall = fault.stall_after >= 0 ? std::min(fault.stall_after, n) : -1;
  const int stop_at = std::min(cut >= 0 ? cut : n, stall >= 0 ? stall : n);
  const bool fault_end = cut >= 0 || stall >= 0;
  // The body is ready when the last token (or the token before a fault) would be.
  TimePoint ready = first_token;
  for (int k = 1; k < std::max(stop_at, 1); ++k) ready += plan.itl(timing, profile.load, slots.running());
  asio::steady_timer timer(ex.executor());
  if (!co_await wait_until(ex, timer, ready, profile.latency.pacing_quantum)) {
    metrics.client_disconnects().Increment();
    ex.abort();
    co_return;
  }
  if (fault_end) {
    if (cut >= 0 && (stall < 0 || cut <= stall)) {
      metrics.count_fault("disconnect");
      ex.abort();
    } else {
      metrics.count_fault("stall");
      co_await hold(ex);
    }
    co_return;
  }
  const ResponseIds ids{make_id(chat.api),
                        std::chrono::duration_cast<std::chrono::seconds>(
                            std::chrono::system_clock::now().time_since_epoch()).count()};
  const Usage usage{chat.input_tokens, n};
  std::string body = chat.api == Api::kOpenAi ? render_openai_completion(chat, gen, ids, usage)
                                              : render_anthropic_message(chat, gen, ids, usage);
  if (fault.malformed_at >= 0.0) {
    metrics.count_fault("malformed");
    body.resize(std::max<std::size_t>(1, static_cast<std::size_t>(static_cast<double>(body.size()) * std::clamp(fault.malformed_at, 0.05, 0.95))));
  }
  metrics.count_tokens(chat.api, chat.input_tokens, n);
  co_await send(ex, chat.api, 200, std::move(body), headers);
}

asio::awaitable<void> MockLlm::Impl::admin_add(http::Exchange& ex) {
  boost::system::error_code ec;
  const json::value body = json::parse(ex.request().body(), ec);
  if (ec) {
    co_await send_json(ex, http::Status::bad_request, http::json_error("invalid JSON: " + ec.message()));
    co_return;
  }
  std::vector<FaultRule> rules;
  json::array errors;
  auto take = [&](const json::value& v, const std::string& prefix) {
    auto parsed = parse_fault_rule(v);
    if (auto* errs = std::get_if<std::vector<std::string>>(&parsed)) {
      for (const std::string& e : *errs) errors.push_back(json::string(prefix + e));
    } else {
      rules.push_back(std::get<FaultRule>(parsed));
    }
  };
  if (body.is_array()) {
    for (std::size_t i = 0; i < body.get_array().size(); ++i) {
      take(body.get_array()[i], "[" + std::to_string(i) + "] ");
    }
  } else {
    take(body, "");
  }
  if (!errors.empty()) {
    std::string message;
    for (const json::value& e : errors) message += (message.empty() ? "" : "; ") + std::string(e.get_string());
    json::object out;
    out["error"] = {{"message", message}, {"type", "invalid_request_error"}};
    out["errors"] = std::move(errors);
    co_await send_json(ex, http::Status::bad_request, json::serialize(out));
    co_return;
  }
  if (faults.size() + rules.size() > FaultInjector::kMaxRules) {
    co_await send_json(ex, http::Status::bad_request,
                       http::json_error("too many fault rules: at most " + std::to_string(FaultInjector::kMaxRules) +
                                        " at once (DELETE /admin/faults clears them)"));
    co_return;
  }
  json::array added;
  for (const FaultRule& rule : rules) {
    json::object o = fault_rule_to_json(rule);
    o["id"] = faults.add(rule);
    added.push_back(std::move(o));
  }
  json::value out = body.is_array() ? json::value(json::object{{"faults", std::move(added)}})
                                    : json::value(std::move(added[0]));
  co_await send_json(ex, http::Status::created, json::serialize(out));
}

void MockLlm::Impl::add_routes() {
  using bhttp::verb;
  router.add(verb::post, "/v1/chat/completions",
             [this](http::Exchange& ex, const http::PathParams&) { return chat(ex, Api::kOpenAi); });
  router.add(verb::post, "/v1/messages",
             [this](http::Exchange& ex, const http::PathParams&) { return chat(ex, Api::kAnthropic); });
  router.add(verb::get, "/v1/models", [this](http::Exchange& ex, const http::PathParams&) -> asio::awaitable<void> {
    const bool anthropic = ex.request().find("anthropic-version") != ex.request().end();
    std::string body = anthropic ? render_anthropic_models(profile.models) : render_openai_models(profile.models);
    co_await send_json(ex, http::Status::ok, std::move(body));
  });
  router.add(verb::get, "/v1/models/{id}", [this](http::Exchange& ex, const http::PathParams& params) -> asio::awaitable<void> {
    const std::string& id = params.at("id");
    const bool anthropic = ex.request().find("anthropic-version") != ex.request().end();
    const bool known = std::find(profile.models.begin(), profile.models.end(), id) != profile.models.end();
    if (!known) {
      std::string body = anthropic ? render_anthropic_error("not_found_error", "model: " + id)
                                   : render_openai_error("The model '" + id + "' does not exist",
                                                         "invalid_request_error", "model", "model_not_found");
      co_await send_json(ex, http::Status::not_found, std::move(body));
      co_return;
    }
    std::string one = anthropic ? render_anthropic_models({id}) : render_openai_models({id});
    // Cut the single element out of the list rendering.
    const std::size_t open = one.find('[');
    const std::size_t close = one.rfind(']');
    co_await send_json(ex, http::Status::ok, one.substr(open + 1, close - open - 1));
  });
  router.add(verb::post, "/admin/faults",
             [this](http::Exchange& ex, const http::PathParams&) { return admin_add(ex); });
  router.add(verb::get, "/admin/faults", [this](http::Exchange& ex, const http::PathParams&) -> asio::awaitable<void> {
    co_await send_json(ex, http::Status::ok, json::serialize(faults.to_json()));
  });
  router.add(verb::delete_, "/admin/faults", [this](http::Exchange& ex, const http::PathParams&) -> asio::awaitable<void> {
    const std::size_t n = faults.size();
    faults.clear();
    co_await send_json(ex, http::Status::ok, "{\"cleared\":" + std::to_string(n) + "}");
  });
  router.add(verb::delete_, "/admin/faults/{id}", [this](http::Exchange& ex, const http::PathParams& params) -> asio::awaitable<void> {
    const std::string& text = params.at("id");
    std::uint64_t id = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), id);
    if (ec != std::errc() || end != text.data() + text.size() || !faults.remove(id)) {
      co_await send_json(ex, http::Status::not_found, http::json_error("no fault with id " + text, "not_found"));
      co_return;
    }
    co_await send_json(ex, http::Status::ok, "{\"removed\":" + text + "}");
  });
  router.add(verb::get, "/metrics", [this](http::Exchange& ex, const http::PathParams&) -> asio::awaitable<void> {
    co_await ex.respond(http::Status::ok, metrics.render(slots.running(), slots.waiting()),
                        "text/plain; version=0.0.4; charset=utf-8");
  });
  router.add(verb::get, "/healthz", [](http::Exchange& ex, const http::PathParams&) -> asio::awaitable<void> {
    co_await ex.respond(http::Status::ok, "{\"status\":\"ok\"}", "application/json");
  });
}

MockLlm::MockLlm(Profile profile, Clock& clock, std::uint64_t seed, MockLlmOptions options)
    : impl_(std::make_unique<Impl>(std::move(profile), clock, seed, std::move(options))) {}

MockLlm::~MockLlm() { stop(std::chrono::milliseconds(500)); }

void MockLlm::start() {
  http::ServerOptions so;
  so.address = impl_->options.host;
  so.port = impl_->options.port;
  so.threads = impl_->options.threads;
  so.body_limit = impl_->profile.max_body_bytes;
  so.server_name = "agentlab-mock-llm";
  // A hung request is the point of the hang fault: keep the write timeout, but let idle
  // keep-alive connections of a load generator stay open between bursts.
  impl_->server = std::make_unique<http::Server>(so, impl_->router.handler());
  impl_->server->start();
}

void MockLlm::stop(std::chrono::milliseconds drain) {
  if (!impl_ || !impl_->server) return;
  // Close the queue first: waiting requests then leave by themselves (they poll), and no slot
  // release can post a wake-up into an io_context that the server is tearing down.
  impl_->slots.close();
  impl_->server->stop(drain);
  // The io_contexts are gone, and with them every stream and wheel timer.
  std::lock_guard lock(impl_->wheels_mutex);
  impl_->wheels.clear();
}

std::uint16_t MockLlm::port() const { return impl_->server ? impl_->server->port() : 0; }
std::string MockLlm::url() const { return impl_->server ? impl_->server->url() : std::string(); }
std::uint64_t MockLlm::add_fault(const FaultRule& rule) { return impl_->faults.add(rule); }
bool MockLlm::remove_fault(std::uint64_t id) { return impl_->faults.remove(id); }
void MockLlm::clear_faults() { impl_->faults.clear(); }
boost::json::object MockLlm::faults() const { return impl_->faults.to_json(); }
std::string MockLlm::metrics_text() { return impl_->metrics.render(impl_->slots.running(), impl_->slots.waiting()); }
int MockLlm::running() const { return impl_->slots.running(); }
int MockLlm::waiting() const { return impl_->slots.waiting(); }
const Profile& MockLlm::profile() const { return impl_->profile; }
const http::ServerStats& MockLlm::server_stats() const {
  static const http::ServerStats kEmpty;
  return impl_->server ? impl_->server->stats() : kEmpty;
}

}  // namespace lab::mocks::llm
