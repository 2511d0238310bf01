#include "proxy/request_checks.h"

#include <gtest/gtest.h>

namespace vmctl::proxy {
namespace {

namespace http = boost::beast::http;

size_t HeadLength(std::string_view bytes) {
  auto scan = ScanRequestHead(bytes);
  EXPECT_TRUE(std::holds_alternative<HeadScan>(scan)) << bytes;
  return std::holds_alternative<HeadScan>(scan) ? std::get<HeadScan>(scan).length : 0;
}

std::string RefusalOf(std::string_view bytes) {
  auto scan = ScanRequestHead(bytes);
  if (!std::holds_alternative<Refusal>(scan)) return "";
  return std::get<Refusal>(scan).why;
}

TEST(RequestChecksTest, FindsTheEndOfAHead) {
  std::string head = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
  EXPECT_EQ(HeadLength(head), head.size());
  EXPECT_EQ(HeadLength(head + "GET /next"), head.size()) << "pipelined bytes are not the head's";
  EXPECT_EQ(HeadLength("GET / HTTP/1.1\r\nHost: a\r\n"), 0u);
  EXPECT_EQ(HeadLength("GET / HTTP/1.1\r\nHost: a\r\n\r"), 0u);
  EXPECT_EQ(HeadLength(""), 0u);
  EXPECT_EQ(HeadLength("X-A:\tb\r\n\r\n"), 10u) << "HTAB inside a field is fine";
}

TEST(RequestChecksTest, SkipsEmptyLinesBeforeTheRequestLine) {
  auto scan = ScanRequestHead("\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n");
  ASSERT_TRUE(std::holds_alternative<HeadScan>(scan));
  EXPECT_EQ(std::get<HeadScan>(scan).skipped, 4u);
  EXPECT_EQ(std::get<HeadScan>(scan).length, 27u);
}

TEST(RequestChecksTest, RefusesAmbiguousFraming) {
  EXPECT_EQ(RefusalOf("GET / HTTP/1.1\nHost: a\n\n"), "a line ends in a bare LF");
  EXPECT_EQ(RefusalOf("GET / HTTP/1.1\r\nHost: a\n\r\n"), "a line ends in a bare LF");
  EXPECT_EQ(RefusalOf("GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n"), "a line ends in a bare CR");
  EXPECT_EQ(RefusalOf("GET / HTTP/1.1\r\nHost: a\r\n b\r\n\r\n"),
            "obsolete line folding is not accepted");
  EXPECT_EQ(RefusalOf("GET / HTTP/1.1\r\nX: a\r\n\tb\r\n\r\n"),
            "obsolete line folding is not accepted");
  EXPECT_EQ(RefusalOf(std::string("GET / HTTP/1.1\r\nX: a\0b\r\n\r\n", 27)),
            "a control character in the request head");
  EXPECT_EQ(RefusalOf("GET / HTTP/1.1\r\nX: \x7f\r\n\r\n"),
            "a control character in the request head");
}

http::request_header<> Head(http::verb method, std::string_view target) {
  http::request_header<> head;
  head.method(method);
  head.target(target);
  head.version(11);
  head.set(http::field::host, "web.vmctl.localhost");
  return head;
}

TEST(RequestChecksTest, AcceptsOrdinaryRequests) {
  EXPECT_FALSE(CheckRequestHead(Head(http::verb::get, "/")));
  auto post = Head(http::verb::post, "/upload?x=1");
  post.set(http::field::content_length, "5");
  EXPECT_FALSE(CheckRequestHead(post));
  auto chunked = Head(http::verb::post, "/");
  chunked.set(http::field::transfer_encoding, "Chunked");
  EXPECT_FALSE(CheckRequestHead(chunked));
}

TEST(RequestChecksTest, NoOpenProxy) {
  EXPECT_EQ(CheckRequestHead(Head(http::verb::get, "http://example.com/"))->status,
            http::status::bad_request);
  EXPECT_EQ(CheckRequestHead(Head(http::verb::get, "*"))->status, http::status::bad_request);
  EXPECT_EQ(CheckRequestHead(Head(http::verb::connect, "example.com:443"))->status,
            http::status::method_not_allowed);
}

TEST(RequestChecksTest, RefusesSmuggling) {
  auto both = Head(http::verb::post, "/");
  both.set(http::field::content_length, "5");
  both.set(http::field::transfer_encoding, "chunked");
  EXPECT_EQ(CheckRequestHead(both)->status, http::status::bad_request);
  auto two = Head(http::verb::post, "/");
  two.insert(http::field::content_length, "5");
  two.insert(http::field::content_length, "6");
  EXPECT_EQ(CheckRequestHead(two)->why, "repeated Content-Length");
  auto gzip = Head(http::verb::post, "/");
  gzip.set(http::field::transfer_encoding, "gzip, chunked");
  EXPECT_EQ(CheckRequestHead(gzip)->status, http::status::not_implemented);
  auto hosts = Head(http::verb::get, "/");
  hosts.insert(http::field::host, "other.vmctl.localhost");
  EXPECT_EQ(CheckRequestHead(hosts)->status, http::status::bad_request);
  auto none = Head(http::verb::get, "/");
  none.erase(http::field::host);
  EXPECT_EQ(CheckRequestHead(none)->status, http::status::bad_request);
  auto old = Head(http::verb::get, "/");
  old.version(9);
  EXPECT_EQ(CheckRequestHead(old)->status, http::status::http_version_not_supported);
}

}  // namespace
}  // namespace vmctl::proxy
