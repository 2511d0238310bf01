#include "tls/openssl.h"

#include <gtest/gtest.h>
#include <openssl/err.h>

#include "tls/local_ca.h"
#include "tls/names.h"
#include "tls/test_util.h"

namespace vmctl::tls {
namespace {

TEST(Names, AcceptsHostNamesAndOneLeadingWildcard) {
  for (const char* ok : {"vmctl.localhost", "*.vmctl.localhost", "a-b.c0.example", "x.y"}) {
    EXPECT_TRUE(ValidateCertificateName(ok).ok()) << ok;
  }
  for (const char* bad : {"", "localhost", "*.localhost", "A.example", "a..b", ".a.b", "a.b.",
                          "-a.b", "a-.b", "a.*.b", "**.a.b", "a_b.c", "a b.c", "a.b,DNS:evil.c"}) {
    auto r = ValidateCertificateName(bad);
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
    }
  }
  EXPECT_FALSE(ValidateCertificateName(std::string(64, 'a') + ".b").ok());
  EXPECT_FALSE(ValidateCertificateName(std::string(250, 'a') + ".b.c").ok());
}

TEST(Names, WildcardCoversExactlyOneLabel) {
  EXPECT_EQ(WildcardFor("web.vmctl.localhost"), "*.vmctl.localhost");
  EXPECT_EQ(WildcardFor("a.b"), "*.b");
  EXPECT_EQ(WildcardFor("localhost"), "");
  EXPECT_EQ(WildcardFor("a."), "");
  EXPECT_EQ(FileStem("*.vmctl.localhost"), "_.vmctl.localhost");
  EXPECT_EQ(FileStem("example.com"), "example.com");
}

TEST(OpenSsl, PrivateKeyRoundTrips) {
  auto key = GenerateP256Key();
  ASSERT_TRUE(key.ok());
  auto pem = PrivateKeyToPem(key->get());
  ASSERT_TRUE(pem.ok());
  EXPECT_TRUE(pem->starts_with("-----BEGIN PRIVATE KEY-----"));
  auto back = ParsePrivateKey(*pem);
  ASSERT_TRUE(back.ok()) << back.error().message();
  EXPECT_EQ(EVP_PKEY_eq(key->get(), back->get()), 1);
  EXPECT_EQ(ParsePrivateKey("garbage").error().code(), ErrorCode::kInvalidArgument);
}

class ChainTest : public TlsTest {
 protected:
  std::string Leaf() {
    auto ca = LocalCa::Open(dir_, "vmctl.localhost");
    EXPECT_TRUE(ca.ok());
    auto issued = ca->Issue({"vmctl.localhost"});
    EXPECT_TRUE(issued.ok());
    return issued->chain_pem;
  }
};

TEST_F(ChainTest, ParsesBlocksInOrderAndSkipsTextBetween) {
  std::string leaf = Leaf();
  auto ca_pem = ReadFile(dir_ / "ca.crt");
  ASSERT_TRUE(ca_pem.ok());
  auto chain = ParseCertificateChain("leaf:\n" + leaf + "issuer:\n" + *ca_pem);
  ASSERT_TRUE(chain.ok()) << chain.error().message();
  ASSERT_EQ(chain->size(), 2u);
  EXPECT_EQ(DnsNames((*chain)[0].get()), std::vector<std::string>{"vmctl.localhost"});
  auto again = ChainToPem(*chain);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, leaf + *ca_pem);
}

TEST_F(ChainTest, RefusesEmptyGarbageTruncatedAndTooLong) {
  std::string leaf = Leaf();
  for (std::string bad :
       {std::string(), std::string("hello"), leaf.substr(0, leaf.size() / 2),
        std::string("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")}) {
    auto r = ParseCertificateChain(bad);
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
    }
  }
  std::string longest;
  for (size_t i = 0; i < kMaxChainLength; ++i) longest += leaf;
  EXPECT_TRUE(ParseCertificateChain(longest).ok());
  auto r = ParseCertificateChain(longest + leaf);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("more than 8"), std::string::npos) << r.error().message();
}

TEST(OpenSsl, ErrorQueueBecomesTheMessage) {
  ASSERT_FALSE(
      ParsePrivateKey("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").ok());
  EXPECT_EQ(ERR_peek_error(), 0u) << "the queue was drained into the error";
}

}  // namespace
}  // namespace vmctl::tls
