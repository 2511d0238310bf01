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
#include "testing/acme_servers/acme_servers.h"

namespace vmctl::acme {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

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
  static void SetUpTestSuite() { StartServers(testing::AcmeDns::kChallTestSrv); }
  // Pebble's validator asks challtestsrv, or with kKnot a real knotd serving the zone.
  static void StartServers(testing::AcmeDns dns) {
    dir_ = new fs::path(fs::temp_directory_path() / ("acme-pebble-" + std::to_string(getpid())));
    fs::create_directories(*dir_);
    auto started = testing::AcmeServers::Start({.dir = *dir_, .dns = dns});
    if (started.ok()) {
      servers_ = started->release();
    } else {
      start_error_ = new std::string(started.error().message());
    }
  }
  static void TearDownTestSuite() {
    delete servers_;
    servers_ = nullptr;
    delete start_error_;
    start_error_ = nullptr;
    std::error_code ec;
    fs::remove_all(*dir_, ec);
    delete dir_;
    dir_ = nullptr;
  }
  void SetUp() override {
    ASSERT_EQ(start_error_, nullptr) << *start_error_;
    account_dir_ = *dir_ / ("state-" + std::to_string(++counter_));
  }

  std::unique_ptr<AcmeClient> Client(DnsPublisher* dns, HttpChallenges* http = nullptr) {
    auto https = HttpsClient::Create({servers_->ca_bundle()});
    EXPECT_TRUE(https.ok());
    AcmeClientOptions options;
    options.directory_url = servers_->directory_url();
    options.email = "admin@vmctl.localhost";
    options.account_key_path = account_dir_ / "acme" / "account.key";
    options.poll_interval = std::chrono::milliseconds(200);
    options.order_timeout = std::chrono::seconds(60);
    return std::make_unique<AcmeClient>(options, std::move(*https), ChallengeResponders{dns, http});
  }

  // `openssl verify` with pebble's current root and the chain's own intermediates.
  static std::string Verify(const IssuedCertificate& cert) {
    fs::path root = *dir_ / "root.pem", chain = *dir_ / "chain.pem";
    EXPECT_TRUE(WriteFileAtomic(chain, cert.chain_pem).ok());
    auto pem = servers_->Root();
    EXPECT_TRUE(pem.ok()) << pem.error().message();
    EXPECT_TRUE(WriteFileAtomic(root, pem.ok() ? *pem : "").ok());
    auto out = RunCommand({"openssl", "verify", "-CAfile", root.string(), "-untrusted",
                           chain.string(), chain.string()});
    return out.ok() ? out->out + out->err : out.error().message();
  }

  static inline fs::path* dir_ = nullptr;
  static inline testing::AcmeServers* servers_ = nullptr;
  static inline std::string* start_error_ = nullptr;
  static inline int counter_ = 0;
  fs::path account_dir_;
};

TEST_F(PebbleTest, IssuesApexAndWildcardThroughDns01) {
  HookPublisher hook(servers_->dns_hook());
  auto client = Client(&hook);
  std::vector<std::string> lines;
  auto cert = client->Issue({"vmctl.localhost", "*.vmctl.localhost"}, ChallengeType::kDns01,
                            [&](const std::string& line) { lines.push_back(line); });
  ASSERT_TRUE(cert.ok()) << cert.error().message() << "\n"
                         << TailFile(servers_->pebble_log(), 3000);
  EXPECT_THAT(Verify(*cert), HasSubstr(": OK"));
  auto leaf = ParseChainLeaf(cert->chain_pem);
  ASSERT_TRUE(leaf.ok());
  EXPECT_THAT(leaf->dns_names, UnorderedElementsAre("vmctl.localhost", "*.vmctl.localhost"));
  EXPECT_EQ(leaf->not_after, cert->not_after);
  EXPECT_GT(cert->not_after, std::chrono::system_clock::now() + std::chrono::hours(24));

  // The returned key is the certificate's.
  fs::path key = *dir_ / "leaf.key", chain = *dir_ / "leaf.pem";
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
  HookPublisher hook(servers_->dns_hook());
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
  ChallengeHttpServer server(servers_->http01_port(), answers);
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

  HookPublisher broken(*dir_ / "missing-hook");
  auto again = Client(&broken)->Issue({"x.vmctl.localhost"}, ChallengeType::kDns01,
                                      [](const std::string&) {});
  ASSERT_FALSE(again.ok());
  EXPECT_THAT(again.error().message(), HasSubstr("missing-hook"));
}

TEST_F(PebbleTest, UntrustedServerIsRefused) {
  auto https = HttpsClient::Create({});  // system roots do not include our pebble certificate
  ASSERT_TRUE(https.ok());
  auto res = (*https)->Request("GET", servers_->directory_url());
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
  HookPublisher hook(servers_->dns_hook());
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
  static void SetUpTestSuite() { StartServers(testing::AcmeDns::kKnot); }

  Rfc2136Publisher Publisher(std::optional<std::string> secret = std::nullopt) {
    auto key = ParseTsigKeyFile(*ReadFile(servers_->tsig_key_file()));
    EXPECT_TRUE(key.ok());
    if (secret) key->secret = *secret;
    return Rfc2136Publisher("127.0.0.1", std::to_string(servers_->dns_port()), *key);
  }
  std::string Dig(const std::string& name) { return servers_->Dig(name); }
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
  ASSERT_TRUE(cert.ok()) << cert.error().message() << "\n" << TailFile(servers_->dns_log(), 2000);
  EXPECT_THAT(Verify(*cert), HasSubstr(": OK"));
  EXPECT_THAT(ParseChainLeaf(cert->chain_pem)->dns_names,
              UnorderedElementsAre("vmctl.localhost", "*.vmctl.localhost"));
  EXPECT_EQ(Dig("_acme-challenge.vmctl.localhost"), "");  // cleaned up
}

}  // namespace
}  // namespace vmctl::acme
