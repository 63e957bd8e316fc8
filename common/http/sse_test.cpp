#include "common/http/sse.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace lab::http {
namespace {

struct Parsed {
  bool ok = true;
  std::vector<SseEvent> events;
};

/// Feeds `chunks` one after another into a fresh parser.
Parsed parse_chunks(const std::vector<std::string_view>& chunks, SseParser& parser) {
  Parsed out;
  for (std::string_view chunk : chunks) {
    if (!parser.feed(chunk, [&](SseEvent&& e) { out.events.push_back(std::move(e)); })) {
      out.ok = false;
      break;
    }
  }
  return out;
}

Parsed parse(std::string_view stream) {
  SseParser parser;
  return parse_chunks({stream}, parser);
}

void expect_same(const std::vector<SseEvent>& a, const std::vector<SseEvent>& b,
                 const std::string& context) {
  ASSERT_EQ(a.size(), b.size()) << context;
  for (std::size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].event, b[i].event) << context << " event " << i;
    EXPECT_EQ(a[i].data, b[i].data) << context << " event " << i;
    EXPECT_EQ(a[i].id, b[i].id) << context << " event " << i;
  }
}

TEST(SseParser, ParsesFieldsAndDefaultsEventTypeToMessage) {
  const Parsed p = parse("data: hello\n\nevent: tick\ndata: 1\nid: 7\n\n");
  ASSERT_TRUE(p.ok);
  ASSERT_EQ(p.events.size(), 2u);
  EXPECT_EQ(p.events[0].event, "message");
  EXPECT_EQ(p.events[0].data, "hello");
  EXPECT_EQ(p.events[0].id, "");
  EXPECT_EQ(p.events[1].event, "tick");
  EXPECT_EQ(p.events[1].data, "1");
  EXPECT_EQ(p.events[1].id, "7");
}

TEST(SseParser, SameEventsWhenSplitAtEveryBytePosition) {
  const std::string stream =
      "\xEF\xBB\xBF: comment\r\nevent: a\r\ndata: one\r\ndata:two\r\nid: 1\r\n\r\n"
      "data: x\rdata: y\r\rretry: 1500\nevent: b\ndata\n\n:c\ndata: last\r\n\r\n";
  const Parsed whole = parse(stream);
  ASSERT_TRUE(whole.ok);
  ASSERT_EQ(whole.events.size(), 4u);
  EXPECT_EQ(whole.events[0].event, "a");
  EXPECT_EQ(whole.events[0].data, "one\ntwo");
  EXPECT_EQ(whole.events[1].data, "x\ny");
  EXPECT_EQ(whole.events[2].event, "b");
  EXPECT_EQ(whole.events[2].data, "");
  EXPECT_EQ(whole.events[3].data, "last");
  EXPECT_EQ(whole.events[3].id, "1");
  for (std::size_t i = 0; i <= stream.size(); ++i) {
    for (std::size_t j = i; j <= stream.size(); ++j) {
      SseParser parser;
      const std::string_view s = stream;
      const Parsed split = parse_chunks({s.substr(0, i), s.substr(i, j - i), s.substr(j)}, parser);
      ASSERT_TRUE(split.ok);
      expect_same(whole.events, split.events,
                  "split at " + std::to_string(i) + "," + std::to_string(j));
      EXPECT_EQ(parser.comments(), 2u);
      EXPECT_EQ(parser.retry_ms(), 1500u);
    }
  }
  // And one byte at a time.
  SseParser parser;
  std::vector<std::string_view> bytes;
  for (std::size_t i = 0; i < stream.size(); ++i)
    bytes.push_back(std::string_view(stream).substr(i, 1));
  expect_same(whole.events, parse_chunks(bytes, parser).events, "byte by byte");
}

TEST(SseParser, CrlfSplitAcrossChunksIsOneLineEnd) {
  SseParser parser;
  // If the CR and LF were taken as two line ends, "data: a\r" + "\n" would dispatch early and
  // the second data line would start a new event.
  const Parsed p = parse_chunks({"data: a\r", "\ndata: b\r", "\n\r", "\n"}, parser);
  ASSERT_TRUE(p.ok);
  ASSERT_EQ(p.events.size(), 1u);
  EXPECT_EQ(p.events[0].data, "a\nb");
}

