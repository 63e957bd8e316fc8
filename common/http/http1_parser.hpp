#pragma once
// Incremental HTTP/1.1 response parser for the client's hot path (RFC 9112): status line,
// the header fields framing needs (Content-Length, Transfer-Encoding, Connection, Content-Type),
// Content-Length, chunked and read-until-close bodies, no body for HEAD, 1xx, 204 and 304.
//
// It owns no input buffer: the caller keeps the bytes, passes what it has, drops what the parser
// used and passes the rest again with more appended. Body bytes come back as views into the
// caller's bytes, so nothing is copied or allocated per response (unless the caller asks for
// every header field to be copied out). Every part is bounded: header block, chunk-size line,
// trailers, body.

#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace lab::http {

/// Why a response could not be parsed.
enum class Http1Error {
  kNone,
  kBadStatusLine,      ///< not "HTTP/1.x NNN reason"
  kBadHeader,          ///< a header line that is not "name: value", or a stray CR / control byte
  kHeaderTooLarge,     ///< status line + fields (or trailers) over max_header_bytes
  kBadContentLength,   ///< not digits, or several different values
  kBadChunk,           ///< a bad chunk-size line or a chunk not followed by CRLF
  kBodyTooLarge,       ///< body over max_body_bytes
  kTruncated,          ///< the peer closed before the response ended
};
std::string_view to_string(Http1Error e);

struct Http1Limits {
  std::size_t max_header_bytes = 64 << 10;  ///< status line + header fields; trailers likewise.
  std::size_t max_body_bytes = std::numeric_limits<std::size_t>::max();
};

/// One response at a time; reset() before each. Not thread-safe.
class Http1ResponseParser {
 public:
  /// Longest chunk-size line (size + extensions) accepted.
  static constexpr std::size_t kMaxChunkLineBytes = 4096;

  /// Starts a new response. `head_request`: the request was HEAD, so there is no body whatever
  /// the fields say. `headers`: when given, cleared and filled with every header field in order.
  void reset(const Http1Limits& limits, bool head_request = false,
             std::vector<std::pair<std::string, std::string>>* headers = nullptr);

  /// Parses from the front of `data` and returns how many bytes it used. The caller drops those
  /// and passes the rest again (followed by newly read bytes) on the next call. Stops after the
  /// header block, after each run of body bytes (`body` is then a non-empty view into `data`,
  /// inside the used range, valid as long as `data` is), at the end of the response, on an error,
  /// or when it needs more bytes (returns 0, `body` empty).
  std::size_t parse(std::string_view data, std::string_view& body);

  /// The peer closed the connection: ends a body framed by the close, otherwise (unless the
  /// response was already done) the response is truncated.
  void finish_on_eof();

  bool header_done() const { return header_done_; }
  bool done() const { return state_ == State::kDone; }
  bool failed() const { return state_ == State::kFailed; }
  Http1Error error() const { return error_; }

  /// The status code once the status line is parsed (0 before); the fields below once header_done().
  unsigned status() const { return status_; }
  /// True when the connection may carry another request after this response.
  bool keep_alive() const { return keep_alive_; }
  /// The Content-Type field ("" when absent).
  std::string_view content_type() const { return content_type_; }
  /// The Content-Length field when the body is framed by it.
  std::optional<std::uint64_t> content_length() const;

 private:
  enum class State { kHeader, kBody, kChunkSize, kChunkData, kChunkEnd, kTrailer, kDone, kFailed };
  enum class Framing { kNone, kLength, kChunked, kUntilClose };

  void require_unused_bytes_kept(std::string_view data) const;
  std::size_t parse_header(std::string_view data);
  bool on_status_line(std::string_view line);
  bool on_field_line(std::string_view line);
  bool on_field(std::string_view name, std::string_view value);
  bool end_header();
  std::size_t parse_chunk_size(std::string_view data);
  std::size_t parse_trailer(std::string_view data);
  std::size_t take_body(std::string_view data, std::string_view& body);
  std::size_t fail(Http1Error e);

  Http1Limits limits_;
  std::vector<std::pair<std::string, std::string>>* headers_ = nullptr;
  State state_ = State::kHeader;
  Http1Error error_ = Http1Error::kNone;
  bool head_request_ = false;
  bool header_done_ = false;
  std::size_t line_start_ = 0;  ///< header/trailer: where the next unhandled line starts
  bool status_line_seen_ = false;
  unsigned status_ = 0;
  unsigned minor_version_ = 1;
  bool keep_alive_ = true;
  bool connection_close_ = false;
  bool connection_keep_alive_ = false;
  bool chunked_ = false;
  bool has_transfer_encoding_ = false;
  std::optional<std::uint64_t> content_length_;
  std::string content_type_;
  Framing framing_ = Framing::kNone;
  std::uint64_t remaining_ = 0;    ///< bytes left in the Content-Length body or current chunk
  std::uint64_t body_bytes_ = 0;   ///< body bytes so far
};

}  // namespace lab::http
