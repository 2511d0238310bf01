// End-to-end test of the sharing vocabulary (`share`, `domain`, `show`) through the CLI and a real
// daemon, on one real VM (stopped once created: sharing needs no running guest), and of what
// other users see through the API.
#include <gtest/gtest.h>

#include <regex>

#include "base/io.h"
#include "base/process.h"
#include "tests/e2e/daemon.h"

namespace vmctl::e2e {
namespace {

using nlohmann::json;

// The API as another user, the way the SSH gateway's users reach it: (status, body).
std::pair<std::string, std::string> ApiAs(const TestDaemon& d, const std::string& user,
                                          const std::string& method, const std::string& path,
                                          const std::string& body = "") {
  std::vector<std::string> argv = {"curl",
                                   "-sS",
                                   "--max-time",
                                   "30",
                                   "--unix-socket",
                                   d.socket().string(),
                                   "-X",
                                   method,
                                   "-H",
                                   "X-Vmctl-User: " + user,
                                   "-w",
                                   "\n%{http_code}"};
  if (!body.empty()) argv.insert(argv.end(), {"-H", "Content-Type: application/json", "-d", body});
  argv.push_back("http://vmctl" + path);
  auto out = RunCommand(argv);
  if (!out.ok()) return {"", out.error().message()};
  auto newline = out->out.rfind('\n');
  if (newline == std::string::npos) return {"", out->out + out->err};
  return {out->out.substr(newline + 1), out->out.substr(0, newline)};
}

class SharingE2eTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    daemon_ = new TestDaemon();
    daemon_->Start();
    auto created = daemon_->Vmctl({"create", "web", "--disk", "0"});
    ASSERT_EQ(created.exit_code, 0) << created.err << TailFile(daemon_->log(), 3000);
    ASSERT_EQ(daemon_->Vmctl({"stop", "web"}).exit_code, 0);
    Sql(daemon_->state_dir() / "vmctl.db",
        "INSERT INTO users (id, name, email, created_at) VALUES "
        "('u-bob', 'bob', 'bob@example.com', 0), ('u-carol', 'carol', 'carol@example.com', 0)");
  }
  static void TearDownTestSuite() {
    delete daemon_;
    daemon_ = nullptr;
  }
  RunOutput Vmctl(const std::vector<std::string>& args) { return daemon_->Vmctl(args); }
  static TestDaemon* daemon_;
};

TestDaemon* SharingE2eTest::daemon_ = nullptr;

