#include "proxy/access_url.h"

#include <gtest/gtest.h>

namespace vmctl::proxy {
namespace {

TEST(AccessUrlTest, SplitsTargets) {
  Target split = SplitTarget("/a/b?x=1&y=2");
  EXPECT_EQ(split.path, "/a/b");
  EXPECT_EQ(split.query, "x=1&y=2");
  EXPECT_EQ(SplitTarget("/a").query, "");
  EXPECT_EQ(SplitTarget("/a?b?c").query, "b?c");
}

TEST(AccessUrlTest, PercentCodecRoundTrips) {
  EXPECT_EQ(PercentEncode("/a b?c=d&e#f+%"), "/a%20b%3Fc%3Dd%26e%23f%2B%25");
  EXPECT_EQ(PercentDecode("/a%20b%3fc+d", true), "/a b?c d");
  EXPECT_EQ(PercentDecode("a+b", false), "a+b");
  EXPECT_EQ(PercentDecode("%", true), std::nullopt);
  EXPECT_EQ(PercentDecode("%4", true), std::nullopt);
  EXPECT_EQ(PercentDecode("%zz", true), std::nullopt);
  std::string all;
  for (int c = 0; c < 256; ++c) all += static_cast<char>(c);
  EXPECT_EQ(PercentDecode(PercentEncode(all), true), all);
}

TEST(AccessUrlTest, ExtractsQueryParameters) {
  EXPECT_EQ(QueryParam("a=1&next=%2Fx%3Fy%3D1&b", "next"), "/x?y=1");
  EXPECT_EQ(QueryParam("next=1&next=2", "next"), "1");
  EXPECT_EQ(QueryParam("next", "next"), "");
  EXPECT_EQ(QueryParam("nextx=1", "next"), std::nullopt);
  EXPECT_EQ(QueryParam("next=%zz", "next"), std::nullopt);
  EXPECT_EQ(QueryParam("", "next"), std::nullopt);
}

TEST(AccessUrlTest, RemovesQueryParameters) {
  EXPECT_EQ(WithoutQueryParam("/?share=abc", "share"), "/");
  EXPECT_EQ(WithoutQueryParam("/p?a=1&share=abc&b=2", "share"), "/p?a=1&b=2");
  EXPECT_EQ(WithoutQueryParam("/p?share=1&share=2", "share"), "/p");
  EXPECT_EQ(WithoutQueryParam("/p?shared=1", "share"), "/p?shared=1");
  EXPECT_EQ(WithoutQueryParam("/p", "share"), "/p");
}

TEST(AccessUrlTest, AcceptsOnlyLocalRedirectPaths) {
  for (std::string_view good : {"/", "/a/b", "/a?next=https://x", "/?share=abc", "/a%2F%2Fb"}) {
    EXPECT_TRUE(IsSafeRedirectPath(good)) << good;
  }
  for (std::string_view bad :
       {"", "//evil.com", "///evil.com", "/\\evil.com", "https://evil", "evil", "/a//b", "/a b",
        "/a\tb", "/a\r\nSet-Cookie: x", "/\xc3\xa9", "javascript:alert(1)"}) {
    EXPECT_FALSE(IsSafeRedirectPath(bad)) << bad;
  }
  EXPECT_FALSE(IsSafeRedirectPath("/" + std::string(2048, 'a')));
}

TEST(AccessUrlTest, ParsesTheWebOrigin) {
  Result<WebOrigin> origin = ParseWebOrigin("https://Vmctl.localhost:8443/");
  ASSERT_TRUE(origin.ok()) << origin.error().message();
  EXPECT_EQ(origin->For(), "https://vmctl.localhost:8443");
  EXPECT_EQ(origin->For("web.vmctl.localhost"), "https://web.vmctl.localhost:8443");
  EXPECT_EQ(ParseWebOrigin("https://example.com:443")->For(), "https://example.com");
  EXPECT_EQ(ParseWebOrigin("http://example.com:80")->For(), "http://example.com");
  EXPECT_EQ(ParseWebOrigin("http://example.com:8080")->For(), "http://example.com:8080");
  for (std::string_view bad :
       {"ftp://x", "https://", "https://x:0", "https://x:65536", "https://x:08", "https://x/path",
        "https://u@x", "https://x:", "x.com"}) {
    EXPECT_FALSE(ParseWebOrigin(bad).ok()) << bad;
  }
}

}  // namespace
}  // namespace vmctl::proxy
