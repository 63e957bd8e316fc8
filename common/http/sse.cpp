// Server-Sent Events: the WHATWG event-stream parser and the matching formatter.
#include "common/http/sse.hpp"

#include <algorithm>
#include <limits>

namespace lab::http {

namespace {

constexpr std::string_view kBom = "\xEF\xBB\xBF";

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

/// Decimal digits to an integer, saturating instead of overflowing.
std::uint64_t parse_saturating(std::string_view digits) {
  constexpr std::uint64_t kMax = std::numeric_limits<std::uint64_t>::max();
  std::uint64_t value = 0;
  for (char c : digits) {
    const auto d = static_cast<std::uint64_t>(c - '0');
    if (value > (kMax - d) / 10) return kMax;
    value = value * 10 + d;
  }
  return value;
}

}  // namespace

bool SseParser::feed(std::string_view bytes, const OnEvent& on_event) {
  if (failed_) return false;
  if (!bom_checked_) {
    // line_ holds the first bytes of the stream while they could still be a BOM. Once they
    // cannot, they are parsed like any other input (they may contain a line end).
    while (!bytes.empty() && !bom_checked_) {
      line_.push_back(bytes.front());
      bytes.remove_prefix(1);
      if (kBom.substr(0, line_.size()) != line_) {
        bom_checked_ = true;
        std::string head;
        head.swap(line_);
        if (!feed_lines(head, on_event)) return false;
      } else if (line_.size() == kBom.size()) {
        bom_checked_ = true;
        line_.clear();
      }
    }
  }
  return feed_lines(bytes, on_event);
}

bool SseParser::feed_lines(std::string_view bytes, const OnEvent& on_event) {
  while (!bytes.empty()) {
    if (pending_cr_) {
      // The previous chunk ended in CR: a LF now is the second half of that CRLF.
      pending_cr_ = false;
      if (bytes.front() == '\n') {
        bytes.remove_prefix(1);
        continue;
      }
    }
    const std::size_t end = bytes.find_first_of("\r\n");
    if (end == std::string_view::npos) {
      if (line_.size() + bytes.size() > max_line_bytes_) {
        failed_ = true;
        return false;
      }
      line_.append(bytes);
      return true;
    }
    if (line_.size() + end > max_line_bytes_) {
      failed_ = true;
      return false;
    }
    if (line_.empty()) {
      process_line(bytes.substr(0, end), on_event);
    } else {
      line_.append(bytes.substr(0, end));
      process_line(line_, on_event);
      line_.clear();
    }
    if (bytes[end] == '\r') {
      if (end + 1 < bytes.size()) {
        bytes.remove_prefix(bytes[end + 1] == '\n' ? end + 2 : end + 1);
      } else {
        pending_cr_ = true;
        bytes.remove_prefix(end + 1);
      }
    } else {
      bytes.remove_prefix(end + 1);
    }
  }
  return true;
}

void SseParser::process_line(std::string_view line, const OnEvent& on_event) {
  if (line.empty()) {
    // Dispatch. The id buffer becomes the last event id even when nothing is dispatched.
    last_id_ = id_buffer_;
    if (!has_data_) {
      event_type_.clear();
      return;
    }
    SseEvent event;
    event.event = event_type_.empty() ? std::string("message") : std::move(event_type_);
    event.data = std::move(data_);
    event.id = last_id_;
    event_type_.clear();
    data_.clear();
    has_data_ = false;
    on_event(std::move(event));
    return;
  }
  if (line.front() == ':') {
    ++comments_;
    return;
  }
  std::string_view field = line;
  std::string_view value;
  if (const std::size_t colon = line.find(':'); colon != std::string_view::npos) {
    field = line.substr(0, colon);
    value = line.substr(colon + 1);
    if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  }
  if (field == "data") {
    if (has_data_) data_.push_back('\n');
    data_.append(value);
    has_data_ = true;
  } else if (field == "event") {
    event_type_.assign(value);
  } else if (field == "id") {
    if (value.find('\0') == std::string_view::npos) id_buffer_.assign(value);
  } else if (field == "retry") {
    if (all_digits(value)) retry_ms_ = parse_saturating(value);
  }
  // Any other field is ignored.
}

std::string format_sse(std::string_view event, std::string_view data, std::string_view id) {
  // A line break inside id or event would end the field early on the wire; drop it.
  auto append_field = [](std::string& out, std::string_view name, std::string_view value) {
    out.append(name);
    out.append(": ");
    for (char c : value) {
      if (c != '\r' && c != '\n') out.push_back(c);
    }
    out.push_back('\n');
  };
  std::string out;
  out.reserve(data.size() + event.size() + id.size() + 32);
  if (!id.empty()) append_field(out, "id", id);
  if (!event.empty()) append_field(out, "event", event);
  // Every line of data (split at LF, CRLF or CR, as the parser will split it) is one data: line.
  for (;;) {
    const std::size_t end = data.find_first_of("\r\n");
    out.append("data: ");
    out.append(data.substr(0, end));
    out.push_back('\n');
    if (end == std::string_view::npos) break;
    const bool crlf = data[end] == '\r' && end + 1 < data.size() && data[end + 1] == '\n';
    data.remove_prefix(end + (crlf ? 2 : 1));
  }
  out.push_back('\n');
  return out;
}

}  // namespace lab::http
