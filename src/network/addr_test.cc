#include "network/addr.h"

#include <gtest/gtest.h>

namespace vmctl::network {
namespace {

TEST(AddrTest, ParsesAndFormatsIpv4) {
  EXPECT_EQ(FormatIpv4(*ParseIpv4("10.0.0.1")), "10.0.0.1");
  EXPECT_EQ(ParseIpv4("255.255.255.255")->value, 0xffffffffu);
  for (const char* bad : {"", "10.0.0", "10.0.0.1.2", "10.0.0.256", "a.b.c.d", "10..0.1",
                          "10.0.0.1 ", "-1.0.0.0", "1000.0.0.1"}) {
    auto parsed = ParseIpv4(bad);
    ASSERT_FALSE(parsed.ok()) << bad;
    EXPECT_EQ(parsed.error().code(), ErrorCode::kInvalidArgument);
  }
}

TEST(AddrTest, CidrArithmetic) {
  Cidr c = *ParseCidr("10.0.0.1/16");
  EXPECT_EQ(FormatIpv4(c.Network()), "10.0.0.0");
  EXPECT_EQ(FormatIpv4(c.Broadcast()), "10.0.255.255");
  EXPECT_EQ(c.ToString(), "10.0.0.1/16");
  EXPECT_EQ(c.NetworkString(), "10.0.0.0/16");
  EXPECT_TRUE(c.Contains(*ParseIpv4("10.0.200.3")));
  EXPECT_FALSE(c.Contains(*ParseIpv4("10.1.0.1")));
  EXPECT_TRUE(c.Overlaps(*ParseCidr("10.0.5.0/24")));
  EXPECT_TRUE(c.Overlaps(*ParseCidr("0.0.0.0/0")));
  EXPECT_FALSE(c.Overlaps(*ParseCidr("10.1.0.0/16")));
  for (const char* bad : {"10.0.0.1", "10.0.0.1/33", "10.0.0.1/", "10.0.0.1/x", "/16"}) {
    EXPECT_FALSE(ParseCidr(bad).ok()) << bad;
  }
}

TEST(AddrTest, HostNamesComeFromTheId) {
  EXPECT_EQ(TapNameForVm("0123456789ab"), "vt0123456789ab");
  EXPECT_LE(TapNameForVm("0123456789ab").size(), 15u);
  std::string mac = MacForVm("0123456789ab");
  EXPECT_EQ(mac, "0a:01:23:45:67:89");
  // Locally administered (bit 1) and unicast (bit 0 clear) in the first octet.
  int first = std::stoi(mac.substr(0, 2), nullptr, 16);
  EXPECT_EQ(first & 0x3, 0x2);
}

}  // namespace
}  // namespace vmctl::network
