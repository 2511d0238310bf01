// The ACME client against Debian's pebble, with pebble-challtestsrv as the DNS server its
// validator asks (DNS-01 through a hook script that calls challtestsrv's management API) and a
// small HTTP server of the test's own for HTTP-01.
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include "acme/client.h"
#include "acme/hook_publisher.h"
#include "acme/renewal.h"
#include "acme/rfc2136_publisher.h"
#include "base/io.h"
#include "base/process.h"
#include "base/unique_fd.h"
#include "testing/sshd/local_sshd.h"

namespace vmctl::acme {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

bool Accepts(int port) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
}

// A started server process, killed by its pid when the test suite ends.
struct Server {
  ProcessRef process;
  ~Server() { Stop(); }
  void Stop() {
    if (process.pid != 0) (void)process.Kill();
    process = {};
  }
};

Result<void> StartServer(Server& server, const std::vector<std::string>& argv, const fs::path& log,
                         int port) {
  VMCTL_ASSIGN_OR_RETURN(server.process, SpawnDetached(argv, {.log_file = log}));
  for (int i = 0; i < 200; ++i) {
    if (Accepts(port)) return Ok();
    if (!server.process.Alive()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return Unavailable(argv[0] + " did not start: " + TailFile(log, 2000));
}

// Answers GET /.well-known/acme-challenge/TOKEN from an HttpChallenges, one connection at a time.
class ChallengeHttpServer {
 public:
  ChallengeHttpServer(int port, HttpChallenges& answers) : answers_(answers) {
    fd_ = UniqueFd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    int one = 1;
    ::setsockopt(fd_.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ok_ = ::bind(fd_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
          ::listen(fd_.get(), 16) == 0;
    thread_ = std::thread([this] { Serve(); });
  }
  ~ChallengeHttpServer() {
    stop_ = true;
    ::shutdown(fd_.get(), SHUT_RDWR);
    thread_.join();
  }
  bool ok() const { return ok_; }
  int requests() const { return requests_; }

 private:
  void Serve() {
    while (!stop_) {
      UniqueFd conn(::accept4(fd_.get(), nullptr, nullptr, SOCK_CLOEXEC));
      if (!conn.valid()) return;
      std::string req;
      while (req.find("\r\n\r\n") == std::string::npos) {
        if (!WaitReadable(conn.get(), std::chrono::seconds(5)).ok()) break;
        auto chunk = ReadSome(conn.get(), 4096);
        if (!chunk.ok() || chunk->empty()) break;
        req += *chunk;
      }
      ++requests_;
      constexpr std::string_view kPrefix = "GET /.well-known/acme-challenge/";
      std::optional<std::string> body;
      if (req.rfind(kPrefix, 0) == 0) {
        size_t end = req.find(' ', kPrefix.size());
        body = answers_.Lookup(std::string_view(req).substr(kPrefix.size(), end - kPrefix.size()));
      }
      std::string res = body
                            ? "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body->size()) +
                                  "\r\nConnection: close\r\n\r\n" + *body
                            : "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
      (void)WriteAll(conn.get(), res);
    }
  }

  HttpChallenges& answers_;
  UniqueFd fd_;
  bool ok_ = false;
  std::atomic<bool> stop_ = false;
  std::atomic<int> requests_ = 0;
  std::thread thread_;
};

class PebbleTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { StartServers(false); }
  // Pebble's validator asks challtestsrv, or with `knot` a real knotd serving the zone.
  static void StartServers(bool knot) {
    env_ = new Env;
    env_->knot = knot;
    Result<void> r = env_->Start();
    if (!r.ok()) {
      start_error_ = new std::string(r.error().message());
    }
  }
  static void TearDownTestSuite() {
    delete env_;
    env_ = nullptr;
    delete start_error_;
    start_error_ = nullptr;
  }
  void SetUp() override {
    ASSERT_EQ(start_error_, nullptr) << *start_error_;
    account_dir_ = env_->dir / ("state-" + std::to_string(++counter_));
  }

  std::unique_ptr<AcmeClient> Client(DnsPublisher* dns, HttpChallenges* http = nullptr) {
    auto https = HttpsClient::Create({env_->dir / "pebble-tls.pem"});
    EXPECT_TRUE(https.ok());
    AcmeClientOptions options;
    options.directory_url = "https://127.0.0.1:" + std::to_string(env_->pebble_port) + "/dir";
    options.email = "admin@vmctl.localhost";
    options.account_key_path = account_dir_ / "acme" / "account.key";
    options.poll_interval = std::chrono::milliseconds(200);
    options.order_timeout = std::chrono::seconds(60);
    return std::make_unique<AcmeClient>(options, std::move(*https), ChallengeResponders{dns, http});
  }

  // `openssl verify` with pebble's current root and the chain's own intermediates.
  static std::string Verify(const IssuedCertificate& cert) {
    fs::path root = env_->dir / "root.pem", chain = env_->dir / "chain.pem";
    EXPECT_TRUE(WriteFileAtomic(chain, cert.chain_pem).ok());
    EXPECT_TRUE(WriteFileAtomic(root, env_->Root()).ok());
    auto out = RunCommand({"openssl", "verify", "-CAfile", root.string(), "-untrusted",
                           chain.string(), chain.string()});
    return out.ok() ? out->out + out->err : out.error().message();
  }

  struct Env {
    fs::path dir;
    int pebble_port = 0, management_port = 0, dns_port = 0, challtest_port = 0, http01_port = 0;
    bool knot = false;
    Server challtestsrv, knotd, pebble;

    Result<void> Start();
    Result<void> StartKnot();
    std::string Root();
    ~Env() {
      pebble.Stop();
      challtestsrv.Stop();
      knotd.Stop();
      std::error_code ec;
      fs::remove_all(dir, ec);
    }
  };

  static inline Env* env_ = nullptr;
  static inline std::string* start_error_ = nullptr;
  static inline int counter_ = 0;
  fs::path account_dir_;
};

Result<void> PebbleTest::Env::Start() {
  dir = fs::temp_directory_path() / ("acme-pebble-" + std::to_string(getpid()));
  fs::create_directories(dir);
  for (int* port : {&pebble_port, &management_port, &dns_port, &challtest_port, &http01_port}) {
    VMCTL_ASSIGN_OR_RETURN(*port, testing::UnusedLoopbackPort());
  }
  VMCTL_TRY(RunCommandChecked(
      {"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
       "-subj", "/CN=pebble", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-days", "2",
       "-keyout", (dir / "pebble-tls.key").string(), "-out", (dir / "pebble-tls.pem").string()}));
  std::string config = R"({"pebble": {"listenAddress": "127.0.0.1:)" + std::to_string(pebble_port) +
                       R"(", "managementListenAddress": "127.0.0.1:)" +
                       std::to_string(management_port) + R"(", "certificate": ")" +
                       (dir / "pebble-tls.pem").string() + R"(", "privateKey": ")" +
                       (dir / "pebble-tls.key").string() + R"(", "httpPort": )" +
                       std::to_string(http01_port) + R"(, "tlsPort": 5001,
      "ocspResponderURL": "", "externalAccountBindingRequired": false}})";
  VMCTL_TRY(WriteFileAtomic(dir / "pebble.json", config));
  std::string dns = "127.0.0.1:" + std::to_string(dns_port);
  if (knot) {
    VMCTL_TRY(StartKnot());
  } else {
    VMCTL_TRY(StartServer(challtestsrv,
                          {"pebble-challtestsrv", "-dns01", dns, "-management",
                           "127.0.0.1:" + std::to_string(challtest_port), "-http01", "", "-https01",
                           "", "-tlsalpn01", "", "-defaultIPv6", ""},
                          dir / "challtestsrv.log", challtest_port));
  }
  VMCTL_TRY(StartServer(pebble,
                        {"env", "PEBBLE_VA_NOSLEEP=1", "PEBBLE_AUTHZREUSE=0", "pebble", "-config",
                         (dir / "pebble.json").string(), "-dnsserver", dns},
                        dir / "pebble.log", pebble_port));
  // The hook the DNS-01 tests publish through: challtestsrv's set-txt adds a value to a name,
  // clear-txt drops all of that name's values.
  std::string api = "http://127.0.0.1:" + std::to_string(challtest_port);
  return WriteFileAtomic(
      dir / "dns-hook",
      "#!/bin/sh\nset -e\n"
      "case \"$1\" in\n"
      "  add) curl -sf -d \"{\\\"host\\\":\\\"$2.\\\",\\\"value\\\":\\\"$3\\\"}\" " +
          api +
          "/set-txt ;;\n"
          "  del) curl -sf -d \"{\\\"host\\\":\\\"$2.\\\"}\" " +
          api +
          "/clear-txt ;;\n"
          "  *) exit 2 ;;\n"
          "esac\n",
      0755);
}

