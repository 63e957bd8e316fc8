#include "mocks/llm/profile.hpp"

#include <fstream>
#include <functional>
#include <limits>
#include <sstream>

#include <boost/json/value.hpp>
#include <yaml-cpp/yaml.h>

namespace lab::mocks::llm {

namespace {

class Reader {
 public:
  explicit Reader(std::string_view name) : name_(name) {}

  void error(const YAML::Node& node, std::string_view field, std::string_view message) {
    std::string line = name_;
    if (node.IsDefined() && node.Mark().line >= 0) line += ":" + std::to_string(node.Mark().line + 1);
    errors_.push_back(line + ": " + std::string(field) + ": " + std::string(message));
  }

  // Calls handlers for known keys; reports unknown ones.
  void fields(const YAML::Node& map, std::string_view path,
              const std::vector<std::pair<std::string, std::function<void(const YAML::Node&, const std::string&)>>>& known) {
    if (!map.IsMap()) {
      error(map, path, "expected a mapping");
      return;
    }
    for (const auto& kv : map) {
      const std::string key = kv.first.as<std::string>("");
      const std::string field = path.empty() ? key : std::string(path) + "." + key;
      bool found = false;
      for (const auto& [name, handler] : known) {
        if (name == key) {
          handler(kv.second, field);
          found = true;
          break;
        }
      }
      if (!found) {
        std::string expected;
        for (const auto& [name, handler] : known) expected += (expected.empty() ? "" : ", ") + std::string(name);
        error(kv.first, field, "unknown field (expected one of: " + expected + ")");
      }
    }
  }

  bool number(const YAML::Node& node, const std::string& field, double& out, double lo, double hi) {
    double v = 0.0;
    if (!node.IsScalar() || !YAML::convert<double>::decode(node, v) || !(v >= lo && v <= hi)) {
      std::ostringstream msg;
      msg << "expected a number in [" << lo << ", " << hi << "]";
      error(node, field, msg.str());
      return false;
    }
    out = v;
    return true;
  }

