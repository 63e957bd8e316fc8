#include "runtime/service/runtime_config.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <fstream>
#include <functional>
#include <limits>
#include <set>
#include <sstream>

#include <yaml-cpp/yaml.h>

#include "common/http/client.hpp"
#include "common/text/units.hpp"
#include "runtime/postgres/pg_pool.hpp"
#include "runtime/redis/redis_connection.hpp"

namespace lab::runtime {

std::string_view to_string(ServiceRole r) noexcept {
  switch (r) {
    case ServiceRole::kAll: return "all";
    case ServiceRole::kGateway: return "gateway";
    case ServiceRole::kWorker: return "worker";
  }
  return "all";
}

std::vector<std::string> RuntimeConfig::validate() const {
  std::vector<std::string> e;
  if (http_threads < 1 || http_threads > 256) e.push_back("http_threads: must be in [1, 256]");
  if (workers < 1 || workers > 256) e.push_back("workers: must be in [1, 256]");
  if (worker_concurrency < 1 || worker_concurrency > 100'000) e.push_back("worker_concurrency: must be in [1, 100000]");
  if (queue_bound < 1) e.push_back("queue_bound: must be at least 1");
  if (max_deliveries < 1) e.push_back("max_deliveries: must be at least 1");
  if (max_active_agents < 1) e.push_back("max_active_agents: must be at least 1");
  if (max_agents < 1) e.push_back("max_agents: must be at least 1");
  if (event_streams < 1) e.push_back("event_streams: must be at least 1");
  if (max_body_bytes < 256) e.push_back("max_body_bytes: must be at least 256");
  if (max_message_bytes < 1) e.push_back("max_message_bytes: must be at least 1");
  if (user_rate_per_s < 0) e.push_back("user_rate: must not be negative");
  if (user_burst < 1) e.push_back("user_burst: must be at least 1");
  if (lease_duration <= Nanos::zero()) e.push_back("lease_duration: must be positive");
  if (heartbeat_interval <= Nanos::zero() || heartbeat_interval >= lease_duration) {
    e.push_back("heartbeat_interval: must be positive and shorter than lease_duration");
  }
  if (idle_timeout <= Nanos::zero()) e.push_back("idle_timeout: must be positive");
  if (llm_timeout <= Nanos::zero() || llm_connect_timeout <= Nanos::zero() || llm_deadline <= Nanos::zero()) {
    e.push_back("llm_timeout, llm_connect_timeout, llm_deadline: must be positive");
  }
  if (max_tool_steps < 0 || max_tool_steps > 64) e.push_back("max_tool_steps: must be in [0, 64]");
  if (tool_error_rate < 0 || tool_error_rate > 1) e.push_back("tool_error_rate: must be in [0, 1]");
  if (tool_latency < Nanos::zero()) e.push_back("tool_latency: must not be negative");
  if (max_output_tokens && *max_output_tokens < 1) e.push_back("max_output_tokens: must be at least 1");
  if (maintenance_interval <= Nanos::zero()) e.push_back("maintenance_interval: must be positive");
  if (stream_keepalive <= Nanos::zero() || stream_max_duration <= Nanos::zero()) {
    e.push_back("stream_keepalive, stream_max_duration: must be positive");
  }
  if (jwt_secret.empty()) e.push_back("jwt_secret: must not be empty");
  if (role != ServiceRole::kGateway && llm_urls.empty()) e.push_back("llm: at least one LLM URL is needed to run workers");
  for (const auto& url : llm_urls) {
    std::string why;
    if (!http::parse_url(url, &why)) e.push_back("llm: '" + url + "': " + why);
  }
  if (queue != "memory") {
    if (!queue.starts_with("redis://")) {
      e.push_back("queue: expected memory or redis://[[user]:password@]host[:port][/db], got '" + queue + "'");
    } else if (auto r = redis::parse_redis_url(queue); !r.ok()) {
      e.push_back("queue: '" + queue + "': not a valid redis:// URL (" + r.error().message() + ")");
    }
  }
  if (store != "memory" && !postgres_store()) {
    e.push_back("store: expected memory or postgresql://user@host:port/db, got '" + store + "'");
  }
  if (role != ServiceRole::kAll && (!redis_queue() || !postgres_store())) {
    e.push_back("role: '" + std::string(to_string(role)) +
                "' needs a queue and a store shared between processes (queue: redis://..., store: "
                "postgresql://...); with memory backends only 'all' works");
  }
  auto plain_name = [](std::string_view s) {
    return !s.empty() && s.size() <= 128 && std::all_of(s.begin(), s.end(), [](char ch) {
      return std::isalnum(static_cast<unsigned char>(ch)) != 0 || ch == '-' || ch == '_' || ch == '.' || ch == ':';
    });
  };
  if (!plain_name(namespace_)) {
    e.push_back("namespace: expected 1-128 characters of [A-Za-z0-9._:-], got '" + namespace_ + "'");
  }
  if (!instance.empty() && !plain_name(instance)) {
    e.push_back("instance: expected 1-128 characters of [A-Za-z0-9._:-], got '" + instance + "'");
  }
  if (!pg_schema.empty() && !pg::is_plain_identifier(pg_schema)) {
    e.push_back("pg_schema: expected a lowercase identifier ([a-z_][a-z0-9_]*), got '" + pg_schema + "'");
  }
  if (backend_connections < 2 || backend_connections > 1024) e.push_back("backend_connections: must be in [2, 1024]");
  auto check = [&](std::string_view name, const std::vector<std::string>& problems) {
    for (const auto& p : problems) e.push_back(std::string(name) + ": " + p);
  };
  check("llm_retry", llm_retry.validate());
  check("tool_retry", tool_retry.validate());
  check("store_retry", store_retry.validate());
  check("breakers.llm", llm_breaker.validate());
  check("breakers.tools", tool_breaker.validate());
  check("breakers.store", store_breaker.validate());
  check("breakers.memory", memory_breaker.validate());
  check("degradation", degradation.validate());
  return e;
}

namespace {

/// Reads one YAML map's keys into typed fields, collecting every problem with its line.
class Fields {
 public:
  Fields(const YAML::Node& node, std::string_view where, std::string prefix, std::vector<std::string>& errors)
      : node_(node), where_(where), prefix_(std::move(prefix)), errors_(errors) {}

  void error(const YAML::Node& at, std::string_view key, const std::string& message) {
    std::ostringstream os;
    os << where_ << ':' << (at.Mark().line + 1) << ": " << prefix_ << key << ": " << message;
    errors_.push_back(os.str());
  }

  /// Calls fn(value node) when the key is present; remembers the key as known.
  void on(std::string_view key, const std::function<void(const YAML::Node&)>& fn) {
    known_.emplace(std::string(key));
    const YAML::Node v = node_[std::string(key)];
    if (v.IsDefined() && !v.IsNull()) fn(v);
  }

  std::optional<std::string> scalar(const YAML::Node& v, std::string_view key) {
    if (!v.IsScalar()) {
      error(v, key, "expected a value");
      return std::nullopt;
    }
    return v.Scalar();
  }

  void string(std::string_view key, std::string& out) {
    on(key, [&](const YAML::Node& v) {
      if (auto s = scalar(v, key)) out = *s;
    });
  }

  template <class T>
  void integer(std::string_view key, T& out, std::int64_t lo, std::int64_t hi) {
    on(key, [&](const YAML::Node& v) {
      auto s = scalar(v, key);
      if (!s) return;
      std::int64_t n = 0;
      const auto [end, ec] = std::from_chars(s->data(), s->data() + s->size(), n);
      if (ec != std::errc() || end != s->data() + s->size() || n < lo || n > hi) {
        error(v, key, "expected an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got '" + *s + "'");
        return;
      }
      out = static_cast<T>(n);
    });
  }

  void number(std::string_view key, double& out, double lo, double hi) {
    on(key, [&](const YAML::Node& v) {
      auto s = scalar(v, key);
      if (!s) return;
      auto r = units::parse_ratio(*s);
      if (!r || !std::isfinite(*r) || *r < lo || *r > hi) {
        error(v, key, "expected a number in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got '" + *s + "'");
        return;
      }
      out = *r;
    });
  }

  /// A percentage: "25" or "25%" both mean 25 (%).
  void percent(std::string_view key, double& out) {
    on(key, [&](const YAML::Node& v) {
      auto s = scalar(v, key);
      if (!s) return;
      std::string text = *s;
      const bool sign = !text.empty() && text.back() == '%';
      if (sign) text.pop_back();
      double d = 0;
      const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), d);
      if (ec != std::errc() || end != text.data() + text.size() || !(d > 0) || d > 100) {
        error(v, key, "expected a percentage in (0, 100], got '" + *s + "'");
        return;
      }
      out = d;
    });
  }

  void duration(std::string_view key, Nanos& out) {
    on(key, [&](const YAML::Node& v) {
      auto s = scalar(v, key);
      if (!s) return;
      auto d = units::parse_duration(*s);
      if (!d) {
        error(v, key, "expected a duration like 250ms, 30s, 5m, got '" + *s + "'");
        return;
      }
      out = *d;
    });
  }

  template <class D>
  void duration_as(std::string_view key, D& out) {
    Nanos n = std::chrono::duration_cast<Nanos>(out);
    bool set = false;
    on(key, [&](const YAML::Node& v) {
      auto s = scalar(v, key);
      if (!s) return;
      auto d = units::parse_duration(*s);
      if (!d) {
        error(v, key, "expected a duration like 250ms, 30s, 5m, got '" + *s + "'");
        return;
      }
      n = *d;
      set = true;
    });
    if (set) out = std::chrono::duration_cast<D>(n);
  }

  void boolean(std::string_view key, bool& out) {
    on(key, [&](const YAML::Node& v) {
      auto s = scalar(v, key);
      if (!s) return;
      if (*s == "true" || *s == "yes" || *s == "on") {
        out = true;
      } else if (*s == "false" || *s == "no" || *s == "off") {
        out = false;
      } else {
        error(v, key, "expected true or false, got '" + *s + "'");
      }
    });
  }

  void rate(std::string_view key, double& out) {
    on(key, [&](const YAML::Node& v) {
      auto s = scalar(v, key);
      if (!s) return;
      if (*s == "0" || *s == "unlimited") {
        out = 0;
        return;
      }
      auto r = units::parse_rate_per_second(*s);
      if (!r) {
        error(v, key, "expected a rate like 50/s or 600/m (0: unlimited), got '" + *s + "'");
        return;
      }
      out = *r;
    });
  }

  void bytes(std::string_view key, std::size_t& out) {
    on(key, [&](const YAML::Node& v) {
      auto s = scalar(v, key);
      if (!s) return;
      auto b = units::parse_bytes(*s);
      if (!b) {
        error(v, key, "expected a size like 64KiB, got '" + *s + "'");
        return;
      }
      out = static_cast<std::size_t>(*b);
    });
  }

  /// Unknown keys are problems (a typo must not silently fall back to a default).
  void reject_unknown() {
    if (!node_.IsMap()) return;
    for (const auto& kv : node_) {
      const std::string key = kv.first.Scalar();
      if (!known_.count(key)) error(kv.first, key, "unknown key");
    }
  }

 private:
  const YAML::Node& node_;
  std::string_view where_;
  std::string prefix_;
  std::vector<std::string>& errors_;
  std::set<std::string, std::less<>> known_;
};

void apply_retry(const YAML::Node& n, std::string_view where, const std::string& prefix,
                 resilience::RetryPolicy& p, std::vector<std::string>& errors) {
  Fields f(n, where, prefix, errors);
  if (!n.IsMap()) {
    f.error(n, "", "expected a map {max_retries, base_delay, max_delay, multiplier, jitter, backoff}");
    return;
  }
  f.integer("max_retries", p.max_retries, 0, 100);
  f.duration_as("base_delay", p.base_delay);
  f.duration_as("max_delay", p.max_delay);
  f.number("multiplier", p.multiplier, 1.0, 100.0);
  f.number("jitter", p.jitter_ratio, 0.0, 1.0);
  f.on("backoff", [&](const YAML::Node& v) {
    const std::string s = v.IsScalar() ? v.Scalar() : "";
    if (s == "exponential") {
      p.backoff = resilience::RetryPolicy::Backoff::kExponential;
    } else if (s == "linear") {
      p.backoff = resilience::RetryPolicy::Backoff::kLinear;
    } else if (s == "fixed") {
      p.backoff = resilience::RetryPolicy::Backoff::kFixed;
    } else {
      f.error(v, "backoff", "expected exponential, linear or fixed");
    }
  });
  f.reject_unknown();
}

void apply_breaker(const YAML::Node& n, std::string_view where, const std::string& prefix,
                   resilience::CircuitBreakerConfig& c, std::vector<std::string>& errors) {
  Fields f(n, where, prefix, errors);
  if (!n.IsMap()) {
    f.error(n, "", "expected a map (failures, window, wait_in_open, ...)");
    return;
  }
  f.on("window", [&](const YAML::Node& v) {
    // "30s": a time window of 30 one-second buckets; "100": the last 100 calls.
    const std::string s = v.IsScalar() ? v.Scalar() : "";
    int calls = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), calls);
    if (ec == std::errc() && end == s.data() + s.size() && calls > 0) {
      c.window_type = resilience::CircuitBreakerConfig::WindowType::kCountBased;
      c.window_size = calls;
      return;
    }
    auto d = units::parse_duration(s);
    if (!d || *d < Seconds(1)) {
      f.error(v, "window", "expected a duration of at least 1s (time window) or a call count");
      return;
    }
    c.window_type = resilience::CircuitBreakerConfig::WindowType::kTimeBased;
    c.window_size = static_cast<int>(std::chrono::duration_cast<Seconds>(*d).count());
  });
  f.integer("failures", c.failure_count_threshold, 0, 1'000'000);
  f.percent("failure_rate", c.failure_rate_threshold);
  f.integer("minimum_calls", c.minimum_number_of_calls, 1, 1'000'000);
  f.duration_as("slow_call", c.slow_call_duration_threshold);
  f.percent("slow_call_rate", c.slow_call_rate_threshold);
  f.duration_as("wait_in_open", c.wait_duration_in_open);
  f.integer("half_open_calls", c.permitted_calls_in_half_open, 1, 1000);
  f.duration_as("half_open_timeout", c.half_open_call_timeout);
  f.reject_unknown();
}

}  // namespace

