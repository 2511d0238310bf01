#include "tls/local_ca.h"

#include <gtest/gtest.h>
#include <openssl/x509v3.h>

#include "base/io.h"
#include "base/process.h"
#include "tls/test_util.h"

namespace vmctl::tls {
namespace {

namespace fs = std::filesystem;
constexpr char kDomain[] = "vmctl.localhost";

class LocalCaTest : public TlsTest {
 protected:
  LocalCa OpenCa() {
    auto ca = LocalCa::Open(dir_ / "tls", kDomain);
    EXPECT_TRUE(ca.ok()) << ca.error().message();
    return std::move(ca).value();
  }

  // `openssl verify` of a leaf against the CA: "" when it verifies, else its complaint.
  std::string OpensslVerify(const LocalCa& ca, const std::string& leaf_pem) {
    EXPECT_TRUE(WriteFileAtomic(dir_ / "leaf.pem", leaf_pem).ok());
    auto out = RunCommand({"openssl", "verify", "-CAfile", ca.certificate_path().string(),
                           "-purpose", "sslserver", (dir_ / "leaf.pem").string()});
    EXPECT_TRUE(out.ok());
    return out->exit_code == 0 ? "" : out->out + out->err;
  }

  // X509_verify_cert of a leaf against the CA for `host`: 0 (X509_V_OK) or the failure code.
  static int VerifyFor(const LocalCa& ca, X509* leaf, const std::string& host) {
    X509_STORE* store = X509_STORE_new();
    X509_STORE_add_cert(store, FirstCertificate(ca.certificate_pem()).get());
    X509_STORE_CTX* ctx = X509_STORE_CTX_new();
    X509_STORE_CTX_init(ctx, store, leaf, nullptr);
    X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(ctx);
    X509_VERIFY_PARAM_set1_host(param, host.c_str(), host.size());
    X509_VERIFY_PARAM_set_purpose(param, X509_PURPOSE_SSL_SERVER);
    int result = X509_verify_cert(ctx) == 1 ? X509_V_OK : X509_STORE_CTX_get_error(ctx);
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    return result;
  }
};

TEST_F(LocalCaTest, CreatedOnceWithPrivateKeyAndReusedAfterwards) {
  LocalCa first = OpenCa();
  EXPECT_EQ(first.certificate_path(), dir_ / "tls/ca.crt");
  EXPECT_EQ(Mode(dir_ / "tls"), 0700u);
  EXPECT_EQ(Mode(dir_ / "tls/ca.key"), 0600u);
  auto on_disk = ReadFile(first.certificate_path());
  ASSERT_TRUE(on_disk.ok());
  EXPECT_EQ(*on_disk, first.certificate_pem());

  UniqueX509 cert = FirstCertificate(first.certificate_pem());
  char cn[128] = {};
  X509_NAME_get_text_by_NID(X509_get_subject_name(cert.get()), NID_commonName, cn, sizeof(cn));
  EXPECT_STREQ(cn, "vmctl local CA vmctl.localhost");
  auto lifetime = NotAfter(cert.get()) - NotBefore(cert.get());
  EXPECT_GE(lifetime, std::chrono::hours(24 * 3650));
  EXPECT_EQ(X509_check_ca(cert.get()), 1);

  LocalCa second = OpenCa();
  EXPECT_EQ(second.certificate_pem(), first.certificate_pem());
  for (const auto& file : fs::directory_iterator(dir_ / "tls")) {
    EXPECT_EQ(file.path().filename().string().find(".tmp"), std::string::npos) << file.path();
  }
}

TEST_F(LocalCaTest, RefusesToReplaceACaItCannotUse) {
  OpenCa();
  auto other_domain = LocalCa::Open(dir_ / "tls", "other.example");
  ASSERT_FALSE(other_domain.ok());
  EXPECT_EQ(other_domain.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(other_domain.error().message().find("not the CA for other.example"), std::string::npos)
      << other_domain.error().message();

  fs::remove(dir_ / "tls/ca.key");
  auto no_key = LocalCa::Open(dir_ / "tls", kDomain);
  ASSERT_FALSE(no_key.ok());
  EXPECT_NE(no_key.error().message().find("exists without"), std::string::npos);
  EXPECT_TRUE(fs::exists(dir_ / "tls/ca.crt")) << "nothing changed";

  EXPECT_EQ(LocalCa::Open(dir_ / "tls2", "not a domain").error().code(),
            ErrorCode::kInvalidArgument);
}

TEST_F(LocalCaTest, KeyWithoutCertificateGetsOne) {
  LocalCa first = OpenCa();
  fs::remove(dir_ / "tls/ca.crt");
  LocalCa second = OpenCa();
  EXPECT_NE(second.certificate_pem(), first.certificate_pem());
  auto leaf = second.Issue({kDomain});
  ASSERT_TRUE(leaf.ok());
  EXPECT_EQ(OpensslVerify(second, leaf->chain_pem), "");
}

TEST_F(LocalCaTest, LeafVerifiesAndNamesTheDomainAndItsWildcard) {
  LocalCa ca = OpenCa();
  auto issued = ca.Issue({kDomain, "*.vmctl.localhost"});
  ASSERT_TRUE(issued.ok()) << issued.error().message();
  EXPECT_EQ(OpensslVerify(ca, issued->chain_pem), "");

  UniqueX509 leaf = FirstCertificate(issued->chain_pem);
  EXPECT_EQ(DnsNames(leaf.get()), (std::vector<std::string>{kDomain, "*.vmctl.localhost"}));
  EXPECT_EQ(VerifyFor(ca, leaf.get(), kDomain), X509_V_OK);
  EXPECT_EQ(VerifyFor(ca, leaf.get(), "web.vmctl.localhost"), X509_V_OK);
  EXPECT_EQ(VerifyFor(ca, leaf.get(), "a.web.vmctl.localhost"), X509_V_ERR_HOSTNAME_MISMATCH);
  EXPECT_EQ(X509_check_ca(leaf.get()), 0);
  EXPECT_EQ(X509_get_extended_key_usage(leaf.get()), static_cast<uint32_t>(XKU_SSL_SERVER));
  EXPECT_EQ(EVP_PKEY_get_base_id(X509_get0_pubkey(leaf.get())), EVP_PKEY_EC);
  auto lifetime = NotAfter(leaf.get()) - NotBefore(leaf.get());
  EXPECT_EQ(lifetime, LocalCa::kLeafLifetime);
  EXPECT_LT(NotBefore(leaf.get()), std::chrono::system_clock::now());

  auto key = ParsePrivateKey(issued->key_pem);
  ASSERT_TRUE(key.ok());
  EXPECT_EQ(X509_check_private_key(leaf.get(), key->get()), 1);
}

TEST_F(LocalCaTest, NameConstraintsKeepItToTheDomain) {
  LocalCa ca = OpenCa();
  auto foreign = ca.Issue({"bank.example"});
  ASSERT_TRUE(foreign.ok());
  std::string complaint = OpensslVerify(ca, foreign->chain_pem);
  EXPECT_NE(complaint.find("permitted subtree violation"), std::string::npos) << complaint;
  EXPECT_EQ(VerifyFor(ca, FirstCertificate(foreign->chain_pem).get(), "bank.example"),
            X509_V_ERR_PERMITTED_VIOLATION);
}

TEST_F(LocalCaTest, RefusesBadNames) {
  LocalCa ca = OpenCa();
  EXPECT_EQ(ca.Issue({}).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(ca.Issue({"a.b,DNS:evil.example"}).error().code(), ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace vmctl::tls
