#include "http/http.h"

#include <gtest/gtest.h>

#include <boost/beast/http/field.hpp>

namespace vmctl::http {
namespace {

namespace bhttp = boost::beast::http;

bhttp::request_header<> Header(std::initializer_list<std::pair<bhttp::field, const char*>> fields) {
  bhttp::request_header<> header;
  for (const auto& [field, value] : fields) header.insert(field, value);
  return header;
}

TEST(CheckFramingTest, TakesOneOfContentLengthAndChunked) {
  EXPECT_TRUE(CheckFraming(Header({})).ok());
  EXPECT_TRUE(CheckFraming(Header({{bhttp::field::content_length, "5"}})).ok());
  EXPECT_TRUE(CheckFraming(Header({{bhttp::field::transfer_encoding, "Chunked"}})).ok());
}

TEST(CheckFramingTest, RefusesWhatAProxyCouldReadDifferently) {
  for (const auto& header : {
           Header(
               {{bhttp::field::transfer_encoding, "chunked"}, {bhttp::field::content_length, "5"}}),
           Header({{bhttp::field::content_length, "5"}, {bhttp::field::content_length, "5"}}),
       }) {
    auto r = CheckFraming(header);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
  }
}

TEST(CheckFramingTest, RefusesTransferCodingsOtherThanChunked) {
  for (const auto& header : {
           Header({{bhttp::field::transfer_encoding, "gzip, chunked"}}),
           Header({{bhttp::field::transfer_encoding, "identity"}}),
           Header({{bhttp::field::transfer_encoding, "chunked"},
                   {bhttp::field::transfer_encoding, "chunked"}}),
       }) {
    auto r = CheckFraming(header);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code(), ErrorCode::kUnimplemented);
  }
}

TEST(HtmlEscapeTest, EscapesWhatEndsTextOrAnAttribute) {
  EXPECT_EQ(HtmlEscape(R"(<a href="x" title='y'>&</a>)"),
            "&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;&lt;/a&gt;");
  EXPECT_EQ(HtmlEscape("plain"), "plain");
}

TEST(ErrorBodyTest, RoundTripsThroughTheClientsReading) {
  Error sent = NotFound("no VM named 'web'");
  Error read = ErrorFromBody(404, ErrorBody(sent).dump());
  EXPECT_EQ(read.code(), ErrorCode::kNotFound);
  EXPECT_EQ(read.message(), "no VM named 'web'");
}

TEST(ErrorBodyTest, ABodyThatIsNoErrorIsQuoted) {
  for (const char* body : {"<html>bad gateway</html>", R"({"error":"flat"})",
                           R"({"error":{"code":5,"message":[]}})"}) {
    Error read = ErrorFromBody(502, body);
    if (std::string_view(body).starts_with("{\"error\":{")) {
      EXPECT_EQ(read.code(), ErrorCode::kInternal) << body;
      EXPECT_EQ(read.message(), "unknown error") << body;
    } else {
      EXPECT_EQ(read.message(), std::string("daemon answered HTTP 502: ") + body);
    }
  }
}

TEST(DumpJsonTest, ReplacesInvalidUtf8InsteadOfThrowing) {
  EXPECT_EQ(DumpJson(nlohmann::json{{"tail", "a\xff"}}), "{\"tail\":\"a\xef\xbf\xbd\"}");
}

}  // namespace
}  // namespace vmctl::http
