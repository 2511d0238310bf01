// The HTTPS proxy end to end: a real daemon, a real VM serving the test web app (web_upstream,
// with the agent as init), curl through the proxy with the daemon's local CA. One VM serves every
// step, in the order a user meets them: private, login, tokens, public, streaming, stopped.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <thread>

#include "base/process.h"
#include "tests/e2e/app_image.h"
#include "tests/e2e/daemon.h"

namespace vmctl::e2e {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using std::chrono::seconds;

class ProxyTest : public ::testing::Test {
 protected:
  // curl inside the daemon's namespace, trusting its CA, with both host names on loopback.
  RunOutput Curl(std::vector<std::string> args) const {
    std::vector<std::string> argv = {"curl",       "-sS",
                                     "--max-time", "60",
                                     "--cacert",   (d_.state_dir() / "tls/ca.crt").string(),
                                     "--resolve",  "vmctl.localhost:8443:127.0.0.1",
                                     "--resolve",  "app.vmctl.localhost:8443:127.0.0.1"};
    argv.insert(argv.end(), args.begin(), args.end());
    return d_.netns().Run(argv, seconds(120));
  }
  // "CODE LOCATION" of one request.
  std::string Status(std::vector<std::string> args) const {
    args.insert(args.begin(), {"-o", "/dev/null", "-w", "%{http_code} %{redirect_url}"});
    return Trim(Curl(args).out);
  }

  TestDaemon d_;
};

TEST_F(ProxyTest, PrivateByDefaultLoginTokensPublicStreamingAndStopped) {
  d_.Start();
  ASSERT_NO_FATAL_FAILURE(BuildWebAppImage(d_, "app"));
  auto created = d_.Vmctl({"create", "app", "--image", "app", "--disk", "0"});
  ASSERT_EQ(created.exit_code, 0) << created.err;

  // Private: a browser is sent to log in on the domain; a program gets 401, never a redirect.
  std::string anonymous = Status({std::string(kApp) + "/"});
  EXPECT_TRUE(anonymous.starts_with("302 " + std::string(kApex) + "/auth?")) << anonymous;
  EXPECT_EQ(Status({"-H", "Authorization: Bearer nope", std::string(kApp) + "/"}), "401");
  EXPECT_EQ(Status({"-H", "Authorization: Bearer nope", std::string(kApex) + "/api/v1/vms"}),
            "401");
  // A name no VM has looks the same as a private VM.
  std::string missing = Status(
      {"--resolve", "nope.vmctl.localhost:8443:127.0.0.1", "https://nope.vmctl.localhost:8443/"});
  EXPECT_TRUE(missing.starts_with("302 " + std::string(kApex) + "/auth?")) << missing;

  // `vmctl login` (as `ssh host login` prints it): the link logs the browser in once, and the
  // round trip through the domain gives the VM host its own session. The app sees who it is,
  // never a spoofed identity.
  auto login = d_.Vmctl({"login"});
  ASSERT_EQ(login.exit_code, 0) << login.err;
  std::string link = login.out.substr(0, login.out.find('\n'));
  ASSERT_TRUE(link.starts_with(std::string(kApex) + "/login/")) << login.out;
  std::string jar = (d_.dir() / "cookies").string();
  EXPECT_TRUE(Status({"-c", jar, link}).starts_with("302")) << "the link logs in";
  EXPECT_TRUE(Status({"-c", jar, "-b", jar, link}).starts_with("403")) << "and works once";
  RunOutput headers = Curl({"-L", "-c", jar, "-b", jar, "-H", "X-Vmctl-User-Id: mallory", "-H",
                            "X-Vmctl-Email: mallory@example.com", std::string(kApp) + "/headers"});
  ASSERT_EQ(headers.exit_code, 0) << headers.err;
  json seen = json::parse(headers.out, nullptr, false);
  ASSERT_TRUE(seen.is_object()) << headers.out;
  EXPECT_EQ(seen.value("X-Vmctl-User-Id", json::array()), json::array({"admin"})) << headers.out;
  EXPECT_FALSE(seen.contains("Cookie") &&
               seen["Cookie"].dump().find("__Host-vmctl-session") != std::string::npos)
      << "the proxy's cookie never reaches the app: " << headers.out;
  EXPECT_EQ(seen.value("X-Forwarded-Proto", json::array()), json::array({"https"}));
  // One VM cannot set cookies for another.
  RunOutput cookies = Curl({"-i", "-b", jar, std::string(kApp) + "/set-cookie"});
  EXPECT_NE(cookies.out.find("app=1;"), std::string::npos) << cookies.out;
  EXPECT_EQ(cookies.out.find("Domain="), std::string::npos) << cookies.out;

  // Tokens: one limited to the VM reaches its app; another reaches the HTTPS API.
  auto vm_token = d_.Vmctl({"token", "new", "--vm", "app"});
  ASSERT_EQ(vm_token.exit_code, 0) << vm_token.err;
  std::string bearer =
      "Authorization: Bearer " + Trim(vm_token.out.substr(0, vm_token.out.find('\n')));
  EXPECT_EQ(Curl({"-H", bearer, std::string(kApp) + "/"}).out, "hello from app\n");
  EXPECT_EQ(Status({"-H", bearer, std::string(kApex) + "/api/v1/vms"}), "404")
      << "a VM's token reaches nothing else";
  auto api_token = d_.Vmctl({"token", "new"});
  std::string api_bearer =
      "Authorization: Bearer " + Trim(api_token.out.substr(0, api_token.out.find('\n')));
  RunOutput listed = Curl({"-H", api_bearer, std::string(kApex) + "/api/v1/vms"});
  EXPECT_NE(listed.out.find("\"app\""), std::string::npos) << listed.out << listed.err;

  // Public: anyone reaches the web port.
  ASSERT_EQ(d_.Vmctl({"share", "set-public", "app"}).exit_code, 0);
  EXPECT_EQ(Curl({std::string(kApp) + "/"}).out, "hello from app\n");

  // Bodies stream both ways and arrive intact.
  fs::path upload = d_.dir() / "upload.bin";
  ASSERT_EQ(
      RunCommand({"sh", "-c", "head -c 67108864 /dev/urandom > " + upload.string()})->exit_code, 0);
  std::string expected = RunCommand({"sha256sum", upload.string()})->out.substr(0, 64);
  RunOutput uploaded =
      Curl({"--data-binary", "@" + upload.string(), std::string(kApp) + "/upload"});
  EXPECT_NE(uploaded.out.find(expected), std::string::npos) << uploaded.out << uploaded.err;
  RunOutput downloaded =
      d_.netns().Run({"sh", "-c",
                      "curl -sS --cacert " + (d_.state_dir() / "tls/ca.crt").string() +
                          " --resolve app.vmctl.localhost:8443:127.0.0.1 '" + kApp +
                          "/download?bytes=67108864' | sha256sum"},
                     seconds(120));
  EXPECT_EQ(downloaded.out.substr(0, 64),
            Trim(Curl({std::string(kApp) + "/download-sha256?bytes=67108864"}).out));

  // A stopped VM gets a page that says how to start it.
  ASSERT_EQ(d_.Vmctl({"stop", "app"}).exit_code, 0);
  RunOutput stopped = Curl({"-w", "\n%{http_code}", std::string(kApp) + "/"});
  EXPECT_NE(stopped.out.find("start app"), std::string::npos) << stopped.out;
  EXPECT_TRUE(stopped.out.ends_with("503")) << stopped.out;
}

}  // namespace
}  // namespace vmctl::e2e
