#include "ssh_gateway/routing.h"

#include <gtest/gtest.h>

namespace vmctl::ssh_gateway {
namespace {

TEST(RoutingTest, UsernamesNameAVmAndAGuestUser) {
  EXPECT_EQ(RouteForUsername("web").vm, "web");
  EXPECT_EQ(RouteForUsername("web").guest_user, "");
  EXPECT_EQ(RouteForUsername("web+alice").vm, "web");
  EXPECT_EQ(RouteForUsername("web+alice").guest_user, "alice");
  EXPECT_EQ(RouteForUsername("web+www-data").guest_user, "www-data");
}

TEST(RoutingTest, AnythingElseIsCommandMode) {
  for (const char* name : {"", "Web", "1web", "web-", "web+", "web+-x", "web+a b", "+alice", "a.b",
                           "averyveryveryveryverylongvmname-x1"}) {
    EXPECT_EQ(RouteForUsername(name).vm, "") << name;
  }
}

TEST(RoutingTest, UsernamesMustBeText) {
  EXPECT_TRUE(ValidateUsername("web+alice").ok());
  EXPECT_TRUE(ValidateUsername("J\xc3\xb6rg").ok());
  auto bad = ValidateUsername("a\xff");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().message(), "the SSH user name is not valid UTF-8 (byte 0xFF at offset 1)");
  EXPECT_FALSE(ValidateUsername("web\n").ok());
  EXPECT_FALSE(ValidateUsername("web\x7f").ok());
  EXPECT_FALSE(ValidateUsername(std::string(257, 'a')).ok());
}

TEST(RoutingTest, AddressPools) {
  auto pool = ParseAddressRange("127.0.1.254-127.0.2.1");
  ASSERT_TRUE(pool.ok());
  EXPECT_EQ(*pool,
            (std::vector<std::string>{"127.0.1.254", "127.0.1.255", "127.0.2.0", "127.0.2.1"}));
  EXPECT_EQ(*ParseAddressRange("10.1.2.3"), std::vector<std::string>{"10.1.2.3"});
  for (const char* bad :
       {"", "10.0.0.9-10.0.0.1", "10.0.0.0-10.0.255.255", "host-name", "10.0.0.1-"}) {
    EXPECT_EQ(ParseAddressRange(bad).error().code(), ErrorCode::kInvalidArgument) << bad;
  }
}

}  // namespace
}  // namespace vmctl::ssh_gateway
