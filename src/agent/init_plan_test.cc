#include "agent/init_plan.h"

#include <gtest/gtest.h>

namespace vmctl::agent {
namespace {

constexpr char kPasswd[] =
    "root:x:0:0:root:/root:/bin/sh\n"
    "nginx:x:101:102:nginx:/var/lib/nginx:/sbin/nologin\n"
    "nobody:x:65534:65534::/nonexistent:/usr/sbin/nologin\n";
constexpr char kGroup[] = "root:x:0:\nnginx:x:102:\nwww:x:33:nginx\n";

TEST(InitPlanTest, RoundTripsThroughJson) {
  InitPlan plan;
  plan.services.push_back(
      {"ssh-keygen", {"/opt/vmctl/bin/ssh-keygen", "-A"}, {}, "", "", false, true});
  plan.services.push_back(
      {"app", {"nginx", "-g", "daemon off;"}, {"A=b"}, "nginx:www", "/srv", true, false});
  auto parsed = ParseInitPlan(ToJson(plan).dump());
  ASSERT_TRUE(parsed.ok()) << parsed.error().message();
  ASSERT_EQ(parsed->services.size(), 2u);
  EXPECT_TRUE(parsed->services[0].wait);
  EXPECT_EQ(parsed->services[1].argv[2], "daemon off;");
  EXPECT_EQ(parsed->services[1].env, std::vector<std::string>{"A=b"});
  EXPECT_EQ(parsed->services[1].user, "nginx:www");
  EXPECT_EQ(parsed->services[1].cwd, "/srv");
  EXPECT_TRUE(parsed->services[1].restart);
}

TEST(InitPlanTest, RejectsMalformedPlans) {
  for (const char* bad :
       {"", "[]", R"({"services":{}})", R"({"services":[{"name":"x"}]})",
        R"({"services":[{"name":"x","argv":"sh"}]})", R"({"services":[{"argv":["sh"]}]})",
        R"({"services":[{"name":"x","argv":["sh"],"env":[1]}]})"}) {
    auto r = ParseInitPlan(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument) << bad;
  }
}

// Found by init_plan_fuzz: members of the wrong type threw from json::value in the agent (PID 1 of
// an agent-as-init image) instead of failing the plan.
TEST(InitPlanTest, RejectsMembersOfTheWrongType) {
  for (const char* bad : {R"({"services":[{"name":1,"argv":["sh"]}]})",
                          R"({"services":[{"name":"x","argv":["sh"],"user":0}]})",
                          R"({"services":[{"name":"x","argv":["sh"],"cwd":[]}]})",
                          R"({"services":[{"name":"x","argv":["sh"],"restart":"yes"}]})",
                          R"({"services":[{"name":"x","argv":["sh"],"wait":1}]})"}) {
    auto r = ParseInitPlan(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument) << bad;
  }
}

TEST(ResolveUserTest, NamesIdsAndGroupsAsOciImagesGiveThem) {
  auto root = ResolveUser("", kPasswd, kGroup);
  ASSERT_TRUE(root.ok());
  EXPECT_EQ(root->uid, 0u);
  EXPECT_EQ(root->home, "/root");
  auto nginx = ResolveUser("nginx", kPasswd, kGroup);
  ASSERT_TRUE(nginx.ok());
  EXPECT_EQ(nginx->uid, 101u);
  EXPECT_EQ(nginx->gid, 102u);
  EXPECT_EQ(nginx->home, "/var/lib/nginx");
  auto by_id = ResolveUser("101", kPasswd, kGroup);
  ASSERT_TRUE(by_id.ok());
  EXPECT_EQ(by_id->gid, 102u);
  EXPECT_EQ(by_id->home, "/var/lib/nginx");
  auto unknown_id = ResolveUser("1000:1000", kPasswd, kGroup);
  ASSERT_TRUE(unknown_id.ok());
  EXPECT_EQ(unknown_id->uid, 1000u);
  EXPECT_EQ(unknown_id->gid, 1000u);
  EXPECT_EQ(unknown_id->home, "/");
  auto named_group = ResolveUser("nginx:www", kPasswd, kGroup);
  ASSERT_TRUE(named_group.ok());
  EXPECT_EQ(named_group->gid, 33u);
  auto no_user = ResolveUser("ghost", kPasswd, kGroup);
  ASSERT_FALSE(no_user.ok());
  EXPECT_NE(no_user.error().message().find("no user 'ghost'"), std::string::npos);
  auto no_group = ResolveUser("nginx:staff", kPasswd, kGroup);
  ASSERT_FALSE(no_group.ok());
  EXPECT_NE(no_group.error().message().find("no group 'staff'"), std::string::npos);
}

}  // namespace
}  // namespace vmctl::agent
