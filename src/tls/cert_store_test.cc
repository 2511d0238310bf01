#include "tls/cert_store.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "base/io.h"
#include "tls/certificates.h"
#include "tls/local_ca.h"
#include "tls/test_util.h"

namespace vmctl::tls {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::system_clock;
constexpr char kDomain[] = "vmctl.localhost";

class CertStoreTest : public TlsTest {
 protected:
  void SetUp() override {
    TlsTest::SetUp();
    auto ca = LocalCa::Open(dir_ / "ca", kDomain);
    ASSERT_TRUE(ca.ok()) << ca.error().message();
    ca_.emplace(std::move(ca).value());
    store_ = OpenStore();
  }

  std::unique_ptr<CertStore> OpenStore() {
    auto store = CertStore::Open(dir_ / "certs", kDomain);
    EXPECT_TRUE(store.ok()) << store.error().message();
    return store.ok() ? std::move(store).value() : nullptr;
  }

  IssuedCertificate Issue(const std::vector<std::string>& names,
                          std::chrono::seconds lifetime = LocalCa::kLeafLifetime) {
    auto issued = ca_->Issue(names, lifetime);
    EXPECT_TRUE(issued.ok()) << issued.error().message();
    return std::move(issued).value();
  }

  void Install(const std::vector<std::string>& names) {
    IssuedCertificate c = Issue(names);
    auto r = store_->Install(names, c.chain_pem, c.key_pem);
    ASSERT_TRUE(r.ok()) << r.error().message();
  }

  // The first DNS name of the certificate a context serves: which certificate SNI picked.
  static std::string Served(const std::shared_ptr<SSL_CTX>& ctx) {
    if (!ctx) return "(none)";
    auto names = DnsNames(SSL_CTX_get0_certificate(ctx.get()));
    return names.empty() ? "(no names)" : names.front();
  }

