// ACME inside a real `vmctl serve`: Debian's pebble and a real knotd run in the daemon's network
// namespace; the daemon orders DOMAIN + *.DOMAIN through DNS-01 (RFC 2136 with TSIG, or a hook
// script), serves the certificate on --https-listen, stores it, serves it again after a restart,
// renews it (pebble issues short certificates when asked) without dropping open connections, and
// keeps serving it while the ACME server is down. No VM is booted.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <set>
#include <thread>

#include "base/io.h"
#include "testing/acme_servers/acme_servers.h"
#include "tests/e2e/daemon.h"

namespace vmctl::e2e {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr std::string_view kDomain = "vmctl.localhost";

unsigned Mode(const fs::path& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

// Holds one TLS connection to the proxy open across a renewal: a request on it, new connections
// until one is served another certificate, then a second request on the held one.
constexpr std::string_view kHoldScript = R"(import http.client, json, socket, ssl, sys, time
port, sni, cafile = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ctx = ssl.create_default_context(cafile=cafile)
def connect():
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname=sni)
    return s, s.getpeercert()["serialNumber"]
def get(s):
    s.sendall(("GET / HTTP/1.1\r\nHost: %s\r\n\r\n" % sni).encode())
    r = http.client.HTTPResponse(s)
    r.begin()
    r.read()
    return r.status
held, old = connect()
first = get(held)
new = old
deadline = time.time() + 120
while new == old and time.time() < deadline:
    time.sleep(0.2)
    s, new = connect()
    s.close()
print(json.dumps({"old": old, "new": new, "first": first, "second": get(held)}))
)";

class AcmeDaemonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(d_.dir() / "acme-servers");
    auto started = testing::AcmeServers::Start({.dir = d_.dir() / "acme-servers",
                                                .dns = testing::AcmeDns::kKnot,
                                                .zone = std::string(kDomain),
                                                .prefix = d_.netns().Prefix()});
    ASSERT_TRUE(started.ok()) << started.error().message();
    servers_ = std::move(*started);
  }
  void TearDown() override {
    // Before the daemon's namespace goes.
    servers_.reset();
  }

  std::vector<std::string> AcmeArgs(std::vector<std::string> publisher,
                                    std::string ca_bundle = "") const {
    std::vector<std::string> args = {
        "--acme-directory", servers_->directory_url(),
        "--acme-ca-bundle", ca_bundle.empty() ? servers_->ca_bundle().string() : ca_bundle,
        "--acme-email",     "admin@" + std::string(kDomain)};
    args.insert(args.end(), publisher.begin(), publisher.end());
    return args;
  }
  std::vector<std::string> Rfc2136(const fs::path& key) const {
    return {"--acme-dns-rfc2136", "127.0.0.1:" + std::to_string(servers_->dns_port()),
            "--acme-tsig-key", key.string()};
  }

  // Starts the daemon with `args`; returns where its log continues.
  size_t StartWith(std::vector<std::string> args) {
    d_.set_extra_args(std::move(args));
    auto before = ReadFile(d_.log());
    size_t offset = before.ok() ? before->size() : 0;
    d_.Start();
    return offset;
  }
  // Waits for `text` in the daemon's log after `offset` (the daemon logs every ACME step); returns
  // that part of the log.
  std::string WaitForLog(size_t offset, std::string_view text) {
    std::string since;
    for (int i = 0; i < 1200; ++i) {
      auto log = ReadFile(d_.log());
      since = log.ok() && log->size() > offset ? log->substr(offset) : "";
      if (since.find(text) != std::string::npos) return since;
      if (!d_.process().Alive()) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ADD_FAILURE() << "no \"" << text << "\" in the daemon's log:\n" << since;
    return since;
  }

  // Pebble's current root, in a file the namespace's curl and openssl read.
  fs::path RootFile() {
    auto root = servers_->Root();
    EXPECT_TRUE(root.ok()) << root.error().message();
    fs::path path = d_.dir() / "pebble-root.pem";
    EXPECT_TRUE(WriteFileAtomic(path, root.ok() ? *root : "").ok());
    return path;
  }
  // `curl` of https://HOST:8443/ verified with `root`: "" when it verifies, else curl's error.
  std::string CurlError(const std::string& host, const fs::path& root) const {
    RunOutput out =
        d_.netns().Run({"curl", "-sS", "-o", "/dev/null", "--cacert", root.string(), "--resolve",
                        host + ":8443:127.0.0.1", "https://" + host + ":8443/"});
    return out.exit_code == 0 ? "" : out.err;
  }
  // The serial of the certificate the proxy serves for `host`.
  std::string ServedSerial(const std::string& host) const {
    RunOutput out = d_.netns().Run({"sh", "-c",
                                    "openssl s_client -connect 127.0.0.1:8443 -servername " + host +
                                        " </dev/null 2>/dev/null | openssl x509 -noout -serial"});
    return Trim(out.out);
  }

  TestDaemon d_;
  std::unique_ptr<testing::AcmeServers> servers_;
};

