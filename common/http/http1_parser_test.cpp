#include "common/http/http1_parser.hpp"

#include <gtest/gtest.h>

using namespace lab::http;

namespace {

struct Parsed {
  bool done = false;
  Http1Error error = Http1Error::kNone;
  unsigned status = 0;
  bool keep_alive = false;
  std::string body;
  std::string left;  ///< bytes after the response
  bool operator==(const Parsed&) const = default;
};

std::ostream& operator<<(std::ostream& os, const Parsed& p) {
  return os << "{done " << p.done << ", error " << to_string(p.error) << ", status " << p.status
            << ", keep_alive " << p.keep_alive << ", body '" << p.body << "', left '" << p.left << "'}";
}

// Feeds `pieces` the way the client does: keep what the parser did not use, append the next
// piece, parse until it needs more. `eof` closes the stream after the last piece.
Parsed feed(const std::vector<std::string>& pieces, bool eof = false, Http1Limits limits = {},
            bool head = false, std::vector<std::pair<std::string, std::string>>* headers = nullptr) {
  Http1ResponseParser p;
  p.reset(limits, head, headers);
  std::string pending;
  Parsed out;
  auto drain = [&] {
    while (!p.done() && !p.failed()) {
      std::string_view body;
      const std::size_t used = p.parse(pending, body);
      out.body.append(body);
      pending.erase(0, used);
      if (used == 0) break;
    }
  };
  for (const auto& piece : pieces) {
    if (p.done() || p.failed()) break;
    pending += piece;
    drain();
  }
  if (eof && !p.done() && !p.failed()) p.finish_on_eof();
  out.done = p.done();
  out.error = p.error();
  out.status = p.status();
  out.keep_alive = p.keep_alive();
  if (p.done()) out.left = pending;
  return out;
}

Parsed feed_one(const std::string& bytes, bool eof = false, Http1Limits limits = {}) {
  return feed({bytes}, eof, limits);
}

// Every way of cutting `bytes` in two, and byte by byte, must parse like the whole.
void expect_split_invariant(const std::string& bytes, bool eof = false) {
  const Parsed whole = feed_one(bytes, eof);
  for (std::size_t cut = 0; cut <= bytes.size(); ++cut)
    ASSERT_EQ(feed({bytes.substr(0, cut), bytes.substr(cut)}, eof), whole) << "cut at " << cut;
  std::vector<std::string> bytewise;
  for (char c : bytes) bytewise.emplace_back(1, c);
  EXPECT_EQ(feed(bytewise, eof), whole);
}

Parsed ok(unsigned status, std::string body, bool keep_alive = true, std::string left = {}) {
  return {true, Http1Error::kNone, status, keep_alive, std::move(body), std::move(left)};
}

Parsed error(Http1Error e, unsigned status = 0) { return {false, e, status, false, {}, {}}; }

}  // namespace

TEST(Http1ResponseParser, ReadsAContentLengthBody) {
  EXPECT_EQ(feed_one("HTTP/1.1 200 OK\r\nServer: x\r\nContent-Length: 5\r\n\r\nhello"), ok(200, "hello"));
  // No reason phrase, bare LF line ends, whitespace around the value.
  EXPECT_EQ(feed_one("HTTP/1.1 404\nContent-Length:  2 \n\nno"), ok(404, "no"));
}

TEST(Http1ResponseParser, StopsAtTheEndOfTheResponse) {
  const std::string two = "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\naHTTP/1.1 200 OK\r\n";
  EXPECT_EQ(feed_one(two), ok(200, "a", true, "HTTP/1.1 200 OK\r\n"));
}