// The TSIG key knot accepts updates of vmctl.localhost with, in bind's key file format.
constexpr std::string_view kTsigSecret = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

Result<void> PebbleTest::Env::StartKnot() {
  fs::create_directories(dir / "knot");
  std::string knot_dir = (dir / "knot").string();
  std::string config = "server:\n  rundir: \"" + knot_dir + "\"\n  listen: 127.0.0.1@" +
                       std::to_string(dns_port) +
                       "\n  user: root:root\n"
                       "database:\n  storage: \"" +
                       knot_dir +
                       "\"\n"
                       "key:\n  - id: acme-key\n    algorithm: hmac-sha256\n    secret: " +
                       std::string(kTsigSecret) +
                       "\nacl:\n  - id: acme\n    key: acme-key\n    action: update\n"
                       "template:\n  - id: default\n    storage: \"" +
                       knot_dir +
                       "\"\n    file: \"%s.zone\"\n"
                       "zone:\n  - domain: vmctl.localhost\n    acl: acme\n"
                       "log:\n  - target: stderr\n    any: info\n";
  VMCTL_TRY(WriteFileAtomic(dir / "knot" / "knot.conf", config));
  VMCTL_TRY(WriteFileAtomic(dir / "knot" / "vmctl.localhost.zone",
                            "$ORIGIN vmctl.localhost.\n$TTL 60\n"
                            "@ SOA ns admin 1 60 60 600 60\n@ NS ns\nns A 127.0.0.1\n"));
  VMCTL_TRY(WriteFileAtomic(dir / "tsig.key",
                            "key \"acme-key\" {\n  algorithm hmac-sha256;\n"
                            "  secret \"" +
                                std::string(kTsigSecret) + "\";\n};\n",
                            0600));
  return StartServer(knotd, {"knotd", "-c", (dir / "knot" / "knot.conf").string()},
                     dir / "knotd.log", dns_port);
}

