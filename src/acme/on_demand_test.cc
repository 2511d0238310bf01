#include "acme/on_demand.h"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <mutex>

#include "tls/local_ca.h"
#include "tls/test_util.h"

namespace vmctl::acme {
namespace {

namespace fs = std::filesystem;
using std::chrono::hours;
using std::chrono::minutes;

constexpr char kDomain[] = "vmctl.localhost";

class FakeClock : public Clock {
 public:
  SystemTime Now() override {
    std::lock_guard lock(mu_);
    return now_;
  }
  void Advance(std::chrono::seconds by) {
    std::lock_guard lock(mu_);
    now_ += by;
  }

 private:
  std::mutex mu_;
  SystemTime now_ = std::chrono::system_clock::now();
};

// Certificates from a local CA (which signs any name; only clients enforce its constraints),
// domains registered in a map, and every event counted so tests wait for them, never for time.
class OnDemandTest : public tls::TlsTest {
 protected:
  void SetUp() override {
    TlsTest::SetUp();
    auto ca = tls::LocalCa::Open(dir_ / "ca", kDomain);
    ASSERT_TRUE(ca.ok()) << ca.error().message();
    ca_.emplace(std::move(ca).value());
    auto store = tls::CertStore::Open(dir_ / "certs", kDomain);
    ASSERT_TRUE(store.ok()) << store.error().message();
    store_ = std::move(store).value();
  }
  void TearDown() override {
    if (certificates_) certificates_->Stop();
    TlsTest::TearDown();
  }

  void Start(OnDemandOptions options = {}) {
    options.domain = kDomain;
    options.log = [this](const std::string& line) {
      std::lock_guard lock(mu_);
      log_.push_back(line);
      changed_.notify_all();
    };
    certificates_ = std::make_unique<OnDemandCertificates>(
        options, *store_,
        [this](const std::string& domain) -> Result<IssuedCertificate> {
          std::unique_lock lock(mu_);
          ++orders_[domain];
          changed_.notify_all();
          changed_.wait(lock, [&] { return !hold_; });
          if (fail_) return Unavailable("the ACME server is down");
          auto issued = ca_->Issue({domain}, lifetime_);
          if (!issued.ok()) return issued.error();
          return IssuedCertificate{issued->chain_pem, issued->key_pem, {}, {}};
        },
        [this](const std::string& domain) -> Result<std::optional<std::string>> {
          std::lock_guard lock(mu_);
          auto it = registered_.find(domain);
          if (it == registered_.end()) return std::optional<std::string>();
          return std::optional<std::string>(it->second);
        },
        clock_);
    certificates_->Start();
  }

  void Register(const std::string& domain, const std::string& vm) {
    std::lock_guard lock(mu_);
    registered_[domain] = vm;
  }
  void Unregister(const std::string& domain) {
    std::lock_guard lock(mu_);
    registered_.erase(domain);
  }

  // AwaitCertificate's answer, after its `ready` has run when it said true.
  bool AwaitAndWait(const std::string& name) {
    std::shared_ptr<std::atomic<bool>> done = std::make_shared<std::atomic<bool>>(false);
    bool coming = certificates_->AwaitCertificate(name, [this, done] {
      std::lock_guard lock(mu_);
      *done = true;
      changed_.notify_all();
    });
    if (coming) {
      std::unique_lock lock(mu_);
      changed_.wait(lock, [&] { return done->load(); });
    }
    return coming;
  }

  int Orders(const std::string& domain) {
    std::lock_guard lock(mu_);
    return orders_[domain];
  }

  void WaitForLog(const std::string& part) {
    std::unique_lock lock(mu_);
    changed_.wait(lock, [&] {
      return std::any_of(log_.begin(), log_.end(),
                         [&](const std::string& l) { return l.find(part) != std::string::npos; });
    });
  }

  std::optional<tls::LocalCa> ca_;
  std::unique_ptr<tls::CertStore> store_;
  FakeClock clock_;
  std::unique_ptr<OnDemandCertificates> certificates_;

  std::mutex mu_;
  std::condition_variable changed_;
  std::map<std::string, std::string> registered_;
  std::map<std::string, int> orders_;
  std::vector<std::string> log_;
  bool hold_ = false;
  bool fail_ = false;
  std::chrono::seconds lifetime_ = hours(24 * 90);
};

TEST_F(OnDemandTest, ConcurrentHandshakesShareOneOrder) {
  Register("example.com", "vm1");
  Start();
  {
    std::lock_guard lock(mu_);
    hold_ = true;
  }
  std::atomic<int> ready = 0;
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(certificates_->AwaitCertificate("example.com", [&] {
      std::lock_guard lock(mu_);
      ++ready;
      changed_.notify_all();
    }));
  }
  {
    std::unique_lock lock(mu_);
    changed_.wait(lock, [&] { return orders_["example.com"] == 1; });
    hold_ = false;
    changed_.notify_all();
    changed_.wait(lock, [&] { return ready == 3; });
  }
  EXPECT_EQ(Orders("example.com"), 1);
  EXPECT_NE(certificates_->ForServerName("example.com"), nullptr);
  EXPECT_EQ(Mode(dir_ / "certs" / "example.com.key"), 0600u);
  EXPECT_EQ(Mode(dir_ / "certs" / "example.com.crt"), 0600u);
  EXPECT_TRUE(AwaitAndWait("example.com")) << "a late handshake still gets its ready";
  EXPECT_EQ(Orders("example.com"), 1) << "nothing is ordered for a name that is served";

