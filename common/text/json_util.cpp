#include "common/text/json_util.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

namespace lab::json {

std::optional<bj::value> parse(std::string_view text, std::string* error) {
  boost::system::error_code ec;
  bj::value v = bj::parse(bj::string_view(text.data(), text.size()), ec);
  if (ec) {
    if (error) *error = ec.message();
    return std::nullopt;
  }
  return v;
}

const bj::value* at_pointer(const bj::value& doc, std::string_view pointer) {
  if (pointer.empty()) return &doc;
  boost::system::error_code ec;
  return doc.find_pointer(bj::string_view(pointer.data(), pointer.size()), ec);
}

std::string to_text(const bj::value& v) {
  if (v.is_string()) return std::string(v.get_string());
  return bj::serialize(v);
}

void append_escaped(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += "\\u00";
          out += kHex[(c >> 4) & 0xf];
          out += kHex[c & 0xf];
        } else {
          out += c;
        }
    }
  }
}

}  // namespace lab::json
