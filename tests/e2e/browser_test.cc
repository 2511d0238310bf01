// The HTTPS proxy in a real browser: Debian's headless Chromium, driven by playwright-core
// (tests/browser/scenario.mjs), against a real daemon and one real VM serving the test web app.
// Chromium trusts the daemon's local CA through an NSS database (certutil), the way a user
// would; no certificate error is ignored. The script observes, this test judges.
#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "base/process.h"
#include "tests/e2e/app_image.h"
#include "tests/e2e/daemon.h"

namespace vmctl::e2e {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using std::chrono::seconds;

constexpr char kMissing[] = "https://nope.vmctl.localhost:8443";

// The app's view of the request headers (web_upstream's /headers), names lowercased.
json HeadersSeen(const json& visit) {
  json lowered = json::object();
  if (!visit.contains("headers") || !visit["headers"].is_object()) return lowered;
  for (const auto& [name, values] : visit["headers"].items()) {
    std::string key = name;
    std::transform(key.begin(), key.end(), key.begin(), ::tolower);
    lowered[key] = values;
  }
  return lowered;
}

// A page's text with the VM host name replaced, so pages for two hosts can be compared.
std::string WithoutHost(std::string text, const std::string& host) {
  for (size_t at = text.find(host); at != std::string::npos; at = text.find(host, at)) {
    text.replace(at, host.size(), "HOST");
  }
  return text;
}

class BrowserTest : public ::testing::Test {
 protected:
  fs::path BrowserDir() const { return fs::path(VMCTL_SOURCE_DIR) / "tests/browser"; }

  // `ssh -p 2222 127.0.0.1 COMMAND` as the gateway user whose key is `key`.
  RunOutput Ssh(const std::string& key, const std::string& command) const {
    return d_.netns().Run(
        {"ssh", "-p", "2222", "-o", "StrictHostKeyChecking=accept-new", "-o",
         "UserKnownHostsFile=" + (d_.dir() / "known_hosts").string(), "-o", "IdentitiesOnly=yes",
         "-i", d_.UserKey(key).string(), "127.0.0.1", command},
        seconds(120));
  }

  // A gateway user registered with NAME@example.com; returns their login link.
  std::string RegisteredUserLink(const std::string& name) const {
    auto registered = Ssh(name, "register " + name + "@example.com");
    EXPECT_EQ(registered.exit_code, 0) << registered.err;
    auto login = Ssh(name, "login");
    EXPECT_EQ(login.exit_code, 0) << login.err;
    return login.out.substr(0, login.out.find('\n'));
  }

  // A HOME whose NSS database trusts the daemon's CA (Chromium on Linux reads ~/.pki/nssdb).
  void TrustDaemonCa() {
    fs::path nssdb = home() / ".pki/nssdb";
    fs::create_directories(nssdb);
    const std::string db = "sql:" + nssdb.string();
    auto created = RunCommand({"certutil", "-d", db, "-N", "--empty-password"});
    ASSERT_TRUE(created.ok() && created->exit_code == 0)
        << (created.ok() ? created->err : created.error().message());
    auto added = RunCommand({"certutil", "-d", db, "-A", "-t", "C,,", "-n", "vmctl local CA", "-i",
                             (d_.state_dir() / "tls/ca.crt").string()});
    ASSERT_TRUE(added.ok() && added->exit_code == 0)
        << (added.ok() ? added->err : added.error().message());
  }

  // Runs one phase of the scenario in the daemon's namespace; its JSON report.
  json RunScenario(const std::string& phase, json input) const {
    input["phase"] = phase;
    input["chromium"] = "/usr/bin/chromium";
    input["home"] = home().string();
    input["apex"] = kApex;
    input["app"] = kApp;
    input["missing"] = kMissing;
    RunOutput run = d_.netns().Run({"node", (BrowserDir() / "scenario.mjs").string(), input.dump()},
                                   seconds(120));
    EXPECT_EQ(run.exit_code, 0) << run.out << run.err;
    json report = json::parse(run.out, nullptr, false);
    EXPECT_TRUE(report.is_object()) << run.out << run.err;
    return report.is_object() ? report : json::object();
  }

  fs::path home() const { return d_.dir() / "browser-home"; }