  // A restarted daemon serves it from the disk at once.
  auto reopened = tls::CertStore::Open(dir_ / "certs", kDomain);
  ASSERT_TRUE(reopened.ok());
  EXPECT_NE((*reopened)->ForServerName("example.com"), nullptr);
}

TEST_F(OnDemandTest, OnlyRegisteredCustomDomainsAreOrdered) {
  Start();
  EXPECT_FALSE(AwaitAndWait(kDomain)) << "DOMAIN's certificate is the renewer's";
  EXPECT_FALSE(AwaitAndWait("web.vmctl.localhost"));
  EXPECT_FALSE(AwaitAndWait(""));
  EXPECT_TRUE(AwaitAndWait("unknown.example")) << "registration is looked up off the event loop";
  EXPECT_EQ(Orders("unknown.example"), 0);
  EXPECT_EQ(certificates_->ForServerName("unknown.example"), nullptr);
}

TEST_F(OnDemandTest, NewOrdersAreLimitedPerVm) {
  for (const char* domain : {"a.example", "b.example", "c.example"}) Register(domain, "vm1");
  Register("d.example", "vm2");
  Start({.max_new_per_vm = 2, .window = hours(1)});
  for (const char* domain : {"a.example", "b.example", "c.example", "d.example"}) {
    EXPECT_TRUE(AwaitAndWait(domain));
  }
  EXPECT_EQ(Orders("a.example") + Orders("b.example"), 2);
  EXPECT_EQ(Orders("c.example"), 0) << "vm1 has had its two orders this hour";
  EXPECT_EQ(certificates_->ForServerName("c.example"), nullptr);
  EXPECT_NE(certificates_->ForServerName("d.example"), nullptr) << "another VM is not limited";
  WaitForLog("c.example: not ordered");

  clock_.Advance(hours(1));
  EXPECT_TRUE(AwaitAndWait("c.example"));
  EXPECT_NE(certificates_->ForServerName("c.example"), nullptr);
}

TEST_F(OnDemandTest, FailedOrdersBackOff) {
  Register("example.com", "vm1");
  fail_ = true;
  Start({.backoff = {.first = minutes(1), .max = hours(1), .jitter = 0}});
  EXPECT_TRUE(AwaitAndWait("example.com"));
  EXPECT_EQ(certificates_->ForServerName("example.com"), nullptr);
  WaitForLog("the ACME server is down");
  EXPECT_FALSE(AwaitAndWait("example.com")) << "within the backoff the handshake fails at once";
  EXPECT_EQ(Orders("example.com"), 1);

  clock_.Advance(minutes(1));
  {
    std::lock_guard lock(mu_);
    fail_ = false;
  }
  EXPECT_TRUE(AwaitAndWait("example.com"));
  EXPECT_EQ(Orders("example.com"), 2);
  EXPECT_NE(certificates_->ForServerName("example.com"), nullptr);
}

TEST_F(OnDemandTest, RenewsDueCertificatesAndRemovesUnregisteredOnes) {
  Register("renew.example", "vm1");
  Register("gone.example", "vm1");
  lifetime_ = hours(24 * 6);
  Start({.check_interval = hours(24)});
  EXPECT_TRUE(AwaitAndWait("renew.example"));
  EXPECT_TRUE(AwaitAndWait("gone.example"));
  ASSERT_NE(certificates_->ForServerName("gone.example"), nullptr);

  Unregister("gone.example");  // domain rm
  clock_.Advance(hours(24 * 5));
  certificates_->Poke();
  WaitForLog("gone.example: no longer a custom domain");
  EXPECT_EQ(certificates_->ForServerName("gone.example"), nullptr);
  EXPECT_FALSE(fs::exists(dir_ / "certs" / "gone.example.crt"));
  EXPECT_FALSE(fs::exists(dir_ / "certs" / "gone.example.key"));

  std::unique_lock lock(mu_);
  changed_.wait(lock, [&] { return orders_["renew.example"] == 2; });
  EXPECT_EQ(orders_["gone.example"], 1);
}

TEST_F(OnDemandTest, StopReleasesWaitingHandshakes) {
  Register("example.com", "vm1");
  hold_ = true;
  Start();
  std::atomic<bool> ready = false;
  ASSERT_TRUE(certificates_->AwaitCertificate("example.com", [&] { ready = true; }));
  {
    std::unique_lock lock(mu_);
    changed_.wait(lock, [&] { return orders_["example.com"] == 1; });
    hold_ = false;
    changed_.notify_all();
  }
  certificates_->Stop();
  EXPECT_TRUE(ready);
  EXPECT_FALSE(certificates_->AwaitCertificate("other.example", [] {}));
}

}  // namespace
}  // namespace vmctl::acme