TEST(SseParser, CrOnlyLineEnds) {
  const Parsed p = parse("event: e\rdata: a\rdata: b\r\rdata: c\r\r");
  ASSERT_TRUE(p.ok);
  ASSERT_EQ(p.events.size(), 2u);
  EXPECT_EQ(p.events[0].event, "e");
  EXPECT_EQ(p.events[0].data, "a\nb");
  EXPECT_EQ(p.events[1].event, "message");
  EXPECT_EQ(p.events[1].data, "c");
}

TEST(SseParser, CommentsAreCountedAndNotDispatched) {
  SseParser parser;
  const Parsed p = parse_chunks({": keep-alive\n\n:\n\ndata: x\n: inside\n\n"}, parser);
  ASSERT_TRUE(p.ok);
  ASSERT_EQ(p.events.size(), 1u);
  EXPECT_EQ(p.events[0].data, "x");
  EXPECT_EQ(parser.comments(), 3u);
}

TEST(SseParser, MultiLineDataJoinedWithNewlineAndEmptyDataLinesKept) {
  const Parsed p = parse("data: a\ndata:\ndata:  b\ndata\n\n");
  ASSERT_TRUE(p.ok);
  ASSERT_EQ(p.events.size(), 1u);
  // "data:" and "data" add empty lines; only one leading space is removed.
  EXPECT_EQ(p.events[0].data, "a\n\n b\n");
}

TEST(SseParser, IdPersistsAcrossEventsUntilChanged) {
  SseParser parser;
  const Parsed p = parse_chunks({"id: 1\ndata: a\n\ndata: b\n\nid\ndata: c\n\nid: 2\n\n"}, parser);
  ASSERT_TRUE(p.ok);
  ASSERT_EQ(p.events.size(), 3u);
  EXPECT_EQ(p.events[0].id, "1");
  EXPECT_EQ(p.events[1].id, "1");  // no id field: the last one stays in force
  EXPECT_EQ(p.events[2].id, "");   // "id" with no value resets it
  // "id: 2" followed by a blank line dispatches nothing but sets the last event id.
  EXPECT_EQ(parser.last_event_id(), "2");

  using namespace std::string_literals;
  const Parsed q = parse_chunks({"id: bad\0id\ndata: d\n\n"s}, parser);
  ASSERT_TRUE(q.ok);
  ASSERT_EQ(q.events.size(), 1u);
  EXPECT_EQ(q.events[0].id, "2");  // an id containing NUL is ignored
}

TEST(SseParser, IdWithoutBlankLineIsNotYetTheLastEventId) {
  SseParser parser;
  ASSERT_TRUE(parse_chunks({"id: 5\ndata: x\n"}, parser).ok);
  EXPECT_EQ(parser.last_event_id(), "");  // the event was never completed
  ASSERT_TRUE(parse_chunks({"\n"}, parser).ok);
  EXPECT_EQ(parser.last_event_id(), "5");
}

TEST(SseParser, RetryOnlyWhenAllDigits) {
  SseParser parser;
  ASSERT_TRUE(parse_chunks({"retry: 3000\n\n"}, parser).ok);
  EXPECT_EQ(parser.retry_ms(), 3000u);
  ASSERT_TRUE(parse_chunks({"retry: 12x\nretry: -5\nretry:\nretry: 1 0\n\n"}, parser).ok);
  EXPECT_EQ(parser.retry_ms(), 3000u);
  SseParser fresh;
  ASSERT_TRUE(parse_chunks({"retry: abc\n\n"}, fresh).ok);
  EXPECT_FALSE(fresh.retry_ms().has_value());
}