  TestDaemon d_;
};

TEST_F(BrowserTest, LoginSharingIdentityWebSocketAndCookiesInChromium) {
  ASSERT_TRUE(fs::exists(BrowserDir() / "node_modules/playwright-core"))
      << "playwright-core is missing: run `make setup` (npm ci in tests/browser)";
  d_.Start();
  ASSERT_NO_FATAL_FAILURE(TrustDaemonCa());
  ASSERT_NO_FATAL_FAILURE(BuildWebAppImage(d_, "app"));
  auto created = d_.Vmctl({"create", "app", "--image", "app", "--disk", "0"});
  ASSERT_EQ(created.exit_code, 0) << created.err;

  // The owner (the local admin) logs in with the CLI's link; three gateway users with theirs:
  // one shared by email, one who redeems a share link, one the VM is never shared with.
  json links;
  auto owner = d_.Vmctl({"login"});
  ASSERT_EQ(owner.exit_code, 0) << owner.err;
  links["owner"] = owner.out.substr(0, owner.out.find('\n'));
  links["shared"] = RegisteredUserLink("bob");
  links["linked"] = RegisteredUserLink("carol");
  links["unshared"] = RegisteredUserLink("dave");
  for (const auto& [who, link] : links.items()) {
    ASSERT_TRUE(link.get<std::string>().starts_with(std::string(kApex) + "/login/"))
        << who << ": " << link;
  }
  auto shared = d_.Vmctl({"share", "add", "app", "bob@example.com"});
  ASSERT_EQ(shared.exit_code, 0) << shared.err;
  auto share_link = d_.Vmctl({"share", "add-link", "app"});
  ASSERT_EQ(share_link.exit_code, 0) << share_link.err;

  json report = RunScenario("private", {{"links", links}, {"share_link", Trim(share_link.out)}});
  ASSERT_TRUE(report.contains("unshared")) << report.dump(2);
  SCOPED_TRACE(report.dump(2));

  // Private: an anonymous browser lands on the login page on the domain.
  const json& anonymous = report["anonymous"];
  EXPECT_TRUE(
      anonymous["app"]["url"].get<std::string>().starts_with(std::string(kApex) + "/auth?"));
  EXPECT_NE(anonymous["app"]["text"].get<std::string>().find("login"), std::string::npos);

  // The owner's link signs in, once; the app sees the owner and not the spoofed identity; the
  // proxy's cookie never reaches it.
  const json& owner_seen = report["owner"];
  EXPECT_EQ(owner_seen["login"]["url"], std::string(kApex) + "/");
  EXPECT_NE(owner_seen["login"]["text"].get<std::string>().find("Signed in"), std::string::npos);
  EXPECT_EQ(owner_seen["replayed_link"]["status"], 403);
  EXPECT_EQ(owner_seen["app"]["url"], std::string(kApp) + "/headers");
  json headers = HeadersSeen(owner_seen["app"]);
  EXPECT_EQ(headers["x-vmctl-user-id"], json::array({"admin"}));
  EXPECT_EQ(headers["x-vmctl-email"], json::array({""})) << "the local admin has no email";
  EXPECT_EQ(headers.value("cookie", json::array()).dump().find("vmctl"), std::string::npos);

  // WebSocket echo from the page's script, through the proxy, with the owner's session.
  EXPECT_EQ(owner_seen["websocket"], json({{"echoed", "hello through the proxy"}}));

  // One host-only, HttpOnly, Secure cookie per host: the domain's and the VM host's.
  std::vector<std::string> hosts;
  for (const json& cookie : owner_seen["cookies"]) {
    if (cookie["name"] != "__Host-vmctl-session") continue;
    hosts.push_back(cookie["domain"]);
    EXPECT_EQ(cookie["httpOnly"], true) << cookie;
    EXPECT_EQ(cookie["secure"], true) << cookie;
    EXPECT_EQ(cookie["sameSite"], "Lax") << cookie;
    EXPECT_EQ(cookie["path"], "/") << cookie;
  }
  std::sort(hosts.begin(), hosts.end());
  EXPECT_EQ(hosts, (std::vector<std::string>{"app.vmctl.localhost", "vmctl.localhost"}))
      << "no leading dot: host-only";

  // The sign-out button ends the session on the domain and on the VM host.
  const json& logout = owner_seen["after_logout"];
  EXPECT_EQ(logout["button"]["url"], std::string(kApex) + "/logout");
  EXPECT_EQ(logout["button"]["status"], 303);
  EXPECT_EQ(logout["apex"]["text"].get<std::string>().find("Signed in"), std::string::npos);
  EXPECT_TRUE(logout["app"]["url"].get<std::string>().starts_with(std::string(kApex) + "/auth?"));

  // Shared by email: bob reaches the app as himself.
  json bob = HeadersSeen(report["shared"]["app"]);
  EXPECT_EQ(report["shared"]["app"]["url"], std::string(kApp) + "/headers");
  EXPECT_EQ(bob["x-vmctl-email"], json::array({"bob@example.com"}));
  EXPECT_EQ(bob["x-vmctl-user-id"].size(), 1u);

  // Shared by link: carol, signed in, redeems it and lands on the clean URL; it is hers now.
  EXPECT_EQ(report["linked"]["share_link"]["url"], std::string(kApp) + "/");
  EXPECT_EQ(report["linked"]["share_link"]["text"], "hello from app");
  EXPECT_EQ(HeadersSeen(report["linked"]["app"])["x-vmctl-email"],
            json::array({"carol@example.com"}));

  // Refused alike: to dave, the private VM looks like no VM; to an anonymous browser both are
  // the login page (which names the host it goes on to).
  const json& dave = report["unshared"];
  EXPECT_EQ(dave["app"]["status"], 404);
  EXPECT_EQ(dave["app"]["status"], dave["missing"]["status"]);
  EXPECT_EQ(dave["app"]["text"], dave["missing"]["text"]);
  EXPECT_EQ(anonymous["app"]["status"], anonymous["missing"]["status"]);
  EXPECT_EQ(WithoutHost(anonymous["app"]["text"], "app.vmctl.localhost"),
            WithoutHost(anonymous["missing"]["text"], "nope.vmctl.localhost"));

  // Public: an anonymous browser reaches the app, which learns no identity.
  ASSERT_EQ(d_.Vmctl({"share", "set-public", "app"}).exit_code, 0);
  json public_report = RunScenario("public", json::object());
  SCOPED_TRACE(public_report.dump(2));
  EXPECT_EQ(public_report["anonymous"]["app"]["url"], std::string(kApp) + "/");
  EXPECT_EQ(public_report["anonymous"]["app"]["text"], "hello from app");
  EXPECT_FALSE(HeadersSeen(public_report["anonymous"]["headers"]).contains("x-vmctl-user-id"));
}

}  // namespace
}  // namespace vmctl::e2e
