#include "controller/sharing_rules.h"

#include <gtest/gtest.h>

namespace vmctl::controller {
namespace {

TEST(DefaultWebPortTest, PrefersEightyThenTheSmallestHighTcpPort) {
  EXPECT_EQ(DefaultWebPort({}), 80);
  EXPECT_EQ(DefaultWebPort({"8080/tcp", "80/tcp", "3000/tcp"}), 80);
  EXPECT_EQ(DefaultWebPort({"8080/tcp", "3000/tcp", "22/tcp"}), 3000);
  EXPECT_EQ(DefaultWebPort({"8080", "5000/TCP"}), 5000) << "no protocol means TCP";
  EXPECT_EQ(DefaultWebPort({"22/tcp", "443/tcp"}), 80) << "only low ports but 80: 80";
  EXPECT_EQ(DefaultWebPort({"80/udp", "53/udp", "1024/udp"}), 80) << "UDP is not the web";
  EXPECT_EQ(DefaultWebPort({"", "x/tcp", "70000/tcp", "0/tcp", "-1", "9000/tcp/x", "9001/tcp"}),
            9001);
}

TEST(NormalizeCustomDomainTest, AcceptsDnsNamesInLowercase) {
  EXPECT_EQ(*NormalizeCustomDomain("Example.COM", "vmctl.localhost"), "example.com");
  EXPECT_EQ(*NormalizeCustomDomain("www.example.com.", "vmctl.localhost"), "www.example.com");
  EXPECT_EQ(*NormalizeCustomDomain("a-b.x1.example", "vmctl.localhost"), "a-b.x1.example");
  EXPECT_EQ(*NormalizeCustomDomain("vmctl.localhost.example", "vmctl.localhost"),
            "vmctl.localhost.example");
}

TEST(NormalizeCustomDomainTest, RefusesWhatIsNoDomainOrThePlatformsOwn) {
  for (const char* bad :
       {"", ".", "com", "a..b", ".a.b", "a.b..", "-a.com", "a-.com", "a_b.com", "*.example.com",
        "a b.com", "1.2.3.4", "xn--\xc3\xa9.com", "a.com/x", "a.com:80", "exa\xffmple.com"}) {
    auto r = NormalizeCustomDomain(bad, "vmctl.localhost");
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument) << bad;
  }
  EXPECT_EQ(NormalizeCustomDomain(std::string(64, 'a') + ".com", "p.test").error().message(),
            "'" + std::string(64, 'a') +
                ".com' is not a domain name: a label longer than 63 "
                "characters");
  std::string long_name;
  for (int i = 0; i < 51; ++i) long_name += "abcd.";
  long_name += "com";
  EXPECT_FALSE(NormalizeCustomDomain(long_name, "p.test").ok());
  EXPECT_EQ(NormalizeCustomDomain("exa\xffmple.com", "p.test").error().message(),
            "'exa\\xffmple.com' is not a domain name: only letters, digits, '-' and '.' are "
            "allowed");
  for (const char* own : {"vmctl.localhost", "web.vmctl.localhost", "A.Web.VMCTL.localhost."}) {
    auto r = NormalizeCustomDomain(own, "vmctl.localhost");
    ASSERT_FALSE(r.ok()) << own;
    EXPECT_NE(r.error().message().find("is under vmctl.localhost"), std::string::npos)
        << r.error().message();
  }
}

TEST(ParseShareTargetTest, TellsEmailsFromLinkIds) {
  auto email = ParseShareTarget("bob@example.com");
  ASSERT_TRUE(email.ok());
  EXPECT_FALSE(email->is_link);
  EXPECT_EQ(email->value, "bob@example.com");
  auto link = ParseShareTarget("0a1b2c3d");
  ASSERT_TRUE(link.ok());
  EXPECT_TRUE(link->is_link);
  EXPECT_EQ(link->value, "0a1b2c3d");
  for (const char* bad : {"", "0a1b2c3", "0a1b2c3d4", "0A1B2C3D", "bob", "0a1b2c3g"}) {
    auto r = ParseShareTarget(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
  }
  EXPECT_EQ(ParseShareTarget("b\x01").error().message(),
            "'b\\x01' is neither an email address nor a share link id (8 hex characters, as "
            "`share ls` shows)");
}

TEST(ParseWebOriginTest, SplitsDomainAndPort) {
  auto o = ParseWebOrigin("https://vmctl.localhost:8443");
  ASSERT_TRUE(o.ok()) << o.error().message();
  EXPECT_EQ(o->domain, "vmctl.localhost");
  EXPECT_EQ(o->port, ":8443");
  o = ParseWebOrigin("https://Example.COM/");
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(o->domain, "example.com");
  EXPECT_EQ(o->port, "");
  EXPECT_EQ(ParseWebOrigin("https://example.com:443")->port, "");
  for (const char* bad : {"", "http://example.com", "https://", "https://:8443", "https://a.com:0",
                          "https://a.com:99999", "https://a.com/x", "https://u@a.com",
                          "https://a.com?x", "https://a_b.com"}) {
    EXPECT_EQ(ParseWebOrigin(bad).error().code(), ErrorCode::kInvalidArgument) << bad;
  }
}

}  // namespace
}  // namespace vmctl::controller
