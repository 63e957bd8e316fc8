#pragma once
// Hash-map plumbing for maps keyed by ids: lookups with a std::string_view, no temporary string.

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

namespace lab::runtime {

/// A transparent hash, so unordered containers keyed by std::string accept string_view lookups.
struct StringKeyHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};

template <class V>
using StringMap = std::unordered_map<std::string, V, StringKeyHash, std::equal_to<>>;
using StringSet = std::unordered_set<std::string, StringKeyHash, std::equal_to<>>;

}  // namespace lab::runtime