std::string PebbleTest::Env::Root() {
  auto https = HttpsClient::Create({dir / "pebble-tls.pem"});
  auto res =
      (*https)->Request("GET", "https://127.0.0.1:" + std::to_string(management_port) + "/roots/0");
  return res.ok() ? res->body : "";
}

TEST_F(PebbleTest, IssuesApexAndWildcardThroughDns01) {
  HookPublisher hook(env_->dir / "dns-hook");
  auto client = Client(&hook);
  std::vector<std::string> lines;
  auto cert = client->Issue({"vmctl.localhost", "*.vmctl.localhost"}, ChallengeType::kDns01,
                            [&](const std::string& line) { lines.push_back(line); });
  ASSERT_TRUE(cert.ok()) << cert.error().message() << "\n"
                         << TailFile(env_->dir / "pebble.log", 3000);
  EXPECT_THAT(Verify(*cert), HasSubstr(": OK"));
  auto leaf = ParseChainLeaf(cert->chain_pem);
  ASSERT_TRUE(leaf.ok());
  EXPECT_THAT(leaf->dns_names, UnorderedElementsAre("vmctl.localhost", "*.vmctl.localhost"));
  EXPECT_EQ(leaf->not_after, cert->not_after);
  EXPECT_GT(cert->not_after, std::chrono::system_clock::now() + std::chrono::hours(24));

  // The returned key is the certificate's.
  fs::path key = env_->dir / "leaf.key", chain = env_->dir / "leaf.pem";
  ASSERT_TRUE(WriteFileAtomic(key, cert->key_pem, 0600).ok());
  ASSERT_TRUE(WriteFileAtomic(chain, cert->chain_pem).ok());
  auto from_key = RunCommandChecked({"openssl", "pkey", "-in", key.string(), "-pubout"});
  auto from_cert =
      RunCommandChecked({"openssl", "x509", "-in", chain.string(), "-noout", "-pubkey"});
  ASSERT_TRUE(from_key.ok() && from_cert.ok());
  EXPECT_EQ(from_key->out, from_cert->out);

  struct stat st {};
  ASSERT_EQ(::stat((account_dir_ / "acme" / "account.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_THAT(lines, ::testing::Contains(HasSubstr("created account https://")));
  EXPECT_THAT(lines,
              ::testing::Contains(HasSubstr("publishing TXT _acme-challenge.vmctl.localhost")));
  EXPECT_THAT(lines, ::testing::Contains("downloading the certificate"));
}

TEST_F(PebbleTest, ASecondOrderAndASecondClientReuseTheAccount) {
  HookPublisher hook(env_->dir / "dns-hook");
  auto first = Client(&hook);
  auto a = first->Issue({"one.vmctl.localhost"}, ChallengeType::kDns01, [](const std::string&) {});
  ASSERT_TRUE(a.ok()) << a.error().message();
  std::string account = first->account_url();
  auto b = first->Issue({"two.vmctl.localhost"}, ChallengeType::kDns01, [](const std::string&) {});
  ASSERT_TRUE(b.ok()) << b.error().message();
  EXPECT_EQ(first->account_url(), account);

  // A restarted daemon: a new client finds the same account from the stored key.
  std::vector<std::string> lines;
  auto second = Client(&hook);
  auto c = second->Issue({"three.vmctl.localhost"}, ChallengeType::kDns01,
                         [&](const std::string& line) { lines.push_back(line); });
  ASSERT_TRUE(c.ok()) << c.error().message();
  EXPECT_EQ(second->account_url(), account);
  EXPECT_THAT(lines, ::testing::Contains("using account " + account));
  EXPECT_THAT(Verify(*c), HasSubstr(": OK"));
}

TEST_F(PebbleTest, IssuesASingleNameThroughHttp01) {
  HttpChallenges answers;
  ChallengeHttpServer server(env_->http01_port, answers);
  ASSERT_TRUE(server.ok());
  auto client = Client(nullptr, &answers);
  auto cert =
      client->Issue({"app.vmctl.localhost"}, ChallengeType::kHttp01, [](const std::string&) {});
  ASSERT_TRUE(cert.ok()) << cert.error().message();
  EXPECT_GE(server.requests(), 1);
  EXPECT_THAT(Verify(*cert), HasSubstr(": OK"));
  EXPECT_THAT(ParseChainLeaf(cert->chain_pem)->dns_names,
              UnorderedElementsAre("app.vmctl.localhost"));
}

TEST_F(PebbleTest, AFailedChallengeSaysWhy) {
  // Publishes nothing, so the validator finds no TXT record.
  struct Silent : DnsPublisher {
    Result<void> Add(std::string_view, std::string_view) override { return Ok(); }
    Result<void> Remove(std::string_view, std::string_view) override { return Ok(); }
  } silent;
  auto client = Client(&silent);
  auto cert =
      client->Issue({"nothing.vmctl.localhost"}, ChallengeType::kDns01, [](const std::string&) {});
  ASSERT_FALSE(cert.ok());
  EXPECT_EQ(cert.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_THAT(cert.error().message(), HasSubstr("validation of nothing.vmctl.localhost failed"));

  HookPublisher broken(env_->dir / "missing-hook");
  auto again = Client(&broken)->Issue({"x.vmctl.localhost"}, ChallengeType::kDns01,
                                      [](const std::string&) {});
  ASSERT_FALSE(again.ok());
  EXPECT_THAT(again.error().message(), HasSubstr("missing-hook"));
}

TEST_F(PebbleTest, UntrustedServerIsRefused) {
  auto https = HttpsClient::Create({});  // system roots do not include our pebble certificate
  ASSERT_TRUE(https.ok());
  auto res =
      (*https)->Request("GET", "https://127.0.0.1:" + std::to_string(env_->pebble_port) + "/dir");
  ASSERT_FALSE(res.ok());
  EXPECT_THAT(res.error().message(), HasSubstr("TLS handshake"));
}

// The Renewer over the real client with a clock the test moves: the first certificate at once,
// nothing before a third of its lifetime is left, a fresh one after.
TEST_F(PebbleTest, RenewsWhenAThirdOfTheLifetimeIsLeft) {
  struct TestClock : Clock {
    std::mutex mu;
    SystemTime now = std::chrono::system_clock::now();
    SystemTime Now() override {
      std::lock_guard lock(mu);
      return now;
    }
  } clock;
  HookPublisher hook(env_->dir / "dns-hook");
  auto client = Client(&hook);
  std::mutex mu;
  std::vector<IssuedCertificate> installed;
  Renewer renewer(
      [&] {
        return client->Issue({"vmctl.localhost", "*.vmctl.localhost"}, ChallengeType::kDns01,
                             [](const std::string&) {});
      },
      [&](const IssuedCertificate& c) {
        std::lock_guard lock(mu);
        installed.push_back(c);
      },
      clock, {BackoffPolicy{}, std::chrono::milliseconds(20)}, std::nullopt);
  renewer.Start();
  auto count = [&] {
    std::lock_guard lock(mu);
    return installed.size();
  };
  auto wait_for = [&](size_t n) {
    for (int i = 0; i < 600 && count() < n; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return count() >= n;
  };
  ASSERT_TRUE(wait_for(1)) << renewer.status().last_error;
  SystemTime renew_at = RenewalTime(installed[0].not_before, installed[0].not_after);
  {
    std::lock_guard lock(clock.mu);
    clock.now = renew_at - std::chrono::minutes(1);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(count(), 1u);
  {
    std::lock_guard lock(clock.mu);
    clock.now = renew_at;
  }
  ASSERT_TRUE(wait_for(2)) << renewer.status().last_error;
  renewer.Stop();
  EXPECT_NE(installed[1].chain_pem, installed[0].chain_pem);
  EXPECT_THAT(Verify(installed[1]), HasSubstr(": OK"));
}

// RFC 2136 against a real knotd, and a full order whose DNS-01 records go there.
class KnotTest : public PebbleTest {
 protected:
  static void SetUpTestSuite() { StartServers(true); }

  Rfc2136Publisher Publisher(std::string secret = std::string(kTsigSecret)) {
    auto key = ParseTsigKeyFile(*ReadFile(env_->dir / "tsig.key"));
    EXPECT_TRUE(key.ok());
    key->secret = secret == kTsigSecret ? key->secret : secret;
    return Rfc2136Publisher("127.0.0.1", std::to_string(env_->dns_port), *key);
  }
  std::string Dig(const std::string& name) {
    auto out = RunCommand(
        {"kdig", "@127.0.0.1", "-p", std::to_string(env_->dns_port), "+short", "TXT", name});
    return out.ok() ? out->out : out.error().message();
  }
};

TEST_F(KnotTest, AddsAndRemovesOneValueAtATime) {
  Rfc2136Publisher publisher = Publisher();
  const std::string name = "_acme-challenge.vmctl.localhost";
  ASSERT_TRUE(publisher.Add(name, "value-one").ok());
  auto second = publisher.Add(name, "value-two");
  ASSERT_TRUE(second.ok()) << second.error().message();
  EXPECT_THAT(Dig(name), HasSubstr("\"value-one\""));
  EXPECT_THAT(Dig(name), HasSubstr("\"value-two\""));
  ASSERT_TRUE(publisher.Remove(name, "value-one").ok());
  EXPECT_EQ(Dig(name), "\"value-two\"\n");
  ASSERT_TRUE(publisher.Remove(name, "value-two").ok());
  EXPECT_EQ(Dig(name), "");
}

TEST_F(KnotTest, AWrongKeyIsRefused) {
  Rfc2136Publisher publisher = Publisher("not the secret");
  auto r = publisher.Add("_acme-challenge.vmctl.localhost", "v");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kUnauthenticated) << r.error().message();
  EXPECT_EQ(Dig("_acme-challenge.vmctl.localhost"), "");
  auto outside = Publisher().Add("_acme-challenge.other.test", "v");
  ASSERT_FALSE(outside.ok());
  EXPECT_THAT(outside.error().message(), HasSubstr("NOTAUTH"));
}

TEST_F(KnotTest, IssuesApexAndWildcardWithRecordsInKnot) {
  Rfc2136Publisher publisher = Publisher();
  auto client = Client(&publisher);
  auto cert = client->Issue({"vmctl.localhost", "*.vmctl.localhost"}, ChallengeType::kDns01,
                            [](const std::string&) {});
  ASSERT_TRUE(cert.ok()) << cert.error().message() << "\n"
                         << TailFile(env_->dir / "knotd.log", 2000);
  EXPECT_THAT(Verify(*cert), HasSubstr(": OK"));
  EXPECT_THAT(ParseChainLeaf(cert->chain_pem)->dns_names,
              UnorderedElementsAre("vmctl.localhost", "*.vmctl.localhost"));
  EXPECT_EQ(Dig("_acme-challenge.vmctl.localhost"), "");  // cleaned up
}

}  // namespace
}  // namespace vmctl::acme