// Each misconfiguration is named in the log, and the daemon keeps running to retry.
TEST_F(AcmeDaemonTest, FailuresSayWhy) {
  RunOutput plain = [&] {
    auto args = AcmeArgs(Rfc2136(servers_->tsig_key_file()));
    args[1] = "http://127.0.0.1:" + std::to_string(servers_->pebble_port()) + "/dir";
    d_.set_extra_args(args);
    return d_.StartExpectingFailure();
  }();
  EXPECT_NE(plain.exit_code, 0);
  EXPECT_THAT(plain.out + plain.err, HasSubstr("--acme-directory"));

  // Pebble's TLS certificate is not among the system's roots.
  size_t at = 0;
  ASSERT_NO_FATAL_FAILURE(at = StartWith(AcmeArgs(Rfc2136(servers_->tsig_key_file()),
                                                  "/etc/ssl/certs/ca-certificates.crt")));
  EXPECT_THAT(WaitForLog(at, "certificate order failed (1 in a row)"), HasSubstr("TLS handshake"));
  d_.Stop();

  auto wrong = AcmeArgs(Rfc2136(servers_->tsig_key_file()));
  wrong[1] = "https://127.0.0.1:" + std::to_string(servers_->pebble_port()) + "/no-such-dir";
  ASSERT_NO_FATAL_FAILURE(at = StartWith(wrong));
  EXPECT_THAT(WaitForLog(at, "certificate order failed (1 in a row)"), HasSubstr("/no-such-dir"));
  d_.Stop();

  // Knot refuses an update signed with a key it does not know the secret of.
  fs::path bad_key = d_.dir() / "bad-tsig.key";
  ASSERT_TRUE(WriteFileAtomic(bad_key,
                              "key \"acme-key\" {\n  algorithm hmac-sha256;\n"
                              "  secret \"bm90IHRoZSBzZWNyZXQgb2YgdGhpcyB6b25lIQ==\";\n};\n",
                              0600)
                  .ok());
  ASSERT_NO_FATAL_FAILURE(at = StartWith(AcmeArgs(Rfc2136(bad_key))));
  EXPECT_THAT(WaitForLog(at, "certificate order failed (1 in a row)"), HasSubstr("TSIG"));
  EXPECT_EQ(servers_->Dig("_acme-challenge." + std::string(kDomain)), "");
  EXPECT_NE(CurlError(std::string(kDomain), RootFile()), "")
      << "nothing is served for DOMAIN before ACME has issued";
}

