#include "acme/certificate.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <filesystem>

#include "acme/certificate_files.h"
#include "base/io.h"
#include "base/process.h"

namespace vmctl::acme {
namespace {

using ::testing::ElementsAre;

TEST(CsrTest, HoldsTheNamesAndVerifiesWithItsKey) {
  auto csr = MakeCsr({"vmctl.localhost", "*.vmctl.localhost"});
  ASSERT_TRUE(csr.ok()) << csr.error().message();
  auto p = reinterpret_cast<const unsigned char*>(csr->csr_der.data());
  X509_REQ* req = d2i_X509_REQ(nullptr, &p, static_cast<long>(csr->csr_der.size()));
  ASSERT_NE(req, nullptr);
  EVP_PKEY* pub = X509_REQ_get0_pubkey(req);
  EXPECT_EQ(X509_REQ_verify(req, pub), 1);
  STACK_OF(X509_EXTENSION)* exts = X509_REQ_get_extensions(req);
  auto* sans =
      static_cast<GENERAL_NAMES*>(X509V3_get_d2i(exts, NID_subject_alt_name, nullptr, nullptr));
  ASSERT_NE(sans, nullptr);
  std::vector<std::string> names;
  for (int i = 0; i < sk_GENERAL_NAME_num(sans); ++i) {
    const ASN1_IA5STRING* s = sk_GENERAL_NAME_value(sans, i)->d.dNSName;
    names.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                       ASN1_STRING_length(s));
  }
  EXPECT_THAT(names, ElementsAre("vmctl.localhost", "*.vmctl.localhost"));
  // The key that comes back is the one the CSR carries.
  BIO* bio = BIO_new_mem_buf(csr->key_pem.data(), static_cast<int>(csr->key_pem.size()));
  EVP_PKEY* key = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
  ASSERT_NE(key, nullptr);
  EXPECT_EQ(EVP_PKEY_eq(key, pub), 1);
  EVP_PKEY_free(key);
  BIO_free(bio);
  GENERAL_NAMES_free(sans);
  sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
  X509_REQ_free(req);
  EXPECT_FALSE(MakeCsr({}).ok());
}

TEST(ChainLeafTest, ReadsValidityAndNames) {
  auto dir = std::filesystem::temp_directory_path() / ("acme-leaf-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  auto run = RunCommandChecked(
      {"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
       "-subj", "/CN=a.test", "-addext", "subjectAltName=DNS:a.test,DNS:*.a.test", "-days", "30",
       "-keyout", (dir / "k.pem").string(), "-out", (dir / "c.pem").string()});
  ASSERT_TRUE(run.ok()) << run.error().message();
  std::string pem = *ReadFile(dir / "c.pem");
  std::filesystem::remove_all(dir);

  auto leaf = ParseChainLeaf(pem + pem);
  ASSERT_TRUE(leaf.ok()) << leaf.error().message();
  EXPECT_EQ(leaf->not_after - leaf->not_before, std::chrono::hours(24 * 30));
  EXPECT_THAT(leaf->dns_names, ElementsAre("a.test", "*.a.test"));

  EXPECT_EQ(ParseChainLeaf("").error().message(), "the certificate chain holds no PEM certificate");
  EXPECT_FALSE(
      ParseChainLeaf(pem + "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").ok());
}

TEST(CertificateFilesTest, SaveLoadAndRefuseAMismatchedKey) {
  auto dir = std::filesystem::temp_directory_path() / ("acme-files-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  auto run =
      RunCommandChecked({"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                         "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=a.test", "-days", "30",
                         "-keyout", (dir / "k.pem").string(), "-out", (dir / "c.pem").string()});
  ASSERT_TRUE(run.ok()) << run.error().message();
  IssuedCertificate cert{*ReadFile(dir / "c.pem"), *ReadFile(dir / "k.pem"), {}, {}};

  EXPECT_FALSE(LoadCertificate(dir / "certs", "vmctl.localhost")->has_value());
  ASSERT_TRUE(SaveCertificate(dir / "certs", "vmctl.localhost", cert).ok());
  struct stat st {};
  ASSERT_EQ(::stat((dir / "certs" / "vmctl.localhost.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto loaded = LoadCertificate(dir / "certs", "vmctl.localhost");
  ASSERT_TRUE(loaded.ok()) << loaded.error().message();
  ASSERT_TRUE(loaded->has_value());
  EXPECT_EQ((*loaded)->chain_pem, cert.chain_pem);
  EXPECT_EQ((*loaded)->not_after - (*loaded)->not_before, std::chrono::hours(24 * 30));

  cert.key_pem = MakeCsr({"x"})->key_pem;
  ASSERT_TRUE(SaveCertificate(dir / "certs", "vmctl.localhost", cert).ok());
  auto mismatched = LoadCertificate(dir / "certs", "vmctl.localhost");
  ASSERT_FALSE(mismatched.ok());
  EXPECT_NE(mismatched.error().message().find("is not the key of"), std::string::npos);
  std::filesystem::remove(dir / "certs" / "vmctl.localhost.crt");
  EXPECT_FALSE(LoadCertificate(dir / "certs", "vmctl.localhost").ok());
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace vmctl::acme
