// The managed network as the daemon uses it, against the real kernel in the test's own network
// namespace (the binary enters it in ruleset_test.cc).
#include "network/host_network.h"

#include <gtest/gtest.h>

#include "base/io.h"
#include "base/process.h"
#include "network/netlink.h"
#include "network/nft.h"

namespace vmctl::network {
namespace {

std::string Sh(const std::string& script) {
  auto out = RunCommand({"sh", "-c", script});
  return out.ok() ? out->out + out->err : out.error().message();
}

class HostNetworkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path("/tmp") / ("hostnet-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    options_.bridge = "vmctl-t0";
    options_.gateway = "10.40.0.1/24";
    options_.dns = std::vector<std::string>{"192.0.2.53"};
    options_.state_file = dir_ / "network.json";
  }
  void TearDown() override {
    (void)CleanUpHostNetwork(options_);
    std::filesystem::remove_all(dir_);
  }
  std::filesystem::path dir_;
  HostNetworkOptions options_;
};

TEST_F(HostNetworkTest, SetUpAttachDetachAndCleanUpOnlyWhatIsOurs) {
  ASSERT_TRUE(SetIpv4Forwarding('0').ok());
  Sh("nft add table inet theirs; ip link add keep0 type veth peer name keep1");
  auto network = SetUpHostNetwork(options_);
  ASSERT_TRUE(network.ok()) << network.error().message();
  const NetworkInfo& info = (*network)->info();
  EXPECT_EQ(info.gateway.ToString(), "10.40.0.1/24");
  EXPECT_EQ(FormatIpv4(info.pool_first), "10.40.0.1");
  EXPECT_EQ(FormatIpv4(info.pool_last), "10.40.0.254");
  EXPECT_FALSE(info.uplink.has_value());
  EXPECT_NE(Describe(info).find("no default route"), std::string::npos) << Describe(info);
  EXPECT_EQ(*ReadFile("/proc/sys/net/ipv4/ip_forward"), "1\n");
  ASSERT_TRUE(SetUpHostNetwork(options_).ok()) << "idempotent";

  VmNic nic{"0123456789ab", "vt0123456789ab", "0a:01:23:45:67:89", *ParseIpv4("10.40.0.2"), 8000};
  auto attached = (*network)->Attach(nic);
  ASSERT_TRUE(attached.ok()) << attached.error().message();
  ASSERT_TRUE((*network)->Attach(nic).ok()) << "idempotent";
  EXPECT_EQ(GetLink(nic.tap)->master, "vmctl-t0");
  EXPECT_NE(Sh("tc qdisc show dev vt0123456789ab").find("rate 8Mbit"), std::string::npos);
  auto rules = ListNftTable("bridge", "vmctl");
  ASSERT_TRUE(rules.ok());
  EXPECT_NE(rules->find("\"vt0123456789ab\" . 0a:01:23:45:67:89 . 10.40.0.2"), std::string::npos)
      << *rules;
  EXPECT_NE(rules->find("up_vt0123456789ab"), std::string::npos);

  ASSERT_TRUE((*network)->Detach(nic).ok());
  EXPECT_EQ(GetLink(nic.tap).error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(ListNftTable("bridge", "vmctl")->find("vt0123456789ab"), std::string::npos);
  ASSERT_TRUE((*network)->Detach(nic).ok()) << "idempotent";

  // A TAP of a VM left behind, then cleanup.
  ASSERT_TRUE((*network)->Attach(nic).ok());
  auto removed = CleanUpHostNetwork(options_);
  ASSERT_TRUE(removed.ok()) << removed.error().message();
  std::string all;
  for (const auto& line : *removed) all += line + "\n";
  EXPECT_NE(all.find("TAP vt0123456789ab"), std::string::npos) << all;
  EXPECT_NE(all.find("bridge vmctl-t0"), std::string::npos) << all;
  EXPECT_NE(all.find("ip_forward restored to 0"), std::string::npos) << all;
  EXPECT_EQ(*ReadFile("/proc/sys/net/ipv4/ip_forward"), "0\n");
  EXPECT_EQ(GetLink("vmctl-t0").error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(ListNftTable("inet", "vmctl").error().code(), ErrorCode::kNotFound);
  EXPECT_TRUE(ListNftTable("inet", "theirs").ok());
  EXPECT_TRUE(GetLink("keep0").ok());
  EXPECT_TRUE(CleanUpHostNetwork(options_)->empty()) << "nothing left the second time";
  Sh("nft delete table inet theirs; ip link del keep0");
}

TEST_F(HostNetworkTest, BadOptionsAndCollisionsAreRefusedClearly) {
  for (const char* bad : {"10.0.0.0/16", "10.0.0.1", "10.0.0.1/30", "10.0.0.255/24", "x/16"}) {
    options_.gateway = bad;
    auto r = SetUpHostNetwork(options_);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument) << bad;
  }
  options_.gateway = "10.40.0.1/24";
  options_.bridge = "a-bridge-name-too-long";
  EXPECT_EQ(SetUpHostNetwork(options_).error().code(), ErrorCode::kInvalidArgument);
  options_.bridge = "vmctl-t0";
  options_.dns = std::vector<std::string>{"not-an-ip"};
  EXPECT_EQ(SetUpHostNetwork(options_).error().code(), ErrorCode::kInvalidArgument);
  options_.dns.reset();

  Sh("ip link add lan0 type veth peer name lan1; ip addr add 10.40.0.129/25 dev lan0; "
     "ip link set lan0 up");
  auto clash = SetUpHostNetwork(options_);
  ASSERT_FALSE(clash.ok());
  EXPECT_EQ(clash.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(clash.error().message().find("10.40.0.128/25 dev lan0"), std::string::npos)
      << clash.error().message();
  EXPECT_EQ(GetLink("vmctl-t0").error().code(), ErrorCode::kNotFound) << "nothing was created";
  Sh("ip link del lan0");
}

}  // namespace
}  // namespace vmctl::network
