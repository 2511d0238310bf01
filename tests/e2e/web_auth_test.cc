// Web authentication from the SSH gateway and the CLI against a real daemon: `ssh host login`
// through the real OpenSSH client prints a one-time URL on the domain, `logout` ends sessions,
// and `token new/ls/rm` create, list (never showing a secret) and remove API tokens, each user
// seeing only their own. No VM is booted.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <regex>

#include "tests/e2e/daemon.h"

namespace vmctl::e2e {
namespace {

using nlohmann::json;
using std::chrono::seconds;

class WebAuthTest : public ::testing::Test {
 protected:
  void SetUp() override { d_.Start(); }

  // `ssh -p 2222 127.0.0.1 COMMAND` as the user whose key is `key`.
  RunOutput Ssh(const std::string& key, const std::string& command) {
    return d_.netns().Run(
        {"ssh", "-p", "2222", "-o", "StrictHostKeyChecking=accept-new", "-o",
         "UserKnownHostsFile=" + (d_.dir() / "known_hosts").string(), "-o", "IdentitiesOnly=yes",
         "-i", d_.UserKey(key).string(), "127.0.0.1", command},
        seconds(120));
  }

  TestDaemon d_{{"--domain", "example.test"}};
};

TEST_F(WebAuthTest, LoginLogoutAndTokensThroughTheGateway) {
  ASSERT_EQ(Ssh("alice", "register alice@example.com").exit_code, 0);
  ASSERT_EQ(Ssh("bob", "register bob@example.com").exit_code, 0);

  auto login = Ssh("alice", "login");
  ASSERT_EQ(login.exit_code, 0) << login.err;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(
      login.out, m,
      std::regex("^https://example\\.test:8443/login/[A-Za-z0-9_-]{43}\nOpen it in your browser "
                 "within 5 minutes; it works once\\.\n$")))
      << login.out;
  EXPECT_NE(Trim(Ssh("alice", "login").out), Trim(login.out)) << "each link is new";
  auto logout = Ssh("alice", "logout");
  ASSERT_EQ(logout.exit_code, 0) << logout.err;
  EXPECT_EQ(logout.out, "Logged out: 0 browser sessions ended.\n");

  auto created = Ssh("alice", "token new --expires 30d");
  ASSERT_EQ(created.exit_code, 0) << created.err;
  ASSERT_TRUE(std::regex_search(
      created.out, m,
      std::regex("^(vmctl_[A-Za-z0-9_-]{43})\nToken ([0-9a-f]{12}), expires [0-9-]+ [0-9:]+ UTC\\. "
                 "Copy the secret now: it is shown only once\\.\n$")))
      << created.out;
  const std::string secret = m[1], id = m[2];
  auto listed = Ssh("alice", "token ls");
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_NE(listed.out.find(id), std::string::npos) << listed.out;
  EXPECT_EQ(listed.out.find(secret.substr(6)), std::string::npos) << "ls never shows a secret";
  auto as_json = json::parse(Ssh("alice", "token ls --json").out, nullptr, false);
  ASSERT_TRUE(as_json.is_array() && as_json.size() == 1) << as_json;
  EXPECT_EQ(as_json[0]["id"], id);
  EXPECT_EQ(as_json[0]["vm"], "");
  EXPECT_GT(as_json[0]["expires_at"].get<int64_t>(), as_json[0]["created_at"].get<int64_t>());
  // Only a hash is stored.
  const auto db = d_.state_dir() / "vmctl.db";
  EXPECT_EQ(Sql(db, "SELECT length(secret_hash) FROM api_tokens WHERE id = '" + id + "'"), "64");
  EXPECT_EQ(Sql(db, "SELECT COUNT(*) FROM api_tokens WHERE instr(secret_hash, '" +
                        secret.substr(6, 16) + "') > 0"),
            "0");

  // Other users see nothing of it and cannot remove it.
  EXPECT_EQ(Trim(Ssh("bob", "token ls --json").out), "[]");
  auto theirs = Ssh("bob", "token rm " + id);
  EXPECT_EQ(theirs.exit_code, 3);
  EXPECT_EQ(theirs.err, "vmctl: no token '" + id + "'\n");
  EXPECT_EQ(Trim(d_.Vmctl({"token", "ls", "--json"}).out), "[]");

  auto no_vm = Ssh("alice", "token new --vm ghost");
  EXPECT_EQ(no_vm.exit_code, 3);
  EXPECT_EQ(no_vm.err, "vmctl: no VM 'ghost'\n");
  auto bad = Ssh("alice", "token new --expires 30");
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_EQ(bad.err,
            "vmctl: invalid duration '30': use a whole number and s, m, h or d, such as 90m, 12h "
            "or 30d\n");

  auto removed = Ssh("alice", "token rm " + id);
  ASSERT_EQ(removed.exit_code, 0) << removed.err;
  EXPECT_EQ(removed.out, "Token " + id + " removed.\n");
  EXPECT_EQ(Trim(Ssh("alice", "token ls --json").out), "[]");

  // The local admin through the CLI.
  auto admin = d_.Vmctl({"login"});
  ASSERT_EQ(admin.exit_code, 0) << admin.err;
  EXPECT_TRUE(admin.out.starts_with("https://example.test:8443/login/")) << admin.out;
}

}  // namespace
}  // namespace vmctl::e2e
