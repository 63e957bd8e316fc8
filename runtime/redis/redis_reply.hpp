#pragma once
// A Redis reply as an owned value tree (hiredis's redisReply copied out, so the hiredis object is
// freed at once). Error replies never appear here: the connection turns them into RedisErrc.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lab::runtime::redis {

struct RedisReply {
  enum class Type : std::uint8_t { kNil, kString, kStatus, kInteger, kArray };

  Type type = Type::kNil;
  std::string str;                   ///< kString (bulk) and kStatus ("OK")
  long long integer = 0;             ///< kInteger
  std::vector<RedisReply> elements;  ///< kArray

  bool is_nil() const noexcept { return type == Type::kNil; }
  bool is_array() const noexcept { return type == Type::kArray; }
  bool is_string() const noexcept { return type == Type::kString || type == Type::kStatus; }
  bool is_integer() const noexcept { return type == Type::kInteger; }
  std::size_t size() const noexcept { return elements.size(); }

  /// An integer reply, or a bulk string holding a decimal integer; nullopt otherwise.
  std::optional<long long> to_integer() const;
  /// A bulk/status string; empty for anything else.
  std::string_view view() const noexcept { return is_string() ? std::string_view(str) : std::string_view(); }
};

}  // namespace lab::runtime::redis
