// The daemon's local CA end to end: created at the first start, printed by `serve`, served by
// `vmctl ca` and `ssh host ca`, vouching for the domain's certificate, and reused on restart.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include "base/io.h"
#include "tests/e2e/daemon.h"

namespace vmctl::e2e {
namespace {

namespace fs = std::filesystem;

unsigned Mode(const fs::path& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

TEST(DaemonLocalCaTest, CreatedOncePrintedAndServedToCliAndSsh) {
  TestDaemon d;
  d.Start();
  fs::path ca = d.state_dir() / "tls/ca.crt";
  fs::path leaf = d.state_dir() / "tls/certs/vmctl.localhost.crt";
  EXPECT_NE(ReadFile(d.log())->find("Local CA: " + ca.string() + " (trust it:"), std::string::npos)
      << TailFile(d.log(), 2000);
  EXPECT_EQ(Mode(d.state_dir() / "tls/ca.key"), 0600u);
  EXPECT_EQ(Mode(d.state_dir() / "tls/certs/vmctl.localhost.key"), 0600u);
  auto pem = ReadFile(ca);
  ASSERT_TRUE(pem.ok());

  RunOutput printed = d.Vmctl({"ca"});
  EXPECT_EQ(printed.exit_code, 0) << printed.err;
  EXPECT_EQ(printed.out, *pem);
  auto verified = RunCommand({"openssl", "verify", "-CAfile", ca.string(), "-verify_hostname",
                              "web.vmctl.localhost", leaf.string()});
  ASSERT_TRUE(verified.ok());
  EXPECT_EQ(verified->exit_code, 0) << verified->out << verified->err;

  std::string key = d.UserKey("alice").string();
  auto ssh = [&](const std::string& command) {
    return d.netns().Run({"ssh", "-p", "2222", "-o", "StrictHostKeyChecking=no", "-o",
                          "UserKnownHostsFile=/dev/null", "-o", "IdentitiesOnly=yes", "-i", key,
                          "127.0.0.1", command});
  };
  ASSERT_EQ(ssh("register alice@example.com").exit_code, 0);
  RunOutput over_ssh = ssh("ca");
  EXPECT_EQ(over_ssh.exit_code, 0) << over_ssh.err;
  EXPECT_EQ(over_ssh.out, *pem);

  auto leaf_pem = ReadFile(leaf);
  d.Stop();
  d.Start();
  EXPECT_EQ(*ReadFile(ca), *pem) << "the same CA after a restart";
  EXPECT_EQ(*ReadFile(leaf), *leaf_pem) << "and the same certificate, not yet due";
}

}  // namespace
}  // namespace vmctl::e2e
