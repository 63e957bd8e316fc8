#pragma once
// Small Boost.JSON helpers shared by the harness, the mock LLM and the runtime.

#include <optional>
#include <string>
#include <string_view>

#include <boost/json/value.hpp>

namespace lab::json {

namespace bj = boost::json;

/// Parses text; nullopt (and `error` set when given) on malformed JSON. Never throws.
std::optional<bj::value> parse(std::string_view text, std::string* error = nullptr);

/// The value at an RFC 6901 JSON pointer ("/a/0/b"), or nullptr. "" is the whole document.
const bj::value* at_pointer(const bj::value& doc, std::string_view pointer);

/// A scalar rendered as text for templating and captures: strings as-is (no quotes), numbers and
/// booleans as JSON, null as "null", objects/arrays as compact JSON.
std::string to_text(const bj::value& v);

/// Appends `s` to `out` as a JSON string literal body (escaped, without quotes).
void append_escaped(std::string& out, std::string_view s);

}  // namespace lab::json
