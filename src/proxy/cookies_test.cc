#include "proxy/cookies.h"

#include <gtest/gtest.h>

namespace vmctl::proxy {
namespace {

using Pairs = std::vector<std::pair<std::string_view, std::string_view>>;

TEST(CookiesTest, ParsesPairsLeniently) {
  EXPECT_EQ(ParseCookieHeader("a=b; c=d"), (Pairs{{"a", "b"}, {"c", "d"}}));
  EXPECT_EQ(ParseCookieHeader("a=b;c=d"), (Pairs{{"a", "b"}, {"c", "d"}}));
  EXPECT_EQ(ParseCookieHeader(" \ta = b ;  c=\"quoted\" "), (Pairs{{"a", "b"}, {"c", "quoted"}}));
  EXPECT_EQ(ParseCookieHeader("x=a=b"), (Pairs{{"x", "a=b"}}));
  EXPECT_EQ(ParseCookieHeader("empty="), (Pairs{{"empty", ""}}));
  // Pieces without '=' or without a name are skipped, like browsers do.
  EXPECT_EQ(ParseCookieHeader("junk; =v; ;; a=1;"), (Pairs{{"a", "1"}}));
  EXPECT_TRUE(ParseCookieHeader("").empty());
  EXPECT_EQ(ParseCookieHeader("q=\""), (Pairs{{"q", "\""}}));
}

TEST(CookiesTest, FindsTheFirstCookieOfAName) {
  EXPECT_EQ(FindCookie("a=1; __Host-s=abc; __Host-s=def", "__Host-s"), "abc");
  EXPECT_EQ(FindCookie("__host-s=abc", "__Host-s"), std::nullopt);  // names are case-sensitive
  EXPECT_EQ(FindCookie("x__Host-s=abc", "__Host-s"), std::nullopt);
  EXPECT_EQ(FindCookie("", "a"), std::nullopt);
}

TEST(CookiesTest, ReadsBearerTokens) {
  EXPECT_EQ(BearerToken("Bearer abc"), "abc");
  EXPECT_EQ(BearerToken("bearer   abc  "), "abc");
  EXPECT_EQ(BearerToken("BEARER abc"), "abc");
  EXPECT_EQ(BearerToken("Bearer"), std::nullopt);
  EXPECT_EQ(BearerToken("Bearer   "), std::nullopt);
  EXPECT_EQ(BearerToken("Bearerabc"), std::nullopt);
  EXPECT_EQ(BearerToken("Basic YTpi"), std::nullopt);
  EXPECT_EQ(BearerToken(""), std::nullopt);
}

TEST(CookiesTest, BuildsHostOnlySecureCookies) {
  EXPECT_EQ(BuildSetCookie("__Host-s", "abc", std::chrono::seconds(3600)),
            "__Host-s=abc; Max-Age=3600; Path=/; Secure; HttpOnly; SameSite=Lax");
  EXPECT_EQ(BuildSetCookie("__Host-s", "", std::chrono::seconds(-5)),
            "__Host-s=; Max-Age=0; Path=/; Secure; HttpOnly; SameSite=Lax");
}

TEST(CookiesTest, ChecksCookieValues) {
  EXPECT_TRUE(IsCookieValue("abc-_.~/%3F?&="));
  EXPECT_TRUE(IsCookieValue(""));
  for (std::string_view bad : {"a b", "a;b", "a,b", "a\"b", "a\\b", "a\x7f", "\xc3\xa9"}) {
    EXPECT_FALSE(IsCookieValue(bad)) << bad;
  }
  EXPECT_FALSE(IsCookieValue(std::string(4001, 'a')));
}

}  // namespace
}  // namespace vmctl::proxy
