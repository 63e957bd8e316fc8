#include "common/http/http1_request.hpp"

#include <gtest/gtest.h>

using namespace lab::http;
namespace bhttp = boost::beast::http;
using Fields = std::vector<std::pair<std::string, std::string>>;

namespace {

Http1RequestParts parts(bhttp::verb method, std::string_view target, const Fields* headers = nullptr,
                        std::string_view body = {}) {
  Http1RequestParts p;
  p.method = method;
  p.path_prefix = "/api";
  p.target = target;
  p.host = "example:8080";
  p.user_agent = "agentlab/0.1";
  p.headers = headers;
  p.body = body;
  return p;
}

}  // namespace

TEST(Http1Request, RendersAGetWithTheDefaultFields) {
  std::string out = "left over from the last request";
  EXPECT_EQ(write_request(out, parts(bhttp::verb::get, "/x?q=1")), "");
  EXPECT_EQ(out, "GET /api/x?q=1 HTTP/1.1\r\nHost: example:8080\r\nUser-Agent: agentlab/0.1\r\n\r\n");
}

TEST(Http1Request, FramesTheBodyItself) {
  std::string out;
  const Fields headers{{"Authorization", "Bearer t"}, {"Content-Length", "999"}, {"Content-Type", "text/plain"},
                       {"Transfer-Encoding", "chunked"}};
  EXPECT_EQ(write_request(out, parts(bhttp::verb::post, "/chat", &headers, R"({"a":1})")), "");
  EXPECT_EQ(out, "POST /api/chat HTTP/1.1\r\nHost: example:8080\r\nUser-Agent: agentlab/0.1\r\n"
                 "Authorization: Bearer t\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n"
                 R"({"a":1})");
  auto with_type = parts(bhttp::verb::put, "/doc", nullptr, "<a/>");
  with_type.content_type = "application/xml";
  EXPECT_EQ(write_request(out, with_type), "");
  EXPECT_NE(out.find("\r\nContent-Type: application/xml\r\nContent-Length: 4\r\n\r\n<a/>"), std::string::npos);
  // An empty POST still says its length; an empty GET or DELETE does not.
  EXPECT_EQ(write_request(out, parts(bhttp::verb::post, "/go")), "");
  EXPECT_NE(out.find("\r\nContent-Length: 0\r\n\r\n"), std::string::npos);
  EXPECT_EQ(write_request(out, parts(bhttp::verb::delete_, "/x")), "");
  EXPECT_EQ(out.find("Content-Length"), std::string::npos);
}

TEST(Http1Request, CallerFieldsReplaceDefaultsAndTheLastOfANameWins) {
  std::string out;
  const Fields headers{{"x-trace", "1"}, {"host", "other"}, {"X-Trace", "2"}, {"Accept", "application/json"}};
  auto p = parts(bhttp::verb::get, "/", &headers);
  p.accept = "text/event-stream";
  EXPECT_EQ(write_request(out, p), "");
  EXPECT_EQ(out, "GET /api/ HTTP/1.1\r\nUser-Agent: agentlab/0.1\r\nhost: other\r\nX-Trace: 2\r\n"
                 "Accept: application/json\r\n\r\n");
  p.headers = nullptr;
  EXPECT_EQ(write_request(out, p), "");
  EXPECT_NE(out.find("\r\nAccept: text/event-stream\r\n"), std::string::npos);
}

TEST(Http1Request, RefusesWhatWouldBreakTheFraming) {
  std::string out;
  const Fields crlf{{"X-A", "v\r\nX-Injected: 1"}};
  EXPECT_NE(write_request(out, parts(bhttp::verb::get, "/", &crlf)), "");
  const Fields bad_name{{"Bad Name", "v"}};
  EXPECT_NE(write_request(out, parts(bhttp::verb::get, "/", &bad_name)), "");
  EXPECT_NE(write_request(out, parts(bhttp::verb::get, "/a\nb")), "");
  EXPECT_NE(write_request(out, parts(bhttp::verb::unknown, "/")), "");
}
