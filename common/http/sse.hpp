#pragma once
// Server-Sent Events, after the WHATWG "event stream" parsing rules: LF, CRLF or CR line ends;
// lines starting with ':' are comments; fields data/event/id/retry; multi-line data joined with
// '\n'; an event is dispatched at a blank line; a leading UTF-8 BOM is skipped; an id with a NUL
// is ignored; retry must be all digits.

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace lab::http {

struct SseEvent {
  std::string event;  ///< "message" when the stream gave no event field.
  std::string data;   ///< data lines joined with '\n' (no trailing '\n').
  std::string id;     ///< the last event id in force when this event was dispatched.
};

/// Incremental parser: feed bytes as they arrive, in chunks of any size (a line or a CRLF may be
/// split across chunks). Not thread-safe. Bounded: a single line longer than max_line_bytes is a
/// protocol error (feed returns false and the parser stops).
class SseParser {
 public:
  explicit SseParser(std::size_t max_line_bytes = 1 << 20) : max_line_bytes_(max_line_bytes) {}
  using OnEvent = std::function<void(SseEvent&&)>;
  /// Parses `bytes`, calling on_event for each complete event. false on protocol error.
  bool feed(std::string_view bytes, const OnEvent& on_event);
  /// The last id seen (for Last-Event-ID on reconnect).
  const std::string& last_event_id() const { return last_id_; }
  /// The reconnection time the server asked for, if any.
  std::optional<std::uint64_t> retry_ms() const { return retry_ms_; }
  /// Comment lines seen (": keep-alive" and the like).
  std::uint64_t comments() const { return comments_; }

 private:
  bool feed_lines(std::string_view bytes, const OnEvent& on_event);
  void process_line(std::string_view line, const OnEvent& on_event);
  std::size_t max_line_bytes_;
  std::string line_;
  bool pending_cr_ = false;
  bool bom_checked_ = false;
  bool failed_ = false;
  std::string data_;
  bool has_data_ = false;
  std::string event_type_;
  std::string id_buffer_;  ///< the id field as last parsed; becomes last_id_ at the next blank line
  std::string last_id_;
  std::optional<std::uint64_t> retry_ms_;
  std::uint64_t comments_ = 0;
};

/// Formats one event for the wire ("id: ..\nevent: ..\ndata: ..\n\n"); multi-line data becomes
/// several data: lines. Empty id/event are omitted.
std::string format_sse(std::string_view event, std::string_view data, std::string_view id = {});

}  // namespace lab::http