  template <typename Int>
  bool integer(const YAML::Node& node, const std::string& field, Int& out, long long lo, long long hi) {
    long long v = 0;
    if (!node.IsScalar() || !YAML::convert<long long>::decode(node, v) || v < lo || v > hi) {
      error(node, field, "expected an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
      return false;
    }
    out = static_cast<Int>(v);
    return true;
  }

  bool boolean(const YAML::Node& node, const std::string& field, bool& out) {
    bool v = false;
    if (!node.IsScalar() || !YAML::convert<bool>::decode(node, v)) {
      error(node, field, "expected true or false");
      return false;
    }
    out = v;
    return true;
  }

  // A distribution: a bare number (constant) or {dist, mean<unit>, stddev<unit> | jitter,
  // min<unit>, max<unit>}; unit is "_ms" for latencies and "" for token counts.
  void distribution(const YAML::Node& node, const std::string& field, Distribution& out,
                    std::string_view unit, double hi) {
    if (node.IsScalar()) {
      double v = 0.0;
      if (number(node, field, v, 0.0, hi)) out = Distribution::constant(v);
      return;
    }
    Distribution d;
    double jitter = -1.0;
    bool stddev_given = false;
    bool mean_given = false;
    const std::string u(unit);
    fields(node, field,
           {{"dist", [&](const YAML::Node& n, const std::string& f) {
               const std::optional<DistKind> kind = dist_kind_from(n.as<std::string>(""));
               if (!kind) error(n, f, "expected constant, normal or lognormal");
               else d.kind = *kind;
             }},
            {"mean" + u, [&](const YAML::Node& n, const std::string& f) { mean_given = number(n, f, d.mean, 0.0, hi); }},
            {"stddev" + u, [&](const YAML::Node& n, const std::string& f) { stddev_given = number(n, f, d.stddev, 0.0, hi); }},
            {"jitter", [&](const YAML::Node& n, const std::string& f) { number(n, f, jitter, 0.0, 10.0); }},
            {"min" + u, [&](const YAML::Node& n, const std::string& f) { number(n, f, d.min, 0.0, hi); }},
            {"max" + u, [&](const YAML::Node& n, const std::string& f) { number(n, f, d.max, 0.0, hi); }}});
    if (!mean_given && node.IsMap()) error(node, field, "mean" + u + " is required");
    if (jitter >= 0.0) {
      if (stddev_given) error(node, field, "give either stddev" + u + " or jitter, not both");
      d.stddev = jitter * d.mean;
    }
    if (d.kind == DistKind::kConstant && d.stddev > 0.0) d.kind = DistKind::kNormal;
    if (d.min > d.max) error(node, field, "min" + u + " is above max" + u);
    out = d;
  }

  void rate_limit(const YAML::Node& node, const std::string& field, RateLimit& out) {
    fields(node, field,
           {{"rpm", [&](const YAML::Node& n, const std::string& f) { integer(n, f, out.rpm, 0, 1'000'000'000); }},
            {"tpm", [&](const YAML::Node& n, const std::string& f) { integer(n, f, out.tpm, 0, 1'000'000'000'000LL); }}});
  }

  // YAML → JSON for fault rules (scalars become numbers or booleans when they parse as such).
  boost::json::value to_json(const YAML::Node& node) {
    if (node.IsMap()) {
      boost::json::object o;
      for (const auto& kv : node) o[kv.first.as<std::string>("")] = to_json(kv.second);
      return o;
    }
    if (node.IsSequence()) {
      boost::json::array a;
      for (const auto& item : node) a.push_back(to_json(item));
      return a;
    }
    if (!node.IsScalar()) return nullptr;
    const std::string text = node.Scalar();
    long long i = 0;
    double d = 0.0;
    bool b = false;
    if (node.Tag() != "!" && YAML::convert<long long>::decode(node, i)) return i;
    if (node.Tag() != "!" && YAML::convert<double>::decode(node, d)) return d;
    if (node.Tag() != "!" && YAML::convert<bool>::decode(node, b)) return b;
    return boost::json::string(text);
  }

  std::vector<std::string>& errors() { return errors_; }

 private:
  std::string name_;
  std::vector<std::string> errors_;
};

}  // namespace

std::variant<Profile, std::vector<std::string>> parse_profile(std::string_view yaml,
                                                              std::string_view name) {
  Profile p;
  Reader r(name);
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml));
  } catch (const YAML::Exception& e) {
    return std::vector<std::string>{std::string(name) + ":" + std::to_string(e.mark.line + 1) +
                                    ": " + e.msg};
  }
  if (root.IsNull()) return p;  // an empty profile is the defaults
  constexpr double kMaxMs = 3'600'000.0;
  using F = const std::string&;
  using N = const YAML::Node&;
  r.fields(root, "",
    {{"models", [&](N n, F f) {
        if (!n.IsSequence() || n.size() == 0) {
          r.error(n, f, "expected a non-empty list of model names");
          return;
        }
        p.models.clear();
        for (const auto& m : n) {
          if (!m.IsScalar() || m.Scalar().empty()) r.error(m, f, "expected a model name");
          else p.models.push_back(m.Scalar());
        }
      }},
     {"accept_any_model", [&](N n, F f) { r.boolean(n, f, p.accept_any_model); }},
     {"latency", [&](N n, F f) {
        r.fields(n, f,
          {{"ttft", [&](N m, F g) { r.distribution(m, g, p.latency.ttft_ms, "_ms", kMaxMs); }},
           {"prefill_ms_per_token", [&](N m, F g) { r.number(m, g, p.latency.prefill_ms_per_token, 0.0, 1000.0); }},
           {"itl", [&](N m, F g) { r.distribution(m, g, p.latency.itl_ms, "_ms", kMaxMs); }},
           {"pacing_quantum_us", [&](N m, F g) {
              long long us = 250;
              if (r.integer(m, g, us, 0, 100'000)) p.latency.pacing_quantum = Micros(us);
            }}});
      }},
     {"output", [&](N n, F f) {
        r.fields(n, f,
          {{"tokens", [&](N m, F g) { r.distribution(m, g, p.output.tokens, "", 1'000'000.0); }},
           {"use_max_tokens", [&](N m, F g) { r.boolean(m, g, p.output.use_max_tokens); }}});
      }},
     {"load", [&](N n, F f) {
        r.fields(n, f,
          {{"max_num_seqs", [&](N m, F g) { r.integer(m, g, p.load.max_num_seqs, 1, 1'000'000); }},
           {"max_waiting", [&](N m, F g) { r.integer(m, g, p.load.max_waiting, 0, 10'000'000); }},
           {"time_factor_under_load", [&](N m, F g) { r.number(m, g, p.load.time_factor_under_load, 1.0, 1000.0); }},
           {"retry_after_s", [&](N m, F g) {
              long long s = 1;
              if (r.integer(m, g, s, 1, 86'400)) p.load.retry_after = std::chrono::seconds(s);
            }}});
      }},
     {"rate_limits", [&](N n, F f) {
        r.fields(n, f,
          {{"default", [&](N m, F g) { r.rate_limit(m, g, p.default_rate_limit); }},
           {"keys", [&](N m, F g) {
              if (!m.IsMap()) {
                r.error(m, g, "expected a mapping of API key → {rpm, tpm}");
                return;
              }
              for (const auto& kv : m) {
                const std::string key = kv.first.as<std::string>("");
                RateLimit limit;
                r.rate_limit(kv.second, g + "." + key, limit);
                p.key_rate_limits[key] = limit;
              }
            }}});
      }},
     {"tools", [&](N n, F f) {
        r.fields(n, f, {{"call_probability", [&](N m, F g) { r.number(m, g, p.tool_call_probability, 0.0, 1.0); }}});
      }},
     {"limits", [&](N n, F f) {
        r.fields(n, f,
          {{"max_body_bytes", [&](N m, F g) { r.integer(m, g, p.max_body_bytes, 1024, 1LL << 30); }},
           {"max_hang_s", [&](N m, F g) {
              long long s = 600;
              if (r.integer(m, g, s, 1, 86'400)) p.max_hang = std::chrono::seconds(s);
            }}});
      }},
     {"faults", [&](N n, F f) {
        if (!n.IsSequence()) {
          r.error(n, f, "expected a list of fault rules");
          return;
        }
        std::size_t i = 0;
        for (const auto& item : n) {
          auto parsed = parse_fault_rule(r.to_json(item));
          if (auto* errs = std::get_if<std::vector<std::string>>(&parsed)) {
            for (const std::string& e : *errs) r.error(item, f + "[" + std::to_string(i) + "]", e);
          } else {
            p.faults.push_back(std::get<FaultRule>(parsed));
          }
          ++i;
        }
      }}});
  if (!r.errors().empty()) return std::move(r.errors());
  return p;
}

std::variant<Profile, std::vector<std::string>> load_profile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::vector<std::string>{path + ": cannot read the profile file"};
  std::stringstream text;
  text << in.rdbuf();
  return parse_profile(text.str(), path);
}

}  // namespace lab::mocks::llm
