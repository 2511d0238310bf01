// A custom domain's certificate end to end: a real daemon with ACME pointed at a real pebble in
// its network namespace. pebble validates HTTP-01 against the daemon's --http-listen (its
// httpPort), resolving every name to 127.0.0.1 through pebble-challtestsrv; the daemon resolves
// the custom domain through the namespace's own /etc/hosts (ip netns exec binds
// /etc/netns/NAME/hosts over it), so `domain add` passes its "points here" check for real. The
// first handshake for the domain waits for the order and is served a certificate that chains
// to pebble's root and names the domain; the VM is stopped, so the answer is its stopped page.

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "base/io.h"
#include "testing/acme_servers/acme_servers.h"
#include "tests/e2e/daemon.h"

namespace vmctl::e2e {
namespace {

namespace fs = std::filesystem;
using std::chrono::seconds;

constexpr char kCustom[] = "shop.example";

// /etc/netns/NAME/hosts, which `ip netns exec NAME` shows the daemon as /etc/hosts.
class NamespaceHosts {
 public:
  NamespaceHosts(const std::string& netns, const std::string& line)
      : dir_(fs::path("/etc/netns") / netns) {
    fs::create_directories(dir_);
    std::ofstream(dir_ / "hosts") << "127.0.0.1 localhost\n" << line << "\n";
  }
  ~NamespaceHosts() { fs::remove_all(dir_); }

 private:
  fs::path dir_;
};

TEST(CustomDomainTest, FirstUseGetsACertificateFromPebbleOverHttp01) {
  TestDaemon d;
  NamespaceHosts hosts(d.netns().name(), std::string("127.0.0.1 ") + kCustom);
  fs::path acme_dir = d.dir() / "acme-servers";
  fs::create_directories(acme_dir);
  auto servers = testing::AcmeServers::Start({.dir = acme_dir, .prefix = d.netns().Prefix()});
  ASSERT_TRUE(servers.ok()) << servers.error().message();
  testing::AcmeServers& acme = **servers;
  d.AddArgs({"--acme-directory", acme.directory_url(), "--acme-ca-bundle",
             acme.ca_bundle().string(), "--acme-dns-hook", acme.dns_hook().string(),
             "--http-listen", fmt::format("127.0.0.1:{}", acme.http01_port())});
  d.Start();
  auto created = d.Vmctl({"create", "shop", "--disk", "0"});
  ASSERT_EQ(created.exit_code, 0) << created.err << TailFile(d.log(), 3000);
  ASSERT_EQ(d.Vmctl({"stop", "shop"}).exit_code, 0);
  ASSERT_EQ(d.Vmctl({"share", "set-public", "shop"}).exit_code, 0);
  auto added = d.Vmctl({"domain", "add", "shop", kCustom});
  ASSERT_EQ(added.exit_code, 0) << added.err;

  auto root = acme.Root();
  ASSERT_TRUE(root.ok()) << root.error().message();
  fs::path root_file = d.dir() / "pebble-root.pem";
  ASSERT_TRUE(WriteFileAtomic(root_file, *root).ok());
  // curl verifies the chain against pebble's root alone and the name against the domain.
  auto fetch = [&] {
    return d.netns().Run({"curl", "-sS", "--max-time", "120", "--cacert", root_file.string(),
                          "--resolve", fmt::format("{}:8443:127.0.0.1", kCustom), "-o", "/dev/null",
                          "-w", "%{http_code}", fmt::format("https://{}:8443/", kCustom)},
                         seconds(180));
  };
  RunOutput first = fetch();
  EXPECT_EQ(first.exit_code, 0) << first.err << TailFile(d.log(), 3000)
                                << TailFile(acme.pebble_log(), 2000);
  EXPECT_EQ(first.out, "503") << "the stopped page, over the new certificate";
  EXPECT_TRUE(fs::exists(d.state_dir() / "tls/certs" / (std::string(kCustom) + ".crt")));

  // The certificate names the domain (and only it).
  RunOutput names = d.netns().Run(
      {"sh", "-c",
       fmt::format("openssl s_client -connect 127.0.0.1:8443 -servername {} </dev/null 2>/dev/null"
                   " | openssl x509 -noout -ext subjectAltName",
                   kCustom)});
  EXPECT_NE(names.out.find(std::string("DNS:") + kCustom), std::string::npos) << names.out;

  // Served from the store afterwards: no second order.
  RunOutput again = fetch();
  EXPECT_EQ(again.out, "503") << again.err;
  std::string log = TailFile(d.log(), 1 << 20);
  const std::string issued = std::string(kCustom) + ": serving a new certificate";
  size_t orders = 0;
  for (size_t at = log.find(issued); at != std::string::npos; at = log.find(issued, at + 1)) {
    ++orders;
  }
  EXPECT_EQ(orders, 1u) << log;
}

}  // namespace
}  // namespace vmctl::e2e
