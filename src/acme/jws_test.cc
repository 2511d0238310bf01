#include "acme/jws.h"

#include <gtest/gtest.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "base/frame.h"

namespace vmctl::acme {
namespace {

// Generated with `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`; the JWK,
// thumbprint and TXT value below were computed from its public point with Python's hashlib.
constexpr std::string_view kKeyPem = R"(-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQghRuZDkclnnFsKKd6
KIU3N0XimfhhN61TGYS+a2he4u6hRANCAARtvoyfXyYh/DhlpAqmoDpgZGrWxECA
cJhLZ7TY7pbPfhU/UUDf6YLI9UQR/XRvegAsNsXhs7FyQzl0EfanNH2M
-----END PRIVATE KEY-----
)";

std::string FromBase64Url(std::string s) {
  for (char& c : s) c = c == '-' ? '+' : c == '_' ? '/' : c;
  while (s.size() % 4) s += '=';
  return *Base64Decode(s);
}

bool VerifyRaw(const AccountKey& key, std::string_view data, std::string_view raw) {
  ECDSA_SIG* sig = ECDSA_SIG_new();
  auto p = reinterpret_cast<const unsigned char*>(raw.data());
  ECDSA_SIG_set0(sig, BN_bin2bn(p, 32, nullptr), BN_bin2bn(p + 32, 32, nullptr));
  unsigned char* der = nullptr;
  int len = i2d_ECDSA_SIG(sig, &der);
  ECDSA_SIG_free(sig);
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestVerifyInit(ctx, nullptr, EVP_sha256(), nullptr, key.pkey());
  int ok = EVP_DigestVerify(ctx, der, static_cast<size_t>(len),
                            reinterpret_cast<const unsigned char*>(data.data()), data.size());
  EVP_MD_CTX_free(ctx);
  OPENSSL_free(der);
  return ok == 1;
}

TEST(Base64UrlTest, NoPaddingAndUrlAlphabet) {
  EXPECT_EQ(Base64Url(""), "");
  EXPECT_EQ(Base64Url("f"), "Zg");
  EXPECT_EQ(Base64Url("fo"), "Zm8");
  EXPECT_EQ(Base64Url("foo"), "Zm9v");
  EXPECT_EQ(Base64Url("\xfb\xff\xbf"), "-_-_");
}

TEST(AccountKeyTest, JwkAndThumbprintGolden) {
  auto key = AccountKey::FromPem(kKeyPem);
  ASSERT_TRUE(key.ok()) << key.error().message();
  EXPECT_EQ(key->Jwk().dump(),
            R"({"crv":"P-256","kty":"EC","x":"bb6Mn18mIfw4ZaQKpqA6YGRq1sRAgHCYS2e02O6Wz34",)"
            R"("y":"FT9RQN_pgsj1RBH9dG96ACw2xeGzsXJDOXQR9qc0fYw"})");
  EXPECT_EQ(key->Thumbprint(), "aDCo7akPZnh11j4s0rUDjyWStClYl6wQA5YhyUtdOok");
  std::string ka = KeyAuthorization("tok123", key->Thumbprint());
  EXPECT_EQ(ka, "tok123.aDCo7akPZnh11j4s0rUDjyWStClYl6wQA5YhyUtdOok");
  EXPECT_EQ(Dns01TxtValue(ka), "IOnoAKPrnMRUUbVIaq9fdEHIw6TqA1WZQKRaoOKFXJE");
}

TEST(AccountKeyTest, PemRoundTripKeepsTheKey) {
  auto key = AccountKey::Generate();
  ASSERT_TRUE(key.ok());
  auto again = AccountKey::FromPem(key->ToPem());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(key->Thumbprint(), again->Thumbprint());
}

TEST(AccountKeyTest, RejectsOtherKeys) {
  EXPECT_FALSE(AccountKey::FromPem("garbage").ok());
  EVP_PKEY* rsa = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{2048});
  ASSERT_NE(rsa, nullptr);
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, rsa, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  auto r = AccountKey::FromPem(std::string_view(data, static_cast<size_t>(n)));
  BIO_free(bio);
  EVP_PKEY_free(rsa);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message(), "the account key is not an EC P-256 key");
}

TEST(EcdsaDerToRawTest, PadsAndStripsIntegers) {
  // SEQUENCE { INTEGER 0x01, INTEGER 0x00FF (the 0 keeps it positive) }
  auto raw = EcdsaDerToRaw(std::string("\x30\x07\x02\x01\x01\x02\x02\x00\xff", 9), 4);
  ASSERT_TRUE(raw.ok()) << raw.error().message();
  EXPECT_EQ(*raw, std::string("\0\0\0\x01\0\0\0\xff", 8));
  EXPECT_FALSE(EcdsaDerToRaw("\x30\x03\x02\x01", 4).ok());
  EXPECT_FALSE(EcdsaDerToRaw(std::string("\x30\x06\x02\x01\x01\x02\x01\x01\x00", 9), 4).ok());
  // An integer wider than the coordinate.
  EXPECT_FALSE(EcdsaDerToRaw(std::string("\x30\x08\x02\x01\x01\x02\x03\x01\x02\x03", 10), 2).ok());
}

TEST(JwsTest, ProtectedHeaderWithJwkOrKid) {
  auto key = *AccountKey::FromPem(kKeyPem);
  EXPECT_EQ(ProtectedHeaderJson({"n1", "https://ca/new-acct", std::nullopt}, key.Jwk()),
            R"({"alg":"ES256","jwk":)" + key.Jwk().dump() +
                R"(,"nonce":"n1","url":"https://ca/new-acct"})");
  EXPECT_EQ(ProtectedHeaderJson({"n2", "https://ca/order", "https://ca/acct/1"}, key.Jwk()),
            R"({"alg":"ES256","kid":"https://ca/acct/1","nonce":"n2","url":"https://ca/order"})");
}

TEST(JwsTest, SignatureVerifiesOverProtectedDotPayload) {
  auto key = *AccountKey::FromPem(kKeyPem);
  auto jws = SignJws(key, {"nonce", "https://ca/x", "https://ca/acct/1"}, R"({"a":1})");
  ASSERT_TRUE(jws.ok());
  auto doc = nlohmann::json::parse(*jws);
  ASSERT_EQ(doc.size(), 3u);
  EXPECT_EQ(FromBase64Url(doc["payload"]), R"({"a":1})");
  EXPECT_EQ(FromBase64Url(doc["protected"]),
            R"({"alg":"ES256","kid":"https://ca/acct/1","nonce":"nonce","url":"https://ca/x"})");
  std::string signature = FromBase64Url(doc["signature"]);
  ASSERT_EQ(signature.size(), 64u);
  std::string input = doc["protected"].get<std::string>() + "." + doc["payload"].get<std::string>();
  EXPECT_TRUE(VerifyRaw(key, input, signature));
  EXPECT_FALSE(VerifyRaw(key, input + "x", signature));
}

TEST(JwsTest, PostAsGetHasEmptyPayload) {
  auto key = *AccountKey::FromPem(kKeyPem);
  auto doc = nlohmann::json::parse(*SignJws(key, {"n", "https://ca/x", "k"}, ""));
  EXPECT_EQ(doc["payload"], "");
}

}  // namespace
}  // namespace vmctl::acme
