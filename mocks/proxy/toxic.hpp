#pragma once
// Toxics as Toxiproxy defines them: a type, a direction (`stream`), a probability per connection
// (`toxicity`) and type-specific integer attributes. Pure data and JSON here; the effect on the
// bytes lives in link.cpp.
//
// JSON shape (Toxiproxy's ToxicWrapper, same key order):
//   {"attributes":{"latency":100,"jitter":10},"name":"latency_downstream","type":"latency",
//    "stream":"downstream","toxicity":1}

#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/object.hpp>

namespace lab::mocks::proxy {

/// `upstream`: client → server bytes; `downstream`: server → client (Toxiproxy's default).
enum class Direction { kUpstream = 0, kDownstream = 1 };
inline constexpr int kDirections = 2;

enum class ToxicType { kLatency, kBandwidth, kSlowClose, kTimeout, kResetPeer, kSlicer, kLimitData };

std::string_view to_string(Direction d);
std::string_view to_string(ToxicType t);
std::optional<Direction> parse_direction(std::string_view s);
std::optional<ToxicType> parse_toxic_type(std::string_view s);

/// Every attribute any toxic has; a toxic reads and reports only its own (see attribute_names).
/// Units as Toxiproxy: latency/jitter/timeout ms, slow_close delay ms, slicer delay µs,
/// rate KB/s (1 KB = 1000 bytes), sizes and limits in bytes.
struct ToxicAttributes {
  std::int64_t latency = 0;         ///< latency: ms added to every chunk
  std::int64_t jitter = 0;          ///< latency: ± ms, uniform
  std::int64_t rate = 0;            ///< bandwidth: KB/s; 0 = unlimited
  std::int64_t delay = 0;           ///< slow_close: ms before the close; slicer: µs between slices
  std::int64_t timeout = 0;         ///< timeout / reset_peer: ms; timeout 0 = forever
  std::int64_t average_size = 0;    ///< slicer: bytes per slice on average
  std::int64_t size_variation = 0;  ///< slicer: ± bytes
  std::int64_t bytes = 0;           ///< limit_data: bytes passed before the close
};

struct Toxic {
  std::string name;  ///< unique within a proxy; defaults to "<type>_<stream>"
  ToxicType type = ToxicType::kLatency;
  Direction stream = Direction::kDownstream;
  double toxicity = 1.0;  ///< probability that the toxic acts on a connection (drawn per connection)
  ToxicAttributes attributes;
  /// Identity kept across updates (0 until the registry assigns one); `revision` grows with
  /// every update so live connections know to re-draw toxicity and restart timers.
  std::uint64_t id = 0;
  std::uint64_t revision = 0;
};

/// The attribute keys of a type, in Toxiproxy's JSON order.
std::vector<std::string_view> attribute_names(ToxicType type);

/// Reads the attributes of `type` from `in` over the values already in `attrs` (so an update
/// may name only some of them). Unknown keys are ignored, as Toxiproxy does. Returns an error
/// message ("" when fine) for a non-integer value.
std::string read_attributes(ToxicType type, const boost::json::object& in, ToxicAttributes& attrs);

/// Checks ranges: no negative attribute; slicer needs average_size ≥ 1 and
/// size_variation < average_size. Returns "" when valid, else the problem.
std::string validate(const Toxic& toxic);

boost::json::object attributes_json(const Toxic& toxic);
/// The Toxiproxy JSON object of a toxic.
boost::json::object to_json(const Toxic& toxic);

/// A number as Toxiproxy prints its float32 toxicity: integral values as integers.
boost::json::value toxicity_json(double toxicity);

/// The slice sizes the slicer cuts `total` bytes into (they sum to `total`): halves are split
/// around the middle ± size_variation until a piece is within size_variation of average_size,
/// Toxiproxy's recursive scheme, so no slice tends to be small at the start or the end.
std::vector<std::size_t> slice_sizes(std::size_t total, std::int64_t average_size,
                                     std::int64_t size_variation, std::mt19937_64& rng);

/// One latency draw: latency ± jitter ms (uniform in [latency - jitter, latency + jitter)),
/// never below zero.
std::int64_t latency_draw_ms(const ToxicAttributes& a, std::mt19937_64& rng);

}  // namespace lab::mocks::proxy
