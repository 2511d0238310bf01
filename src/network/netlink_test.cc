// The netlink layer against the real kernel, in the test's own network namespace.
#include "network/netlink.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <sys/ioctl.h>

#include <cstring>

#include "base/io.h"
#include "base/process.h"
#include "base/unique_fd.h"
#include "testing/netns/netns.h"

VMCTL_TEST_IN_PRIVATE_NETWORK_NAMESPACE();

namespace vmctl::network {
namespace {

std::string Ip(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"ip"};
  argv.insert(argv.end(), args.begin(), args.end());
  auto out = RunCommand(argv);
  return out.ok() ? out->out + out->err : out.error().message();
}

class NetlinkTest : public ::testing::Test {
 protected:
  void TearDown() override {
    for (const auto& link : *ListLinks()) {
      if (link.name != "lo") (void)DeleteLink(link.name);
    }
  }
};

TEST_F(NetlinkTest, BridgeIsCreatedIdempotentlyWithExactlyItsAddress) {
  Cidr address = *ParseCidr("10.0.0.1/16");
  ASSERT_TRUE(EnsureBridge("br-t", address).ok());
  auto link = GetLink("br-t");
  ASSERT_TRUE(link.ok()) << link.error().message();
  EXPECT_EQ(link->kind, "bridge");
  EXPECT_TRUE(link->up);
  auto again = EnsureBridge("br-t", address);
  ASSERT_TRUE(again.ok()) << again.error().message();
  std::string addrs = Ip({"-4", "-o", "addr", "show", "dev", "br-t"});
  EXPECT_NE(addrs.find("10.0.0.1/16"), std::string::npos) << addrs;
  EXPECT_NE(addrs.find("brd 10.0.255.255"), std::string::npos) << addrs;

  // A changed subnet replaces the old address instead of adding a second one.
  ASSERT_TRUE(EnsureBridge("br-t", *ParseCidr("10.50.0.1/24")).ok());
  addrs = Ip({"-4", "-o", "addr", "show", "dev", "br-t"});
  EXPECT_NE(addrs.find("10.50.0.1/24"), std::string::npos) << addrs;
  EXPECT_EQ(addrs.find("10.0.0.1"), std::string::npos) << addrs;
}

TEST_F(NetlinkTest, ForeignDeviceWithTheNameIsRefused) {
  Ip({"link", "add", "br-t", "type", "veth", "peer", "name", "br-t-peer"});
  auto bridge = EnsureBridge("br-t", *ParseCidr("10.0.0.1/16"));
  ASSERT_FALSE(bridge.ok());
  EXPECT_EQ(bridge.error().code(), ErrorCode::kAlreadyExists);
  EXPECT_NE(bridge.error().message().find("veth"), std::string::npos);
  ASSERT_TRUE(EnsureBridge("br-u", *ParseCidr("10.0.0.1/16")).ok());
  auto tap = EnsureTap("br-t", "br-u");
  ASSERT_FALSE(tap.ok());
  EXPECT_EQ(tap.error().code(), ErrorCode::kAlreadyExists);
}

TEST_F(NetlinkTest, TapJoinsTheBridgeAndAVmmCanOpenIt) {
  ASSERT_TRUE(EnsureBridge("br-t", *ParseCidr("10.0.0.1/16")).ok());
  auto made = EnsureTap("vt0123456789ab", "br-t");
  ASSERT_TRUE(made.ok()) << made.error().message();
  ASSERT_TRUE(EnsureTap("vt0123456789ab", "br-t").ok()) << "idempotent";
  auto link = GetLink("vt0123456789ab");
  ASSERT_TRUE(link.ok());
  EXPECT_EQ(link->kind, "tun");
  EXPECT_EQ(link->master, "br-t");
  EXPECT_TRUE(link->up);

  // What QEMU does with ifname=: attach to the persistent TAP by name.
  UniqueFd tun(::open("/dev/net/tun", O_RDWR | O_CLOEXEC));
  ASSERT_TRUE(tun.valid());
  ifreq request{};
  std::strncpy(request.ifr_name, "vt0123456789ab", IFNAMSIZ - 1);
  request.ifr_flags = IFF_TAP | IFF_NO_PI;
  EXPECT_EQ(::ioctl(tun.get(), TUNSETIFF, &request), 0) << std::strerror(errno);

  ASSERT_TRUE(DeleteLink("vt0123456789ab").ok());
  EXPECT_EQ(GetLink("vt0123456789ab").error().code(), ErrorCode::kNotFound);
  EXPECT_TRUE(DeleteLink("vt0123456789ab").ok()) << "absent is fine";
  EXPECT_EQ(EnsureTap("vt0123456789ab", "no-such-br").error().code(), ErrorCode::kNotFound);
}

TEST_F(NetlinkTest, NamesAreChecked) {
  EXPECT_EQ(EnsureTap("a-name-of-16-chr", "br").error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(DeleteLink("").error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(EnsureBridge("a-name-of-16-chr", *ParseCidr("10.0.0.1/16")).error().code(),
            ErrorCode::kInvalidArgument);
}

TEST_F(NetlinkTest, OverlappingRoutesAndTheDefaultRoute) {
  auto none = DefaultRouteDevice();
  ASSERT_TRUE(none.ok()) << none.error().message();
  EXPECT_FALSE(none->has_value());

  Ip({"link", "add", "lan0", "type", "veth", "peer", "name", "lan1"});
  Ip({"addr", "add", "10.0.5.1/24", "dev", "lan0"});
  Ip({"link", "set", "lan0", "up"});
  Ip({"link", "set", "lan1", "up"});
  ASSERT_TRUE(EnsureBridge("br-t", *ParseCidr("10.0.0.1/16")).ok());
  auto clashes = OverlappingRoutes(*ParseCidr("10.0.0.1/16"), "br-t");
  ASSERT_TRUE(clashes.ok()) << clashes.error().message();
  ASSERT_EQ(clashes->size(), 1u) << Ip({"route"});
  EXPECT_EQ((*clashes)[0], "10.0.5.0/24 dev lan0");
  EXPECT_TRUE(OverlappingRoutes(*ParseCidr("10.1.0.1/16"), "br-t")->empty());

  Ip({"route", "add", "default", "via", "10.0.5.2"});
  auto uplink = DefaultRouteDevice();
  ASSERT_TRUE(uplink.ok());
  EXPECT_EQ(uplink->value_or(""), "lan0");
  EXPECT_TRUE(OverlappingRoutes(*ParseCidr("10.1.0.1/16"), "br-t")->empty())
      << "the default route is not a collision";
}

TEST_F(NetlinkTest, EgressRateInstallsAndRemovesTbf) {
  ASSERT_TRUE(EnsureBridge("br-t", *ParseCidr("10.0.0.1/16")).ok());
  ASSERT_TRUE(EnsureTap("vt0123456789ab", "br-t").ok());
  auto set = SetEgressRate("vt0123456789ab", 20000);
  ASSERT_TRUE(set.ok()) << set.error().message();
  std::string qdisc = RunCommand({"tc", "qdisc", "show", "dev", "vt0123456789ab"})->out;
  EXPECT_NE(qdisc.find("tbf"), std::string::npos) << qdisc;
  EXPECT_NE(qdisc.find("rate 20Mbit"), std::string::npos) << qdisc;
  ASSERT_TRUE(SetEgressRate("vt0123456789ab", 5000).ok()) << "replaced";
  qdisc = RunCommand({"tc", "qdisc", "show", "dev", "vt0123456789ab"})->out;
  EXPECT_NE(qdisc.find("rate 5Mbit"), std::string::npos) << qdisc;
  ASSERT_TRUE(SetEgressRate("vt0123456789ab", 0).ok());
  qdisc = RunCommand({"tc", "qdisc", "show", "dev", "vt0123456789ab"})->out;
  EXPECT_EQ(qdisc.find("tbf"), std::string::npos) << qdisc;
  EXPECT_TRUE(SetEgressRate("vt0123456789ab", 0).ok()) << "nothing to remove is fine";
  EXPECT_EQ(SetEgressRate("no-such-dev", 1000).error().code(), ErrorCode::kNotFound);
}

TEST_F(NetlinkTest, ForwardingIsPerNamespaceAndRestorable) {
  ASSERT_TRUE(SetIpv4Forwarding('0').ok());
  auto before = EnableIpv4Forwarding();
  ASSERT_TRUE(before.ok()) << before.error().message();
  EXPECT_EQ(*before, '0');
  EXPECT_EQ(*ReadFile("/proc/sys/net/ipv4/ip_forward"), "1\n");
  EXPECT_EQ(*EnableIpv4Forwarding(), '1');
  ASSERT_TRUE(SetIpv4Forwarding('0').ok());
  EXPECT_EQ(*ReadFile("/proc/sys/net/ipv4/ip_forward"), "0\n");
}

}  // namespace
}  // namespace vmctl::network