  std::optional<LocalCa> ca_;
  std::unique_ptr<CertStore> store_;
};

TEST_F(CertStoreTest, ServerNameSelectsExactThenOneLabelWildcard) {
  Install({kDomain, "*.vmctl.localhost"});
  Install({"special.vmctl.localhost"});
  Install({"*.deep.vmctl.localhost"});
  Install({"example.com"});

  EXPECT_EQ(Served(store_->ForServerName("vmctl.localhost")), kDomain);
  EXPECT_EQ(Served(store_->ForServerName("web.vmctl.localhost")), kDomain);
  EXPECT_EQ(Served(store_->ForServerName("WEB.vmctl.LOCALHOST")), kDomain);
  EXPECT_EQ(Served(store_->ForServerName("special.vmctl.localhost")), "special.vmctl.localhost");
  EXPECT_EQ(Served(store_->ForServerName("a.deep.vmctl.localhost")), "*.deep.vmctl.localhost");
  EXPECT_EQ(Served(store_->ForServerName("deep.vmctl.localhost")), kDomain);
  EXPECT_EQ(Served(store_->ForServerName("example.com")), "example.com");
  EXPECT_EQ(Served(store_->ForServerName("")), kDomain) << "no SNI: the domain's certificate";

  EXPECT_EQ(store_->ForServerName("a.b.example.com"), nullptr);
  EXPECT_EQ(store_->ForServerName("www.example.com"), nullptr);
  EXPECT_EQ(store_->ForServerName("a.web.vmctl.localhost"), nullptr) << "wildcards cover one label";
  EXPECT_EQ(store_->ForServerName("*.vmctl.localhost"), nullptr);
  EXPECT_EQ(store_->ForServerName("localhost"), nullptr);
  EXPECT_EQ(store_->ForServerName("unknown.test"), nullptr);
}

TEST_F(CertStoreTest, NoCertificateMeansNoContext) {
  EXPECT_EQ(store_->ForServerName(""), nullptr);
  EXPECT_EQ(store_->ForServerName(kDomain), nullptr);
  EXPECT_FALSE(store_->NotAfter(kDomain).has_value());
}

TEST_F(CertStoreTest, InstallWritesPrivateFilesAtomicallyAndReloads) {
  Install({kDomain, "*.vmctl.localhost"});
  Install({"*.deep.vmctl.localhost"});
  EXPECT_EQ(Mode(dir_ / "certs"), 0700u);
  std::vector<std::string> files;
  for (const auto& f : fs::directory_iterator(dir_ / "certs")) {
    files.push_back(f.path().filename());
    EXPECT_EQ(Mode(f.path()), 0600u) << f.path();
  }
  std::sort(files.begin(), files.end());
  EXPECT_EQ(files,
            (std::vector<std::string>{"_.deep.vmctl.localhost.crt", "_.deep.vmctl.localhost.key",
                                      "vmctl.localhost.crt", "vmctl.localhost.key"}));

  auto reopened = OpenStore();
  EXPECT_TRUE(reopened->problems().empty());
  EXPECT_EQ(Served(reopened->ForServerName("web.vmctl.localhost")), kDomain);
  EXPECT_EQ(Served(reopened->ForServerName("x.deep.vmctl.localhost")), "*.deep.vmctl.localhost");
  EXPECT_EQ(reopened->NotAfter(kDomain), store_->NotAfter(kDomain));
}

TEST_F(CertStoreTest, InstallRefusesBadInputAndWritesNothing) {
  IssuedCertificate good = Issue({kDomain});
  IssuedCertificate other = Issue({kDomain});
  auto expect_refused = [&](const std::vector<std::string>& names, std::string_view chain,
                            std::string_view key, std::string_view why) {
    auto r = store_->Install(names, chain, key);
    ASSERT_FALSE(r.ok()) << why;
    EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument) << why;
    EXPECT_NE(r.error().message().find(why), std::string::npos) << r.error().message();
  };
  expect_refused({kDomain}, good.chain_pem, other.key_pem, "does not match");
  expect_refused({kDomain}, "not pem", good.key_pem, "no PEM certificate");
  expect_refused({kDomain}, good.chain_pem, "not pem", "private key");
  expect_refused({"web.vmctl.localhost"}, good.chain_pem, good.key_pem, "does not cover");
  expect_refused({"etc/passwd.example"}, good.chain_pem, good.key_pem, "only lowercase");
  expect_refused({}, good.chain_pem, good.key_pem, "at least one name");
  IssuedCertificate expired = Issue({kDomain}, std::chrono::seconds(1));
  expect_refused({kDomain}, expired.chain_pem, expired.key_pem, "expired");
  EXPECT_TRUE(fs::is_empty(dir_ / "certs"));
  EXPECT_EQ(store_->ForServerName(kDomain), nullptr);
}

TEST_F(CertStoreTest, OpenSkipsAndReportsUnusableFiles) {
  Install({kDomain, "*.vmctl.localhost"});
  IssuedCertificate expired = Issue({"old.example"}, std::chrono::seconds(1));
  ASSERT_TRUE(WriteFileAtomic(dir_ / "certs/old.example.crt", expired.chain_pem).ok());
  ASSERT_TRUE(WriteFileAtomic(dir_ / "certs/old.example.key", expired.key_pem).ok());
  IssuedCertificate a = Issue({"a.example"});
  IssuedCertificate b = Issue({"a.example"});
  ASSERT_TRUE(WriteFileAtomic(dir_ / "certs/a.example.crt", a.chain_pem).ok());
  ASSERT_TRUE(WriteFileAtomic(dir_ / "certs/a.example.key", b.key_pem).ok());
  ASSERT_TRUE(WriteFileAtomic(dir_ / "certs/garbage.example.crt", "junk").ok());
  ASSERT_TRUE(WriteFileAtomic(dir_ / "certs/garbage.example.key", a.key_pem).ok());
  ASSERT_TRUE(WriteFileAtomic(dir_ / "certs/nokey.example.crt", a.chain_pem).ok());
  ASSERT_TRUE(WriteFileAtomic(dir_ / "certs/x.crt.tmp.AbC123", "partial").ok());

  auto store = OpenStore();
  std::string problems;
  for (const auto& p : store->problems()) problems += p + "\n";
  EXPECT_EQ(store->problems().size(), 4u) << problems;
  EXPECT_NE(problems.find("old.example.crt: the certificate expired on"), std::string::npos)
      << problems;
  EXPECT_NE(problems.find("a.example.crt: the key does not match"), std::string::npos) << problems;
  EXPECT_NE(problems.find("garbage.example.crt: no PEM certificate; skipped"), std::string::npos)
      << problems;
  EXPECT_NE(problems.find("nokey.example.crt: open "), std::string::npos) << problems;
  EXPECT_FALSE(fs::exists(dir_ / "certs/x.crt.tmp.AbC123")) << "leftover temp file removed";
  EXPECT_EQ(Served(store->ForServerName("web.vmctl.localhost")), kDomain);
  EXPECT_EQ(store->ForServerName("a.example"), nullptr);
}

