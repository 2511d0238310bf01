#include "network/ruleset.h"

#include <gtest/gtest.h>

#include "base/io.h"
#include "network/nft.h"
#include "testing/netns/netns.h"

// Rulesets are also loaded into a real kernel, in the test's own network namespace.
VMCTL_TEST_IN_PRIVATE_NETWORK_NAMESPACE();

namespace vmctl::network {
namespace {

const std::filesystem::path kTestdata = VMCTL_SOURCE_DIR "/src/network/testdata";

RulesetSpec TwoVms() {
  RulesetSpec spec;
  spec.bridge = "vmctl0";
  spec.subnet = *ParseCidr("10.0.0.1/16");
  spec.vms.push_back({"vt0123456789ab", "0a:01:23:45:67:89", *ParseIpv4("10.0.0.2"), 0});
  spec.vms.push_back({"vtfedcba987654", "0a:fe:dc:ba:98:76", *ParseIpv4("10.0.0.3"), 100000});
  return spec;
}

// Set VMCTL_UPDATE_GOLDEN=1 to rewrite the files after an intended change, then review the diff.
void ExpectGolden(const std::string& name, const std::string& actual) {
  auto path = kTestdata / name;
  if (std::getenv("VMCTL_UPDATE_GOLDEN")) {
    ASSERT_TRUE(WriteFileAtomic(path, actual).ok());
  }
  auto expected = ReadFile(path);
  ASSERT_TRUE(expected.ok()) << expected.error().message();
  EXPECT_EQ(actual, *expected) << "golden " << name;
}

TEST(RulesetTest, EmptyNetworkGolden) {
  RulesetSpec spec;
  spec.bridge = "vmctl0";
  spec.subnet = *ParseCidr("10.0.0.1/16");
  ExpectGolden("empty.nft", RulesetScript(spec));
}

TEST(RulesetTest, TwoVmsWithALimitGolden) { ExpectGolden("two_vms.nft", RulesetScript(TwoVms())); }

TEST(RulesetTest, HostPortsAndPeersGolden) {
  RulesetSpec spec = TwoVms();
  spec.host_udp_ports = {53};
  spec.host_tcp_ports = {53, 8080};
  spec.peers = {{"vt0123456789ab", "vtfedcba987654"}};
  ExpectGolden("ports_and_peers.nft", RulesetScript(spec));
}

TEST(RulesetTest, KernelAcceptsEveryRulesetAndReplacesAtomically) {
  RulesetSpec spec = TwoVms();
  spec.host_udp_ports = {53};
  spec.peers = {{"vt0123456789ab", "vtfedcba987654"}};
  ASSERT_TRUE(RunNftScript(RulesetScript(spec)).ok());
  // Applying again replaces rather than duplicates.
  ASSERT_TRUE(RunNftScript(RulesetScript(spec)).ok());
  auto bridge = ListNftTable("bridge", "vmctl");
  ASSERT_TRUE(bridge.ok()) << bridge.error().message();
  EXPECT_NE(bridge->find("\"vtfedcba987654\" . 0a:fe:dc:ba:98:76 . 10.0.0.3"), std::string::npos)
      << *bridge;
  EXPECT_NE(bridge->find("limit up_vtfedcba987654"), std::string::npos);
  auto inet = ListNftTable("inet", "vmctl");
  ASSERT_TRUE(inet.ok());
  EXPECT_NE(inet->find("masquerade"), std::string::npos);
  EXPECT_EQ(inet->find("masquerade"), inet->rfind("masquerade")) << "one rule, not two";

  // A VM leaves: its elements go, the other stays.
  spec.vms.pop_back();
  spec.peers.clear();
  ASSERT_TRUE(RunNftScript(RulesetScript(spec)).ok());
  bridge = ListNftTable("bridge", "vmctl");
  EXPECT_EQ(bridge->find("vtfedcba987654"), std::string::npos) << *bridge;
  EXPECT_NE(bridge->find("vt0123456789ab"), std::string::npos);
}

TEST(RulesetTest, DeleteLeavesForeignTablesAlone) {
  auto theirs = RunNftScript(
      "table inet theirs {\n chain c {\n  type filter hook input priority 0;\n }\n}\n");
  ASSERT_TRUE(theirs.ok()) << theirs.error().message();
  RulesetSpec spec = TwoVms();
  ASSERT_TRUE(RunNftScript(RulesetScript(spec)).ok());
  ASSERT_TRUE(RunNftScript(DeleteRulesetScript()).ok());
  ASSERT_TRUE(RunNftScript(DeleteRulesetScript()).ok()) << "idempotent";
  EXPECT_EQ(ListNftTable("inet", "vmctl").error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(ListNftTable("bridge", "vmctl").error().code(), ErrorCode::kNotFound);
  EXPECT_TRUE(ListNftTable("inet", "theirs").ok());
}

TEST(RulesetTest, RefusedScriptReportsNftsOwnMessage) {
  auto r = RunNftScript("table inet vmctl { chain c { bogus } }");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kInternal);
  EXPECT_NE(r.error().message().find("bogus"), std::string::npos) << r.error().message();
}

}  // namespace
}  // namespace vmctl::network
