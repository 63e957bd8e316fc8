#include "common/http/http1_parser.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "common/http/http1_chars.hpp"

namespace lab::http {

namespace {

using http1::iequals;

bool is_tchar(unsigned char c) { return http1::is_token_char(c); }

bool is_digit(char c) { return c >= '0' && c <= '9'; }

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Calls f(element) for each non-empty element of a comma-separated list.
template <class F>
void for_each_element(std::string_view list, F&& f) {
  while (!list.empty()) {
    const auto comma = list.find(',');
    const auto element = trim_ows(list.substr(0, comma));
    if (!element.empty()) f(element);
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
}

std::optional<std::uint64_t> parse_decimal(std::string_view s) {
  if (s.empty() || s.size() > 19) return std::nullopt;  // 19 digits always fit in 64 bits
  std::uint64_t v = 0;
  for (char c : s) {
    if (!is_digit(c)) return std::nullopt;
    v = v * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return v;
}

// Where the first LF in data[from, end) is, or npos.
std::size_t find_newline(std::string_view data, std::size_t from, std::size_t end) {
  if (from >= end) return std::string_view::npos;  // memchr must not see the null of an empty view
  const void* found = std::memchr(data.data() + from, '\n', end - from);
  return found ? static_cast<std::size_t>(static_cast<const char*>(found) - data.data()) : std::string_view::npos;
}

// The line [start, end) without its CR, if any.
std::string_view line_at(std::string_view data, std::size_t start, std::size_t newline) {
  std::string_view line = data.substr(start, newline - start);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  return line;
}

// True when `s` holds a byte a field value or reason phrase may not: a control byte other than
// HTAB, or DEL (RFC 9110 §5.5). Eight bytes at a time; bytes from 0x80 (obs-text) pass.
bool has_bad_value_byte(std::string_view s) {
  constexpr std::uint64_t kOnes = 0x0101010101010101ULL;
  constexpr std::uint64_t kHighs = 0x8080808080808080ULL;
  const char* p = s.data();
  std::size_t n = s.size();
  for (; n >= 8; p += 8, n -= 8) {
    std::uint64_t w;
    std::memcpy(&w, p, 8);
    const std::uint64_t below_space = (w - 0x20 * kOnes) & ~w & kHighs;
    const std::uint64_t del = w ^ (0x7f * kOnes);
    if (((del - kOnes) & ~del & kHighs) | below_space) break;  // look byte by byte (HTAB is fine)
  }
  for (; n > 0; ++p, --n) {
    const auto c = static_cast<unsigned char>(*p);
    if ((c < 0x20 && c != '\t') || c == 0x7f) return true;
  }
  return false;
}

}  // namespace

std::string_view to_string(Http1Error e) {
  switch (e) {
    case Http1Error::kNone: return "no error";
    case Http1Error::kBadStatusLine: return "bad status line";
    case Http1Error::kBadHeader: return "bad header field";
    case Http1Error::kHeaderTooLarge: return "response header over the size limit";
    case Http1Error::kBadContentLength: return "bad Content-Length";
    case Http1Error::kBadChunk: return "bad chunked encoding";
    case Http1Error::kBodyTooLarge: return "response body over the size limit";
    case Http1Error::kTruncated: return "connection closed before the response ended";
  }
  return "unknown";
}

void Http1ResponseParser::reset(const Http1Limits& limits, bool head_request,
                                std::vector<std::pair<std::string, std::string>>* headers) {
  limits_ = limits;
  headers_ = headers;
  if (headers_) headers_->clear();
  state_ = State::kHeader;
  error_ = Http1Error::kNone;
  head_request_ = head_request;
  header_done_ = false;
  line_start_ = 0;
  status_line_seen_ = false;
  status_ = 0;
  minor_version_ = 1;
  keep_alive_ = true;
  connection_close_ = false;
  connection_keep_alive_ = false;
  chunked_ = false;
  has_transfer_encoding_ = false;
  content_length_.reset();
  content_type_.clear();
  framing_ = Framing::kNone;
  remaining_ = 0;
  body_bytes_ = 0;
}

std::optional<std::uint64_t> Http1ResponseParser::content_length() const {
  if (framing_ == Framing::kLength) return content_length_;
  return std::nullopt;
}

std::size_t Http1ResponseParser::fail(Http1Error e) {
  state_ = State::kFailed;
  error_ = e;
  keep_alive_ = false;
  return 0;
}

std::size_t Http1ResponseParser::parse(std::string_view data, std::string_view& body) {
  body = {};
  std::size_t used = 0;
  for (;;) {
    const std::string_view rest = data.substr(used);
    switch (state_) {
      case State::kHeader: {
        const std::size_t n = parse_header(rest);
        used += n;
        // n > 0 with the state unchanged: an interim (1xx) response or a blank line was skipped.
        if (state_ != State::kHeader || n == 0) return used;
        continue;
      }
      case State::kBody:
      case State::kChunkData:
        return used + take_body(rest, body);
      case State::kChunkSize: {
        const std::size_t n = parse_chunk_size(rest);
        if (n == 0) return used;
        used += n;
        continue;
      }
      case State::kChunkEnd: {
        if (rest.empty()) return used;
        if (rest[0] == '\n') {
          used += 1;
        } else if (rest[0] != '\r') {
          return used + fail(Http1Error::kBadChunk);
        } else if (rest.size() < 2) {
          return used;
        } else if (rest[1] != '\n') {
          return used + fail(Http1Error::kBadChunk);
        } else {
          used += 2;
        }
        state_ = State::kChunkSize;
        continue;
      }
      case State::kTrailer:
        return used + parse_trailer(rest);
      case State::kDone:
      case State::kFailed:
        return used;
    }
  }
}

void Http1ResponseParser::require_unused_bytes_kept(std::string_view data) const {
  if (line_start_ <= data.size()) return;
  std::fprintf(stderr, "Http1ResponseParser: the caller dropped bytes the parser had not used\n");
  std::abort();
}

std::size_t Http1ResponseParser::parse_header(std::string_view data) {
  // Each line is handled once, when its LF arrives; what it says is kept by value, so the
  // caller may move the unused bytes between calls. The block is used only once it is complete.
  require_unused_bytes_kept(data);
  for (;;) {
    const std::size_t newline = find_newline(data, line_start_, data.size());
    if (newline == std::string_view::npos) {
      if (data.size() > limits_.max_header_bytes) return fail(Http1Error::kHeaderTooLarge);
      return 0;
    }
    if (newline + 1 > limits_.max_header_bytes) return fail(Http1Error::kHeaderTooLarge);
    const std::string_view line = line_at(data, line_start_, newline);
    line_start_ = newline + 1;
    if (line.empty()) {
      line_start_ = 0;
      if (!status_line_seen_) return newline + 1;  // a blank line before the status line: skip it
      if (!end_header()) return 0;
      return newline + 1;
    }
    if (!status_line_seen_ ? !on_status_line(line) : !on_field_line(line)) return 0;
  }
}

bool Http1ResponseParser::on_status_line(std::string_view line) {
  // "HTTP/1.x NNN" then " reason" (possibly empty) or nothing.
  if (line.size() < 12 || line.substr(0, 7) != "HTTP/1." || !is_digit(line[7]) || line[8] != ' ' ||
      !is_digit(line[9]) || !is_digit(line[10]) || !is_digit(line[11]) ||
      (line.size() > 12 && line[12] != ' ') || has_bad_value_byte(line.substr(12))) {
    fail(Http1Error::kBadStatusLine);
    return false;
  }
  const auto status =
      static_cast<unsigned>((line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0'));
  if (status < 100) {
    fail(Http1Error::kBadStatusLine);
    return false;
  }
  minor_version_ = static_cast<unsigned>(line[7] - '0');
  status_ = status;
  status_line_seen_ = true;
  // Fields of an interim response skipped before this one do not count.
  if (headers_) headers_->clear();
  connection_close_ = connection_keep_alive_ = chunked_ = has_transfer_encoding_ = false;
  content_length_.reset();
  content_type_.clear();
  return true;
}

bool Http1ResponseParser::on_field_line(std::string_view line) {
  const auto colon = line.find(':');
  // No name, no colon, or a folded continuation line (obsolete and refused by RFC 9112).
  if (colon == 0 || colon == std::string_view::npos) {
    fail(Http1Error::kBadHeader);
    return false;
  }
  const std::string_view name = line.substr(0, colon);
  for (unsigned char c : name)
    if (!is_tchar(c)) {
      fail(Http1Error::kBadHeader);
      return false;
    }
  const std::string_view value = trim_ows(line.substr(colon + 1));
  if (has_bad_value_byte(value)) {
    fail(Http1Error::kBadHeader);
    return false;
  }
  return on_field(name, value);
}

bool Http1ResponseParser::end_header() {
  status_line_seen_ = false;
  if (status_ / 100 == 1 && status_ != 101) return true;  // interim: the real response follows

  keep_alive_ = minor_version_ >= 1 ? !connection_close_ : connection_keep_alive_ && !connection_close_;
  if (head_request_ || status_ == 204 || status_ == 304 || status_ == 101) {
    framing_ = Framing::kNone;
    if (status_ == 101) keep_alive_ = false;  // we never ask to switch protocols
  } else if (has_transfer_encoding_) {
    // Transfer-Encoding wins over Content-Length; both at once hints at smuggling: no reuse.
    if (content_length_) keep_alive_ = false;
    framing_ = chunked_ ? Framing::kChunked : Framing::kUntilClose;
  } else if (content_length_) {
    if (*content_length_ > limits_.max_body_bytes) {
      fail(Http1Error::kBodyTooLarge);
      return false;
    }
    framing_ = Framing::kLength;
  } else {
    framing_ = Framing::kUntilClose;
  }
  header_done_ = true;
  switch (framing_) {
    case Framing::kNone: state_ = State::kDone; break;
    case Framing::kLength:
      remaining_ = *content_length_;
      state_ = remaining_ == 0 ? State::kDone : State::kBody;
      break;
    case Framing::kChunked: state_ = State::kChunkSize; break;
    case Framing::kUntilClose:
      keep_alive_ = false;
      state_ = State::kBody;
      break;
  }
  return true;
}

bool Http1ResponseParser::on_field(std::string_view name, std::string_view value) {
  switch (name.size()) {
    case 10:
      if (iequals(name, "connection"))
        for_each_element(value, [&](std::string_view token) {
          if (iequals(token, "close")) connection_close_ = true;
          else if (iequals(token, "keep-alive")) connection_keep_alive_ = true;
        });
      break;
    case 12:
      if (iequals(name, "content-type")) content_type_.assign(value);
      break;
    case 14:
      if (iequals(name, "content-length")) {
        // A list of identical values is accepted (RFC 9112 §6.3), anything else is not.
        bool ok = true, any = false;
        for_each_element(value, [&](std::string_view element) {
          const auto n = parse_decimal(element);
          if (!n || (content_length_ && *content_length_ != *n)) ok = false;
          else content_length_ = n;
          any = true;
        });
        if (!ok || !any) {
          fail(Http1Error::kBadContentLength);
          return false;
        }
      }
      break;
    case 17:
      if (iequals(name, "transfer-encoding")) {
        has_transfer_encoding_ = true;
        // Only the last coding says whether the body is chunked.
        std::string_view last;
        for_each_element(value, [&](std::string_view coding) { last = coding; });
        chunked_ = iequals(last, "chunked");
      }
      break;
    default: break;
  }
  if (headers_) headers_->emplace_back(name, value);
  return true;
}

std::size_t Http1ResponseParser::take_body(std::string_view data, std::string_view& body) {
  if (data.empty()) return 0;
  std::size_t n = data.size();
  if (framing_ == Framing::kUntilClose) {
    if (n > limits_.max_body_bytes - body_bytes_) return fail(Http1Error::kBodyTooLarge);
  } else {
    n = static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, n));
    remaining_ -= n;
    if (remaining_ == 0) state_ = framing_ == Framing::kChunked ? State::kChunkEnd : State::kDone;
  }
  body_bytes_ += n;
  body = data.substr(0, n);
  return n;
}

std::size_t Http1ResponseParser::parse_chunk_size(std::string_view data) {
  const std::size_t newline = find_newline(data, 0, std::min(data.size(), kMaxChunkLineBytes));
  if (newline == std::string_view::npos) {
    if (data.size() >= kMaxChunkLineBytes) return fail(Http1Error::kBadChunk);
    return 0;
  }
  const std::string_view line = line_at(data, 0, newline);
  std::uint64_t size = 0;
  std::size_t i = 0;
  for (; i < line.size(); ++i) {
    const int d = hex_value(line[i]);
    if (d < 0) break;
    if (size >> 60) return fail(Http1Error::kBadChunk);  // would overflow 64 bits
    size = size * 16 + static_cast<std::uint64_t>(d);
  }
  if (i == 0) return fail(Http1Error::kBadChunk);
  const std::string_view ext = trim_ows(line.substr(i));  // BWS, then ";name=value" extensions
  if (!ext.empty() && ext.front() != ';') return fail(Http1Error::kBadChunk);
  for (unsigned char c : ext)
    if ((c < 0x20 && c != '\t') || c == 0x7f) return fail(Http1Error::kBadChunk);
  if (size == 0) {
    state_ = State::kTrailer;
    line_start_ = 0;
  } else {
    if (size > limits_.max_body_bytes - body_bytes_) return fail(Http1Error::kBodyTooLarge);
    remaining_ = size;
    state_ = State::kChunkData;
  }
  return newline + 1;
}

std::size_t Http1ResponseParser::parse_trailer(std::string_view data) {
  // Trailer fields are read and dropped; together they are bounded like the header.
  require_unused_bytes_kept(data);
  for (;;) {
    const std::size_t newline = find_newline(data, line_start_, data.size());
    if (newline == std::string_view::npos) {
      if (data.size() > limits_.max_header_bytes) return fail(Http1Error::kHeaderTooLarge);
      return 0;
    }
    if (newline + 1 > limits_.max_header_bytes) return fail(Http1Error::kHeaderTooLarge);
    const std::string_view line = line_at(data, line_start_, newline);
    line_start_ = newline + 1;
    if (line.empty()) {
      line_start_ = 0;
      state_ = State::kDone;
      return newline + 1;
    }
  }
}

void Http1ResponseParser::finish_on_eof() {
  if (state_ == State::kDone || state_ == State::kFailed) return;
  if (state_ == State::kBody && framing_ == Framing::kUntilClose) {
    state_ = State::kDone;
    keep_alive_ = false;
    return;
  }
  fail(Http1Error::kTruncated);
}

}  // namespace lab::http