TEST(SseParser, LeadingBomIsSkippedOnlyAtStreamStart) {
  const Parsed p = parse(
      "\xEF\xBB\xBF"
      "data: a\n\n");
  ASSERT_TRUE(p.ok);
  ASSERT_EQ(p.events.size(), 1u);
  EXPECT_EQ(p.events[0].data, "a");

  // A BOM split across chunks is still skipped.
  SseParser split;
  const Parsed s = parse_chunks({"\xEF", "\xBB",
                                 "\xBF"
                                 "data: b\n\n"},
                                split);
  ASSERT_EQ(s.events.size(), 1u);
  EXPECT_EQ(s.events[0].data, "b");

  // A second BOM is not skipped: the field name becomes "\xEF\xBB\xBF" "data", unknown.
  const Parsed twice = parse(
      "\xEF\xBB\xBF\xEF\xBB\xBF"
      "data: c\n\n");
  EXPECT_TRUE(twice.events.empty());

  // A stream that starts like a BOM but is not one keeps its bytes.
  const Parsed partial = parse(
      "\xEF"
      "data: d\n\n");
  EXPECT_TRUE(partial.events.empty());
  const Parsed line_end_first = parse("\n\ndata: e\n\n");
  ASSERT_EQ(line_end_first.events.size(), 1u);
  EXPECT_EQ(line_end_first.events[0].data, "e");
}

TEST(SseParser, EventWithNoDataIsNotDispatched) {
  SseParser parser;
  const Parsed p = parse_chunks({"event: lonely\n\ndata: x\n\n"}, parser);
  ASSERT_TRUE(p.ok);
  ASSERT_EQ(p.events.size(), 1u);
  EXPECT_EQ(p.events[0].event, "message");  // the event type was reset by the blank line
  EXPECT_EQ(p.events[0].data, "x");
}

TEST(SseParser, IncompleteEventAtEndIsNotDispatched) {
  const Parsed p = parse("data: a\n\ndata: b\n");
  ASSERT_EQ(p.events.size(), 1u);
}

TEST(SseParser, UnknownFieldsIgnored) {
  const Parsed p = parse("foo: bar\ndata: x\nDATA: y\n\n");
  ASSERT_EQ(p.events.size(), 1u);
  EXPECT_EQ(p.events[0].data, "x");
}

TEST(SseParser, LineOverLimitFailsAndParserStops) {
  SseParser parser(16);
  std::vector<SseEvent> events;
  auto on = [&](SseEvent&& e) { events.push_back(std::move(e)); };
  EXPECT_TRUE(parser.feed("data: 0123456789\n\n", on));  // exactly 16 bytes: allowed
  ASSERT_EQ(events.size(), 1u);
  EXPECT_TRUE(parser.feed("data: 01234", on));
  EXPECT_FALSE(parser.feed("567890\n\n", on));  // 17 bytes, split across chunks
  EXPECT_FALSE(parser.feed("data: ok\n\n", on));
  EXPECT_EQ(events.size(), 1u);

  SseParser unterminated(16);
  EXPECT_FALSE(unterminated.feed(std::string(17, 'x'), on));
}

TEST(FormatSse, RoundTripsThroughTheParser) {
  const std::string wire = format_sse("tick", "line1\nline2\r\nline3", "42") +
                           format_sse("", "plain") + format_sse("", "");
  EXPECT_EQ(format_sse("tick", "a\nb", "42"), "id: 42\nevent: tick\ndata: a\ndata: b\n\n");
  EXPECT_EQ(format_sse("", "x"), "data: x\n\n");
  SseParser parser;
  const Parsed p = parse_chunks({wire}, parser);
  ASSERT_TRUE(p.ok);
  ASSERT_EQ(p.events.size(), 3u);
  EXPECT_EQ(p.events[0].event, "tick");
  EXPECT_EQ(p.events[0].data, "line1\nline2\nline3");
  EXPECT_EQ(p.events[0].id, "42");
  EXPECT_EQ(p.events[1].event, "message");
  EXPECT_EQ(p.events[1].data, "plain");
  EXPECT_EQ(p.events[1].id, "42");
  EXPECT_EQ(p.events[2].data, "");
}

TEST(FormatSse, LineBreaksInIdAndEventCannotBreakTheFraming) {
  const Parsed p = parse(format_sse("a\nb", "x", "1\r\n2"));
  ASSERT_EQ(p.events.size(), 1u);
  EXPECT_EQ(p.events[0].event, "ab");
  EXPECT_EQ(p.events[0].id, "12");
}

}  // namespace
}  // namespace lab::http
