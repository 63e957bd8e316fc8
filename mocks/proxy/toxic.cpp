#include "mocks/proxy/toxic.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

namespace lab::mocks::proxy {

namespace bj = boost::json;

namespace {

struct TypeName {
  ToxicType type;
  std::string_view name;
};

constexpr TypeName kTypeNames[] = {
    {ToxicType::kLatency, "latency"},       {ToxicType::kBandwidth, "bandwidth"},
    {ToxicType::kSlowClose, "slow_close"},  {ToxicType::kTimeout, "timeout"},
    {ToxicType::kResetPeer, "reset_peer"},  {ToxicType::kSlicer, "slicer"},
    {ToxicType::kLimitData, "limit_data"},
};

std::int64_t* field(ToxicAttributes& a, std::string_view key) {
  if (key == "latency") return &a.latency;
  if (key == "jitter") return &a.jitter;
  if (key == "rate") return &a.rate;
  if (key == "delay") return &a.delay;
  if (key == "timeout") return &a.timeout;
  if (key == "average_size") return &a.average_size;
  if (key == "size_variation") return &a.size_variation;
  if (key == "bytes") return &a.bytes;
  return nullptr;
}

std::int64_t field(const ToxicAttributes& a, std::string_view key) {
  return *field(const_cast<ToxicAttributes&>(a), key);
}

/// An integer from a JSON number; integral doubles (1000.0) are accepted.
std::optional<std::int64_t> integer_of(const bj::value& v) {
  if (v.is_int64()) return v.get_int64();
  if (v.is_uint64()) {
    if (v.get_uint64() > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
      return std::nullopt;
    }
    return static_cast<std::int64_t>(v.get_uint64());
  }
  if (v.is_double()) {
    const double d = v.get_double();
    if (std::trunc(d) != d || std::fabs(d) > 9.0e18) return std::nullopt;
    return static_cast<std::int64_t>(d);
  }
  return std::nullopt;
}

void chunk(std::size_t start, std::size_t end, std::int64_t average, std::int64_t variation,
           std::mt19937_64& rng, std::vector<std::size_t>& out) {
  const auto size = static_cast<std::int64_t>(end - start);
  if (size - average <= variation) {
    out.push_back(end - start);
    return;
  }
  std::int64_t offset = 0;
  if (variation > 0) {
    offset = std::uniform_int_distribution<std::int64_t>(0, 2 * variation - 1)(rng) - variation;
  }
  const std::size_t mid = start + static_cast<std::size_t>(size / 2 + offset);
  chunk(start, mid, average, variation, rng, out);
  chunk(mid, end, average, variation, rng, out);
}

}  // namespace

std::string_view to_string(Direction d) {
  return d == Direction::kUpstream ? "upstream" : "downstream";
}

std::string_view to_string(ToxicType t) {
  for (const TypeName& n : kTypeNames) {
    if (n.type == t) return n.name;
  }
  return "unknown";
}

std::optional<Direction> parse_direction(std::string_view s) {
  if (s == "upstream") return Direction::kUpstream;
  if (s == "downstream") return Direction::kDownstream;
  return std::nullopt;
}

std::optional<ToxicType> parse_toxic_type(std::string_view s) {
  for (const TypeName& n : kTypeNames) {
    if (n.name == s) return n.type;
  }
  return std::nullopt;
}

std::vector<std::string_view> attribute_names(ToxicType type) {
  switch (type) {
    case ToxicType::kLatency: return {"latency", "jitter"};
    case ToxicType::kBandwidth: return {"rate"};
    case ToxicType::kSlowClose: return {"delay"};
    case ToxicType::kTimeout: return {"timeout"};
    case ToxicType::kResetPeer: return {"timeout"};
    case ToxicType::kSlicer: return {"average_size", "size_variation", "delay"};
    case ToxicType::kLimitData: return {"bytes"};
  }
  return {};
}

std::string read_attributes(ToxicType type, const bj::object& in, ToxicAttributes& attrs) {
  for (std::string_view key : attribute_names(type)) {
    const bj::value* v = in.if_contains(key);
    if (v == nullptr || v->is_null()) continue;
    const auto n = integer_of(*v);
    if (!n) {
      return "attribute " + std::string(key) + " of " + std::string(to_string(type)) +
             " must be an integer, got " + bj::serialize(*v);
    }
    *field(attrs, key) = *n;
  }
  return {};
}

std::string validate(const Toxic& toxic) {
  for (std::string_view key : attribute_names(toxic.type)) {
    if (field(toxic.attributes, key) < 0) {
      return "attribute " + std::string(key) + " must not be negative";
    }
  }
  if (toxic.type == ToxicType::kSlicer) {
    if (toxic.attributes.average_size < 1) return "slicer average_size must be at least 1";
    if (toxic.attributes.size_variation >= toxic.attributes.average_size) {
      return "slicer size_variation must be smaller than average_size";
    }
  }
  if (std::isnan(toxic.toxicity)) return "toxicity must be a number";
  return {};
}

bj::object attributes_json(const Toxic& toxic) {
  bj::object out;
  for (std::string_view key : attribute_names(toxic.type)) {
    out[key] = field(toxic.attributes, key);
  }
  return out;
}

bj::value toxicity_json(double toxicity) {
  if (std::trunc(toxicity) == toxicity && std::fabs(toxicity) < 1e15) {
    return static_cast<std::int64_t>(toxicity);
  }
  return toxicity;
}

bj::object to_json(const Toxic& toxic) {
  bj::object out;
  out["attributes"] = attributes_json(toxic);
  out["name"] = toxic.name;
  out["type"] = to_string(toxic.type);
  out["stream"] = to_string(toxic.stream);
  out["toxicity"] = toxicity_json(toxic.toxicity);
  return out;
}

std::vector<std::size_t> slice_sizes(std::size_t total, std::int64_t average_size,
                                     std::int64_t size_variation, std::mt19937_64& rng) {
  std::vector<std::size_t> out;
  if (total == 0) return out;
  const std::int64_t average = std::max<std::int64_t>(1, average_size);
  const std::int64_t variation = std::clamp<std::int64_t>(size_variation, 0, average - 1);
  chunk(0, total, average, variation, rng, out);
  return out;
}

std::int64_t latency_draw_ms(const ToxicAttributes& a, std::mt19937_64& rng) {
  std::int64_t delay = a.latency;
  if (a.jitter > 0) {
    delay += std::uniform_int_distribution<std::int64_t>(0, 2 * a.jitter - 1)(rng) - a.jitter;
  }
  return std::max<std::int64_t>(0, delay);
}

}  // namespace lab::mocks::proxy
