#include "model/host_name.h"

#include <gtest/gtest.h>

namespace vmctl {
namespace {

TEST(HostNameTest, JumpDestinationsNameTheVmByItsFirstLabel) {
  EXPECT_EQ(VmForDestination("web"), "web");
  EXPECT_EQ(VmForDestination("web.vm.example.com"), "web");
  EXPECT_EQ(VmForDestination("web.VM.Example.com"), "web");
  EXPECT_EQ(VmForDestination("127.0.0.1"), "");
  EXPECT_EQ(VmForDestination("Web.example.com"), "");
  EXPECT_EQ(VmForDestination(""), "");
  EXPECT_EQ(VmForDestination("web.ex\xff"
                             "ample.com"),
            "")
      << "not a DNS name";
  EXPECT_EQ(VmForDestination("web.example.com\x1b[2J"), "") << "a control character";
  EXPECT_EQ(VmForDestination("web." + std::string(300, 'a')), "") << "too long";
}

TEST(HostNameTest, Domains) {
  EXPECT_TRUE(ValidateDomain("vm.example.com").ok());
  EXPECT_TRUE(ValidateDomain("localhost").ok());
  for (const char* bad : {"", ".", "vm..example", "-vm.example", "vm.example.", "Vm.example",
                          "vm_1.example", "*.example"}) {
    EXPECT_EQ(ValidateDomain(bad).error().code(), ErrorCode::kInvalidArgument) << bad;
  }
}

TEST(HostNameTest, TheApexIsTheDomainInAnyCaseWithPortAndTrailingDot) {
  for (const char* host : {"vmctl.localhost", "VMCTL.localhost", "vmctl.localhost:8443",
                           "vmctl.localhost.", "vmctl.localhost.:443"}) {
    auto web = ParseWebHost(host, "vmctl.localhost");
    ASSERT_TRUE(web.ok()) << host;
    EXPECT_EQ(web->kind, WebHost::Kind::kApex) << host;
    EXPECT_EQ(web->host, "vmctl.localhost") << host;
  }
}

TEST(HostNameTest, VmHostsNameTheVmAndMaybeAPort) {
  auto web = ParseWebHost("Web.vmctl.localhost:8443", "vmctl.localhost");
  ASSERT_TRUE(web.ok());
  EXPECT_EQ(web->kind, WebHost::Kind::kVm);
  EXPECT_EQ(web->vm, "web");
  EXPECT_EQ(web->port, 0);
  EXPECT_EQ(web->host, "web.vmctl.localhost");

  web = ParseWebHost("my-app--8080.vmctl.localhost", "vmctl.localhost");
  ASSERT_TRUE(web.ok());
  EXPECT_EQ(web->vm, "my-app");
  EXPECT_EQ(web->port, 8080);
  EXPECT_EQ(ParseWebHost("a--1.d", "d")->port, 1);
  EXPECT_EQ(ParseWebHost("a--65535.d", "d")->port, 65535);
}

TEST(HostNameTest, OtherNamesAreCustomDomains) {
  auto web = ParseWebHost("Example.COM", "vmctl.localhost");
  ASSERT_TRUE(web.ok());
  EXPECT_EQ(web->kind, WebHost::Kind::kCustom);
  EXPECT_EQ(web->host, "example.com");
  EXPECT_EQ(ParseWebHost("xvmctl.localhost", "vmctl.localhost")->kind, WebHost::Kind::kCustom);
}

TEST(HostNameTest, RefusesWhatIsNoHostName) {
  for (const char* bad : {"",
                          ":443",
                          "127.0.0.1",
                          "127.0.0.1:8443",
                          "[::1]:8443",
                          "::1",
                          "10.1",
                          "0x7f.1",
                          "a..vmctl.localhost",
                          "-a.vmctl.localhost",
                          "a_b.vmctl.localhost",
                          "web.vmctl.localhost:",
                          "web.vmctl.localhost:99999",
                          "web.vmctl.localhost:x",
                          "web.vmctl.localhost:1:2",
                          "a.b.vmctl.localhost",
                          "1web.vmctl.localhost",
                          "web--0.vmctl.localhost",
                          "web--65536.vmctl.localhost",
                          "web--080.vmctl.localhost",
                          "web--.vmctl.localhost",
                          "web--x.vmctl.localhost",
                          "w\xc3\xa9"
                          "b.vmctl.localhost",
                          "web\r\n.vmctl.localhost",
                          "web.vmctl.localhost..",
                          "user@web.vmctl.localhost",
                          "*.vmctl.localhost"}) {
    auto web = ParseWebHost(bad, "vmctl.localhost");
    ASSERT_FALSE(web.ok()) << bad;
    EXPECT_EQ(web.error().code(), ErrorCode::kInvalidArgument) << bad;
  }
  EXPECT_FALSE(ParseWebHost(std::string(300, 'a'), "vmctl.localhost").ok());
}

}  // namespace
}  // namespace vmctl