TEST(Http1ResponseParser, ReadsChunkedBodiesWithExtensionsAndTrailers) {
  EXPECT_EQ(feed_one("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "5\r\nhello\r\n1a;name=value\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\n\r\n"),
            ok(200, "helloabcdefghijklmnopqrstuvwxyz"));
  EXPECT_EQ(feed_one("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n"
                     "3 ; ext\r\nabc\r\n0\r\nX-Checksum: 1\r\nX-Other: 2\r\n\r\n"),
            ok(200, "abc"));
}

TEST(Http1ResponseParser, ParsesTheSameWhereverTheReadsSplit) {
  expect_split_invariant("HTTP/1.1 200 OK\r\nContent-Length: 11\r\nX-A: b\r\n\r\nhello world");
  expect_split_invariant("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                         "5\r\nhello\r\n1;x=y\r\n \r\n5\r\nworld\r\n0\r\nT: v\r\n\r\n");
  expect_split_invariant("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok");
  expect_split_invariant("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end", true);
  expect_split_invariant("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloX\r\n");  // bad chunk end
  EXPECT_EQ(feed_one("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "5\r\nhello\r\n1;x=y\r\n \r\n5\r\nworld\r\n0\r\nT: v\r\n\r\n"),
            ok(200, "hello world"));
}

TEST(Http1ResponseParser, ZeroLengthAndNoBodyStatusesEndAtTheHeader) {
  EXPECT_EQ(feed_one("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"), ok(200, ""));
  // 204 and 304 have no body whatever the fields say; the next bytes belong to the next response.
  EXPECT_EQ(feed_one("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n"), ok(204, ""));
  EXPECT_EQ(feed_one("HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\nnext"), ok(304, "", true, "next"));
  EXPECT_EQ(feed({"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"}, false, {}, /*head=*/true), ok(200, ""));
}

TEST(Http1ResponseParser, ConnectionFieldAndVersionDecideReuse) {
  EXPECT_EQ(feed_one("HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\nContent-Length: 1\r\n\r\nx"), ok(200, "x", false));
  EXPECT_EQ(feed_one("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx"), ok(200, "x", false));
  EXPECT_EQ(feed_one("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 1\r\n\r\nx"), ok(200, "x", true));
  // A body framed by the close ends there, and the connection cannot be reused.
  EXPECT_EQ(feed_one("HTTP/1.1 200 OK\r\n\r\nall of it", true), ok(200, "all of it", false));
  // Transfer-Encoding and Content-Length together: chunked wins, no reuse.
  EXPECT_EQ(feed_one("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n"),
            ok(200, "x", false));
}

TEST(Http1ResponseParser, MalformedStatusLinesAreErrors) {
  for (const char* bad : {"HTTP/1.1 OK\r\n\r\n", "HTTX/1.1 200 OK\r\n\r\n", "HTTP/1.1 20 OK\r\n\r\n",
                          "HTTP/2 200 OK\r\n\r\n", "HTTP/1.1 200OK\r\n\r\n", "HTTP/1.1 099 Low\r\n\r\n",
                          "garbage\r\n\r\n", "HTTP/1.1 200 O\x01K\r\n\r\n"})
    EXPECT_EQ(feed_one(bad), error(Http1Error::kBadStatusLine)) << bad;
}

TEST(Http1ResponseParser, MalformedFieldsAreErrors) {
  for (const char* bad : {"HTTP/1.1 200 OK\r\nNoColon\r\n\r\n", "HTTP/1.1 200 OK\r\nName : v\r\n\r\n",
                          "HTTP/1.1 200 OK\r\n: v\r\n\r\n", "HTTP/1.1 200 OK\r\nA: b\r\n folded\r\n\r\n",
                          "HTTP/1.1 200 OK\r\nA: b\rc\r\n\r\n"})
    EXPECT_EQ(feed_one(bad), error(Http1Error::kBadHeader, 200)) << bad;
  for (const char* bad : {"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
                          "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                          "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
                          "HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n"})
    EXPECT_EQ(feed_one(bad), error(Http1Error::kBadContentLength, 200)) << bad;
  EXPECT_EQ(feed_one("HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nab"), ok(200, "ab"));
}

TEST(Http1ResponseParser, MalformedChunksAreErrors) {
  const std::string head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (const std::string bad : {"zz\r\n", "\r\n", "5x\r\nhello\r\n", "2\r\nabX\r\n", "2\r\nab\rX",
                                "11111111111111111\r\n"})
    EXPECT_EQ(feed_one(head + bad).error, Http1Error::kBadChunk) << bad;
  // A chunk-size line is bounded even before its end arrives.
  EXPECT_EQ(feed_one(head + "1;" + std::string(Http1ResponseParser::kMaxChunkLineBytes, 'x')),
            error(Http1Error::kBadChunk, 200));
}

TEST(Http1ResponseParser, HeaderSizeIsBounded) {
  Http1Limits limits;
  limits.max_header_bytes = 100;
  const std::string start = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX: ";
  const std::string end = "\r\n\r\n";
  const std::string fits = start + std::string(100 - start.size() - end.size(), 'v') + end;
  ASSERT_EQ(fits.size(), 100u);
  EXPECT_EQ(feed_one(fits, false, limits), ok(200, ""));
  EXPECT_EQ(feed_one(start + std::string(101 - start.size() - end.size(), 'v') + end, false, limits),
            error(Http1Error::kHeaderTooLarge, 200));
  // A header that never ends fails once it is over the bound, without waiting for a line end.
  EXPECT_EQ(feed({start, std::string(70, 'v')}, false, limits), error(Http1Error::kHeaderTooLarge, 200));
  EXPECT_EQ(feed_one(std::string(101, 'H'), false, limits), error(Http1Error::kHeaderTooLarge));
  EXPECT_EQ(feed({start, std::string(50, 'v')}, false, limits).error, Http1Error::kNone);
  // Trailers have the same bound.
  const std::string chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n";
  EXPECT_EQ(feed_one(chunked + "T: " + std::string(120, 't') + "\r\n\r\n", false, limits),
            error(Http1Error::kHeaderTooLarge, 200));
}

TEST(Http1ResponseParser, BodySizeIsBounded) {
  Http1Limits limits;
  limits.max_body_bytes = 4;
  EXPECT_EQ(feed_one("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nabcd", false, limits), ok(200, "abcd"));
  EXPECT_EQ(feed_one("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabcde", false, limits),
            error(Http1Error::kBodyTooLarge, 200));
  EXPECT_EQ(feed_one("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n", false, limits).error,
            Http1Error::kBodyTooLarge);
  EXPECT_EQ(feed_one("HTTP/1.1 200 OK\r\n\r\nabcde", true, limits).error, Http1Error::kBodyTooLarge);
}

TEST(Http1ResponseParser, ClosingEarlyIsATruncation) {
  EXPECT_EQ(feed_one("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", true).error, Http1Error::kTruncated);
  EXPECT_EQ(feed_one("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", true).error, Http1Error::kTruncated);
  EXPECT_EQ(feed_one("HTTP/1.1 200 O", true).error, Http1Error::kTruncated);
}

TEST(Http1ResponseParser, CopiesHeaderFieldsWhenAsked) {
  std::vector<std::pair<std::string, std::string>> headers{{"stale", "x"}};
  Parsed p = feed({"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
                   "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nRetry-After:  7 \r\nContent-Length: 0\r\n\r\n"},
                  false, {}, false, &headers);
  EXPECT_EQ(p, ok(200, ""));
  using Fields = std::vector<std::pair<std::string, std::string>>;
  EXPECT_EQ(headers, (Fields{{"Content-Type", "text/event-stream"}, {"Retry-After", "7"}, {"Content-Length", "0"}}));

  Http1ResponseParser parser;
  parser.reset({});
  std::string_view body;
  const std::string bytes = "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nContent-Length: 3\r\n\r\nabc";
  EXPECT_EQ(parser.parse(bytes, body), bytes.size() - 3);  // stops after the header block
  EXPECT_TRUE(parser.header_done());
  EXPECT_EQ(parser.content_type(), "text/plain");
  EXPECT_EQ(parser.content_length(), 3u);
  EXPECT_EQ(parser.parse(std::string_view(bytes).substr(bytes.size() - 3), body), 3u);
  EXPECT_EQ(body, "abc");
  EXPECT_TRUE(parser.done());
}