TEST_F(AcmeDaemonTest, IssuesServesStoresRenewsAndOutlastsTheServer) {
  // 1. RFC 2136 to knot: apex and wildcard in one order, verified with pebble's root.
  size_t at = 0;
  ASSERT_NO_FATAL_FAILURE(at = StartWith(AcmeArgs(Rfc2136(servers_->tsig_key_file()))));
  WaitForLog(at, "acme: serving a new certificate for vmctl.localhost, *.vmctl.localhost");
  fs::path root = RootFile();
  EXPECT_EQ(CurlError(std::string(kDomain), root), "");
  EXPECT_EQ(CurlError("web." + std::string(kDomain), root), "");
  EXPECT_EQ(servers_->Dig("_acme-challenge." + std::string(kDomain)), "") << "records withdrawn";
  std::string serial = ServedSerial(std::string(kDomain));
  EXPECT_THAT(serial, HasSubstr("serial="));
  EXPECT_EQ(ServedSerial("web." + std::string(kDomain)), serial) << "one wildcard certificate";

  // Stored 0600, and nothing half-written beside them.
  const fs::path acme = d_.state_dir() / "acme";
  std::set<std::string> files;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(acme, ec)) files.insert(e.path().filename());
  EXPECT_EQ(files,
            (std::set<std::string>{"account.key", "vmctl.localhost.crt", "vmctl.localhost.key"}));
  for (const auto& f : files) EXPECT_EQ(Mode(acme / f), 0600u) << f;

  // 2. A restart serves the stored certificate and orders nothing.
  d_.Stop();
  ASSERT_NO_FATAL_FAILURE(at = StartWith(AcmeArgs(Rfc2136(servers_->tsig_key_file()))));
  std::string restarted = WaitForLog(at, "acme: serving the stored certificate (valid until");
  EXPECT_EQ(ServedSerial(std::string(kDomain)), serial);
  EXPECT_THAT(restarted, Not(HasSubstr("downloading the certificate")));
  d_.Stop();

  // 3. The hook publisher, against a pebble that issues 15-second certificates: the daemon
  // renews when a third of the lifetime is left, and a connection opened before keeps working.
  servers_->StopPebble();
  ASSERT_TRUE(servers_->StartPebble(std::chrono::seconds(15)).ok());
  fs::remove(acme / "vmctl.localhost.crt");
  fs::remove(acme / "vmctl.localhost.key");
  ASSERT_NO_FATAL_FAILURE(
      at = StartWith(AcmeArgs({"--acme-dns-hook", servers_->dns_hook().string()})));
  std::string issued = WaitForLog(at, "acme: serving a new certificate");
  EXPECT_THAT(issued, HasSubstr("publishing TXT _acme-challenge.vmctl.localhost"));
  root = RootFile();
  EXPECT_EQ(CurlError("web." + std::string(kDomain), root), "");
  fs::path hold = d_.dir() / "hold.py";
  ASSERT_TRUE(WriteFileAtomic(hold, std::string(kHoldScript)).ok());
  RunOutput held =
      d_.netns().Run({"python3", hold.string(), "8443", std::string(kDomain), root.string()},
                     std::chrono::seconds(180));
  ASSERT_EQ(held.exit_code, 0) << held.err << TailFile(d_.log(), 3000);
  auto result = nlohmann::json::parse(held.out);
  EXPECT_NE(result["new"], result["old"]) << "renewed:\n" << TailFile(d_.log(), 3000);
  EXPECT_EQ(result["second"], result["first"]) << "the open connection still answers";
  EXPECT_EQ(CurlError(std::string(kDomain), root), "") << "the renewed one verifies";
  const std::string renewed = ServedSerial(std::string(kDomain));

  // 4. Pebble down at the next renewal: the failure and the retry are logged, and the last
  // certificate is still served.
  servers_->StopPebble();
  size_t down = ReadFile(d_.log())->size();
  EXPECT_THAT(WaitForLog(down, "certificate order failed (1 in a row), retrying in"),
              HasSubstr("127.0.0.1:" + std::to_string(servers_->pebble_port())));
  EXPECT_EQ(ServedSerial(std::string(kDomain)), renewed);
}

}  // namespace
}  // namespace vmctl::e2e