TEST_F(SharingE2eTest, PublicPrivateAndTheWebPort) {
  auto ls = Vmctl({"share", "ls", "web"});
  ASSERT_EQ(ls.exit_code, 0) << ls.err;
  EXPECT_EQ(ls.out,
            "private, web port 80 (the image's default): https://web.vmctl.localhost:8443/\n");
  auto pub = Vmctl({"share", "set-public", "web"});
  EXPECT_EQ(pub.exit_code, 0) << pub.err;
  EXPECT_EQ(pub.out, "VM 'web' is public: https://web.vmctl.localhost:8443/\n");
  EXPECT_EQ(Vmctl({"share", "ls", "web"}).out.substr(0, 7), "public,");
  auto show = Vmctl({"show", "web"});
  EXPECT_NE(show.out.find("public"), std::string::npos) << show.out;
  EXPECT_NE(show.out.find("https://web.vmctl.localhost:8443/"), std::string::npos) << show.out;
  EXPECT_EQ(Vmctl({"share", "set-private", "web"}).out,
            "VM 'web' is private: https://web.vmctl.localhost:8443/\n");

  EXPECT_EQ(Vmctl({"share", "port", "web", "8080"}).out, "VM 'web' serves web port 8080.\n");
  EXPECT_NE(Vmctl({"show", "web"}).out.find("8080"), std::string::npos);
  auto json_ls = json::parse(Vmctl({"share", "ls", "web", "--json"}).out, nullptr, false);
  EXPECT_EQ(json_ls.value("web_port", 0), 8080);
  EXPECT_TRUE(json_ls.value("web_port_explicit", false));
  EXPECT_EQ(Vmctl({"share", "port", "web", "default"}).out,
            "VM 'web' serves web port 80 (the image's default).\n");
  auto bad = Vmctl({"share", "port", "web", "70000"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_EQ(bad.err, "vmctl: bad port '70000': give 1-65535, or 0 or \"default\"\n");
}

TEST_F(SharingE2eTest, UsersAndLinks) {
  EXPECT_EQ(Vmctl({"share", "add", "web", "bob@example.com"}).out,
            "VM 'web' is shared with bob@example.com.\n");
  auto link = Vmctl({"share", "add-link", "web"});
  ASSERT_EQ(link.exit_code, 0) << link.err;
  EXPECT_TRUE(std::regex_match(
      link.out, std::regex(R"(https://web\.vmctl\.localhost:8443/\?share=[0-9a-f]{32}\n)")))
      << link.out;
  EXPECT_NE(link.err.find("shown once"), std::string::npos) << link.err;
  auto ls = Vmctl({"share", "ls", "web"});
  EXPECT_NE(ls.out.find("user    bob@example.com (bob)\n"), std::string::npos) << ls.out;
  std::smatch id;
  ASSERT_TRUE(std::regex_search(ls.out, id, std::regex("link    ([0-9a-f]{8}) "))) << ls.out;
  EXPECT_EQ(ls.out.find(link.out.substr(link.out.find('=') + 1, 32)), std::string::npos)
      << "the secret is shown once";
  EXPECT_EQ(Vmctl({"share", "rm", "web", id[1]}).out,
            "Share link " + id[1].str() + " of VM 'web' is revoked.\n");
  EXPECT_EQ(Vmctl({"share", "rm", "web", id[1]}).exit_code, 3);
  EXPECT_EQ(Vmctl({"share", "rm", "web", "bob@example.com"}).out,
            "VM 'web' is no longer shared with bob@example.com.\n");
  auto junk = Vmctl({"share", "rm", "web", "junk"});
  EXPECT_EQ(junk.exit_code, 2);
  EXPECT_NE(junk.err.find("neither an email address nor a share link id"), std::string::npos);
  EXPECT_EQ(Vmctl({"share", "ls", "web"}).out.find("user"), std::string::npos);
}

TEST_F(SharingE2eTest, DomainsMustPointHere) {
  auto nowhere = Vmctl({"domain", "add", "web", "nowhere.invalid"});
  EXPECT_EQ(nowhere.exit_code, 5);
  EXPECT_NE(nowhere.err.find("nowhere.invalid does not resolve"), std::string::npos) << nowhere.err;
  auto own = Vmctl({"domain", "add", "web", "x.vmctl.localhost"});
  EXPECT_EQ(own.exit_code, 2);
  EXPECT_NE(own.err.find("is under vmctl.localhost"), std::string::npos) << own.err;
  auto ls = Vmctl({"domain", "ls", "web"});
  EXPECT_EQ(ls.exit_code, 0);
  EXPECT_EQ(ls.out, "");
  EXPECT_EQ(Vmctl({"domain", "rm", "web", "example.com"}).err,
            "vmctl: VM 'web' has no domain example.com\n");
}

TEST_F(SharingE2eTest, OthersSeeNoVmAndCannotTakeItsName) {
  auto hidden = ApiAs(*daemon_, "u-carol", "GET", "/v1/vms/web/sharing");
  auto missing = ApiAs(*daemon_, "u-carol", "GET", "/v1/vms/nope/sharing");
  EXPECT_EQ(hidden.first, "404");
  EXPECT_EQ(hidden.second, R"({"error":{"code":"not_found","message":"no VM named 'web'"}})"
                           "\n");
  EXPECT_EQ(missing.second, R"({"error":{"code":"not_found","message":"no VM named 'nope'"}})"
                            "\n");
  EXPECT_EQ(ApiAs(*daemon_, "u-carol", "PUT", "/v1/vms/web/sharing", R"({"public":true})").first,
            "404");
  auto taken = ApiAs(*daemon_, "u-carol", "POST", "/v1/vms", R"({"name":"web","disk_mib":0})");
  EXPECT_EQ(taken.first, "409");
  EXPECT_NE(taken.second.find("VM name 'web' is taken"), std::string::npos) << taken.second;
  EXPECT_EQ(Vmctl({"share", "ls", "web"}).out.substr(0, 8), "private,");
}

}  // namespace
}  // namespace vmctl::e2e