void apply_runtime_yaml(const YAML::Node& node, std::string_view where, RuntimeConfig& c,
                        std::vector<std::string>& errors) {
  Fields f(node, where, "", errors);
  if (!node.IsMap()) {
    f.error(node, "runtime", "expected a map of settings");
    return;
  }
  f.on("role", [&](const YAML::Node& v) {
    const std::string s = v.IsScalar() ? v.Scalar() : "";
    if (s == "all") {
      c.role = ServiceRole::kAll;
    } else if (s == "gateway") {
      c.role = ServiceRole::kGateway;
    } else if (s == "worker") {
      c.role = ServiceRole::kWorker;
    } else {
      f.error(v, "role", "expected all, gateway or worker");
    }
  });
  f.string("host", c.host);
  f.integer("port", c.port, 0, 65535);
  f.integer("http_threads", c.http_threads, 1, 256);
  f.bytes("max_body_bytes", c.max_body_bytes);
  f.bytes("max_message_bytes", c.max_message_bytes);
  f.integer("max_connections", c.max_connections, 1, 10'000'000);
  f.duration("idle_connection_timeout", c.idle_connection_timeout);
  f.string("jwt_secret", c.jwt_secret);
  f.string("webhook_secret", c.webhook_secret);
  f.string("queue", c.queue);
  f.string("store", c.store);
  f.string("namespace", c.namespace_);
  f.string("pg_schema", c.pg_schema);
  f.string("instance", c.instance);
  f.integer("backend_connections", c.backend_connections, 2, 1024);
  f.integer("store_threads", c.store_threads, -1, 256);
  f.integer("queue_bound", c.queue_bound, 1, 100'000'000);
  f.integer("max_deliveries", c.max_deliveries, 1, 1000);
  f.integer("max_agents", c.max_agents, 1, 100'000'000);
  f.integer("event_streams", c.event_streams, 1, 100'000'000);
  f.duration("event_retention", c.event_retention);
  f.rate("user_rate", c.user_rate_per_s);
  f.number("user_burst", c.user_burst, 1.0, 1e9);
  f.duration("queue_full_retry_after", c.queue_full_retry_after);
  f.duration("degraded_retry_after", c.degraded_retry_after);
  f.duration("stream_keepalive", c.stream_keepalive);
  f.duration("stream_max_duration", c.stream_max_duration);
  f.integer("workers", c.workers, 1, 256);
  f.integer("worker_concurrency", c.worker_concurrency, 1, 100'000);
  f.integer("max_active_agents", c.max_active_agents, 1, 100'000'000);
  f.duration("idle_timeout", c.idle_timeout);
  f.integer("history_limit", c.history_limit, 0, 100'000);
  f.duration("lease_duration", c.lease_duration);
  f.duration("heartbeat_interval", c.heartbeat_interval);
  f.on("llm", [&](const YAML::Node& v) {
    // A URL, "URL,URL", or a list of URLs: the primary first, then backups.
    std::vector<std::string> urls;
    auto add = [&](const std::string& text) {
      std::size_t start = 0;
      while (start <= text.size()) {
        const std::size_t comma = text.find(',', start);
        std::string part = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        if (!part.empty()) urls.push_back(std::move(part));
        if (comma == std::string::npos) break;
        start = comma + 1;
      }
    };
    if (v.IsScalar()) {
      add(v.Scalar());
    } else if (v.IsSequence()) {
      for (const auto& item : v) {
        if (item.IsScalar()) {
          add(item.Scalar());
        } else {
          f.error(item, "llm", "expected URLs");
        }
      }
    } else {
      f.error(v, "llm", "expected a URL, a comma-separated list or a list of URLs");
    }
    c.llm_urls = std::move(urls);
  });
  f.string("llm_model", c.llm_model);
  f.string("llm_backup_model", c.llm_backup_model);
  f.string("llm_api_key", c.llm_api_key);
  f.on("llm_headers", [&](const YAML::Node& v) {
    if (!v.IsMap()) {
      f.error(v, "llm_headers", "expected a map of header: value");
      return;
    }
    c.llm_headers.clear();
    for (const auto& kv : v) c.llm_headers.emplace_back(kv.first.Scalar(), kv.second.Scalar());
  });
  f.duration("llm_connect_timeout", c.llm_connect_timeout);
  f.duration("llm_timeout", c.llm_timeout);
  f.duration("llm_deadline", c.llm_deadline);
  f.on("max_output_tokens", [&](const YAML::Node& v) {
    int n = 0;
    const std::string s = v.IsScalar() ? v.Scalar() : "";
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
    if (ec != std::errc() || end != s.data() + s.size() || n < 1) {
      f.error(v, "max_output_tokens", "expected a positive integer");
      return;
    }
    c.max_output_tokens = n;
  });
  f.on("llm_retry", [&](const YAML::Node& v) { apply_retry(v, where, "llm_retry.", c.llm_retry, errors); });
  f.boolean("tools", c.tools);
  f.duration("tool_latency", c.tool_latency);
  f.number("tool_error_rate", c.tool_error_rate, 0.0, 1.0);
  f.integer("max_tool_steps", c.max_tool_steps, 0, 64);
  f.on("tool_retry", [&](const YAML::Node& v) { apply_retry(v, where, "tool_retry.", c.tool_retry, errors); });
  f.on("store_retry", [&](const YAML::Node& v) { apply_retry(v, where, "store_retry.", c.store_retry, errors); });
  f.on("breakers", [&](const YAML::Node& v) {
    Fields b(v, where, "breakers.", errors);
    if (!v.IsMap()) {
      b.error(v, "", "expected a map {llm, tools, store, memory}");
      return;
    }
    b.on("llm", [&](const YAML::Node& n) { apply_breaker(n, where, "breakers.llm.", c.llm_breaker, errors); });
    b.on("tools", [&](const YAML::Node& n) { apply_breaker(n, where, "breakers.tools.", c.tool_breaker, errors); });
    b.on("store", [&](const YAML::Node& n) { apply_breaker(n, where, "breakers.store.", c.store_breaker, errors); });
    b.on("memory", [&](const YAML::Node& n) { apply_breaker(n, where, "breakers.memory.", c.memory_breaker, errors); });
    b.reject_unknown();
  });
  f.on("degradation", [&](const YAML::Node& v) {
    Fields d(v, where, "degradation.", errors);
    if (!v.IsMap()) {
      d.error(v, "", "expected a map {recovery_hold, multiple_failures_core_only}");
      return;
    }
    d.duration_as("recovery_hold", c.degradation.recovery_hold);
    d.boolean("multiple_failures_core_only", c.degradation.multiple_failures_core_only);
    d.reject_unknown();
  });
  f.duration("maintenance_interval", c.maintenance_interval);
  f.duration("drain", c.drain);
  f.integer("seed", c.seed, 0, std::numeric_limits<std::int64_t>::max());
  f.boolean("log", c.log);
  f.reject_unknown();
}

void load_runtime_config_file(const std::string& path, RuntimeConfig& config, std::vector<std::string>& errors) {
  std::ifstream in(path);
  if (!in) {
    errors.push_back(path + ": cannot read");
    return;
  }
  std::stringstream text;
  text << in.rdbuf();
  YAML::Node root;
  try {
    root = YAML::Load(text.str());
  } catch (const YAML::Exception& e) {
    errors.push_back(path + ":" + std::to_string(e.mark.line + 1) + ": " + e.msg);
    return;
  }
  apply_runtime_yaml(root, path, config, errors);
}

}  // namespace lab::runtime
