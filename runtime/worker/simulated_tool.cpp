#include "runtime/worker/simulated_tool.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

#include "common/text/json_util.hpp"

namespace lab::runtime {

namespace asio = boost::asio;
namespace bj = boost::json;

namespace {
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
}

SimulatedTool::SimulatedTool(asio::any_io_executor executor, ToolConfig config,
                             resilience::CircuitBreakerRegistry& breakers, const Clock& clock,
                             std::uint64_t seed, RuntimeMetrics* metrics)
    : executor_(std::move(executor)),
      config_(std::move(config)),
      breaker_(breakers.get_or_create(kToolsBreaker, config_.breaker)),
      clock_(clock),
      metrics_(metrics),
      rng_(seed) {}

ToolSpec SimulatedTool::spec() {
  return ToolSpec{"lookup", "Looks up facts about a topic (simulated, with configurable latency).",
                  R"({"type":"object","properties":{"query":{"type":"string","description":"what to look up"}},"required":["query"]})"};
}

asio::awaitable<ToolOutcome> SimulatedTool::call(const ToolCall& call) {
  ToolOutcome out;
  const TimePoint started = clock_.now();
  resilience::RetryState retry(config_.retry);
  asio::steady_timer timer(executor_);
  const std::uint64_t n = ++calls_;
  for (;;) {
    const auto permit = breaker_.try_acquire();
    if (!permit) {
      if (metrics_) metrics_->count_tool("circuit_open");
      out.result = R"j({"error":"the tool service is unavailable (circuit open)"})j";
      break;
    }
    ++out.attempts;
    if (co_await attempt(permit)) {
      // The "result": what was asked, echoed, so a test can see the round trip.
      auto args = json::parse(call.arguments);
      bj::object o;
      o["tool"] = call.name;
      o["result"] = "simulated result #" + std::to_string(n);
      if (args) o["arguments"] = std::move(*args);
      out.ok = true;
      out.result = bj::serialize(o);
      break;
    }
    const auto decision = retry.on_failure(resilience::ErrorClass::kServerError, rng_);
    if (!decision.should_retry()) {
      out.result = R"({"error":"the tool failed after retries"})";
      break;
    }
    timer.expires_after(decision.delay);
    co_await timer.async_wait(kNoThrow);
  }
  out.duration = clock_.now() - started;
  co_return out;
}

asio::awaitable<bool> SimulatedTool::attempt(const resilience::CircuitBreaker::Permit& permit) {
  const TimePoint started = clock_.now();
  if (config_.latency > Nanos::zero()) {
    asio::steady_timer timer(executor_);
    timer.expires_after(config_.latency);
    co_await timer.async_wait(kNoThrow);
  }
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  const bool failed = config_.error_rate > 0.0 && uniform(rng_) < config_.error_rate;
  const Nanos took = clock_.now() - started;
  if (failed) {
    breaker_.on_error(permit, took);
    if (metrics_) metrics_->count_tool("error");
    co_return false;
  }
  breaker_.on_success(permit, took);
  if (metrics_) metrics_->count_tool("ok");
  co_return true;
}

asio::awaitable<bool> SimulatedTool::probe() {
  const auto permit = breaker_.try_acquire();
  if (!permit) co_return false;
  co_return co_await attempt(permit);
}

}  // namespace lab::runtime