TEST_F(CertStoreTest, OfTwoFilesForANameTheOneValidLongestServes) {
  IssuedCertificate longer = Issue({"*.vmctl.localhost"});
  IssuedCertificate shorter = Issue({kDomain, "*.vmctl.localhost"}, std::chrono::hours(24 * 30));
  ASSERT_TRUE(WriteFileAtomic(dir_ / "certs/_.vmctl.localhost.crt", longer.chain_pem).ok());
  ASSERT_TRUE(WriteFileAtomic(dir_ / "certs/_.vmctl.localhost.key", longer.key_pem).ok());
  ASSERT_TRUE(WriteFileAtomic(dir_ / "certs/vmctl.localhost.crt", shorter.chain_pem).ok());
  ASSERT_TRUE(WriteFileAtomic(dir_ / "certs/vmctl.localhost.key", shorter.key_pem).ok());
  auto store = OpenStore();
  EXPECT_EQ(Served(store->ForServerName("web.vmctl.localhost")), "*.vmctl.localhost");
  EXPECT_EQ(Served(store->ForServerName(kDomain)), kDomain);
  ASSERT_EQ(store->problems().size(), 1u);
  EXPECT_NE(store->problems()[0].find("*.vmctl.localhost is served from a newer certificate"),
            std::string::npos)
      << store->problems()[0];
}

TEST_F(CertStoreTest, RenewalIsDueWithAThirdOfTheLifetimeLeft) {
  Install({kDomain, "*.vmctl.localhost"});
  Install({"example.com"});
  auto info = store_->Lookup("web.vmctl.localhost");
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->names, (std::vector<std::string>{kDomain, "*.vmctl.localhost"}));
  auto not_after = store_->NotAfter(kDomain);
  ASSERT_TRUE(not_after.has_value());
  EXPECT_EQ(*not_after, info->not_after);

  Clock::time_point now = Clock::now();
  EXPECT_TRUE(store_->NeedingRenewal(now).empty());
  EXPECT_TRUE(store_->NeedingRenewal(now + std::chrono::hours(24 * 59)).empty());
  auto due = store_->NeedingRenewal(now + std::chrono::hours(24 * 61));
  EXPECT_EQ(due.size(), 2u) << "each certificate once, though it serves two names";
  EXPECT_FALSE(info->NeedsRenewal(info->not_after - (info->not_after - info->not_before) / 3 -
                                  std::chrono::seconds(1)));
  EXPECT_TRUE(info->NeedsRenewal(info->not_after - (info->not_after - info->not_before) / 3));
}

TEST_F(CertStoreTest, LocalCaReissuesOnlyWhenMissingOrDue) {
  Clock::time_point now = Clock::now();
  auto issued = RenewFromLocalCa(*ca_, *store_, kDomain, now);
  ASSERT_TRUE(issued.ok()) << issued.error().message();
  EXPECT_TRUE(*issued);
  auto first = store_->NotAfter(kDomain);
  EXPECT_FALSE(*RenewFromLocalCa(*ca_, *store_, kDomain, now + std::chrono::hours(24)));
  EXPECT_EQ(store_->NotAfter(kDomain), first);
  std::this_thread::sleep_for(std::chrono::seconds(1));  // not_after has second resolution
  EXPECT_TRUE(*RenewFromLocalCa(*ca_, *store_, kDomain, now + std::chrono::hours(24 * 61)));
  EXPECT_GT(store_->NotAfter(kDomain), first);
  EXPECT_EQ(Served(store_->ForServerName("web.vmctl.localhost")), kDomain);
}

TEST_F(CertStoreTest, LocalRenewalReplacesADueCertificateWhileRunning) {
  // Six minutes long, from five minutes ago: a minute left, so due.
  IssuedCertificate due = Issue({kDomain, "*.vmctl.localhost"}, std::chrono::minutes(6));
  ASSERT_TRUE(store_->Install({kDomain}, due.chain_pem, due.key_pem).ok());
  auto before = store_->NotAfter(kDomain);
  {
    LocalRenewal renewal(*ca_, *store_, kDomain, std::chrono::milliseconds(20));
    for (int i = 0; i < 500 && store_->NotAfter(kDomain) == before; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  auto after = store_->NotAfter(kDomain);
  ASSERT_TRUE(after.has_value());
  EXPECT_GT(*after, Clock::now() + std::chrono::hours(24 * 89));
}

TEST_F(CertStoreTest, OpenCertificatesMakesTheCaAndTheDomainCertificateOnce) {
  auto certs = OpenCertificates(dir_ / "state", kDomain, /*use_local_ca=*/true);
  ASSERT_TRUE(certs.ok()) << certs.error().message();
  ASSERT_TRUE(certs->local_ca.has_value());
  EXPECT_EQ(certs->local_ca->certificate_path(), dir_ / "state/tls/ca.crt");
  EXPECT_NE(certs->store->ForServerName(""), nullptr);
  auto not_after = certs->store->NotAfter(kDomain);

  auto again = OpenCertificates(dir_ / "state", kDomain, true);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->store->NotAfter(kDomain), not_after) << "reused, not reissued";
  EXPECT_EQ(again->local_ca->certificate_pem(), certs->local_ca->certificate_pem());

  auto acme = OpenCertificates(dir_ / "acme-state", kDomain, false);
  ASSERT_TRUE(acme.ok());
  EXPECT_FALSE(acme->local_ca.has_value());
  EXPECT_EQ(acme->store->ForServerName(""), nullptr);
  EXPECT_FALSE(fs::exists(dir_ / "acme-state/tls/ca.key"));
}

TEST_F(CertStoreTest, RemoveStopsServingAndDeletesTheFiles) {
  Install({kDomain, "*.vmctl.localhost"});
  Install({"shop.example"});
  EXPECT_EQ(store_->Certificates().size(), 2u);
  ASSERT_TRUE(store_->Remove("shop.example").ok());
  EXPECT_EQ(store_->ForServerName("shop.example"), nullptr);
  EXPECT_FALSE(fs::exists(dir_ / "certs/shop.example.crt"));
  EXPECT_FALSE(fs::exists(dir_ / "certs/shop.example.key"));
  EXPECT_EQ(store_->Certificates().size(), 1u);
  EXPECT_EQ(Served(store_->ForServerName("web.vmctl.localhost")), kDomain) << "others stay";
  EXPECT_EQ(store_->Remove("shop.example").error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(OpenStore()->ForServerName("shop.example"), nullptr) << "and stay gone";
}

TEST_F(CertStoreTest, LookupsNeverSeeAMissingCertificateDuringInstalls) {
  Install({kDomain, "*.vmctl.localhost"});
  std::shared_ptr<SSL_CTX> held = store_->ForServerName(kDomain);
  std::atomic<bool> done = false;
  std::atomic<int> misses = 0;
  std::vector<std::thread> readers;
  for (int i = 0; i < 2; ++i) {
    readers.emplace_back([&] {
      while (!done) {
        if (!store_->ForServerName("web.vmctl.localhost")) ++misses;
      }
    });
  }
  for (int i = 0; i < 3; ++i) Install({kDomain, "*.vmctl.localhost"});
  done = true;
  for (auto& t : readers) t.join();
  EXPECT_EQ(misses, 0);
  EXPECT_NE(store_->ForServerName(kDomain), held) << "swapped";
  EXPECT_NE(SSL_CTX_get0_certificate(held.get()), nullptr) << "the old context stays usable";
}

}  // namespace
}  // namespace vmctl::tls
