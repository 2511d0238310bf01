#include "acme/jws.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/pem.h>

#include <algorithm>

#include "acme/openssl_util.h"
#include "base/frame.h"

namespace vmctl::acme {
namespace {

constexpr size_t kCoordinateSize = 32;

struct BnFree {
  void operator()(BIGNUM* b) const { BN_free(b); }
};
using UniqueBn = std::unique_ptr<BIGNUM, BnFree>;

std::string Coordinate(EVP_PKEY* key, const char* param) {
  BIGNUM* raw = nullptr;
  EVP_PKEY_get_bn_param(key, param, &raw);
  UniqueBn bn(raw);
  std::string out(kCoordinateSize, '\0');
  if (bn) BN_bn2binpad(bn.get(), reinterpret_cast<unsigned char*>(out.data()), kCoordinateSize);
  return out;
}

bool IsP256(EVP_PKEY* key) {
  if (EVP_PKEY_get_base_id(key) != EVP_PKEY_EC) return false;
  char group[64];
  size_t len = 0;
  if (!EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, &len)) {
    return false;
  }
  std::string_view name(group, len);
  return name == "prime256v1" || name == "P-256";
}

}  // namespace

std::string Base64Url(std::string_view data) {
  std::string out = Base64Encode(data);
  while (!out.empty() && out.back() == '=') out.pop_back();
  std::replace(out.begin(), out.end(), '+', '-');
  std::replace(out.begin(), out.end(), '/', '_');
  return out;
}

Result<AccountKey> AccountKey::Generate() {
  EVP_PKEY* key = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
  if (key == nullptr) return Internal("generating a P-256 key: " + OpenSslError());
  return AccountKey(key);
}

Result<AccountKey> AccountKey::FromPem(std::string_view pem) {
  UniqueBio bio = MemoryBio(pem);
  EVP_PKEY* key = PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr);
  if (key == nullptr) return InvalidArgument("not a PEM private key: " + OpenSslError());
  AccountKey result(key);
  if (!IsP256(key)) return InvalidArgument("the account key is not an EC P-256 key");
  return result;
}

std::string AccountKey::ToPem() const {
  UniqueBio bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_PrivateKey(bio.get(), key_.get(), nullptr, nullptr, 0, nullptr, nullptr);
  return BioContents(bio.get());
}

nlohmann::json AccountKey::Jwk() const {
  return {{"crv", "P-256"},
          {"kty", "EC"},
          {"x", Base64Url(Coordinate(key_.get(), OSSL_PKEY_PARAM_EC_PUB_X))},
          {"y", Base64Url(Coordinate(key_.get(), OSSL_PKEY_PARAM_EC_PUB_Y))}};
}

std::string AccountKey::Thumbprint() const {
  // nlohmann::json keeps object members sorted and dump() adds no whitespace: exactly RFC 7638's
  // canonical form for the four required EC members.
  return Base64Url(Sha256(Jwk().dump()));
}

Result<std::string> AccountKey::Sign(std::string_view data) const {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  size_t len = 0;
  auto in = reinterpret_cast<const unsigned char*>(data.data());
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key_.get()) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &len, in, data.size()) != 1) {
    return Internal("ES256 signing: " + OpenSslError());
  }
  std::string der(len, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(der.data()), &len, in,
                     data.size()) != 1) {
    return Internal("ES256 signing: " + OpenSslError());
  }
  der.resize(len);
  return EcdsaDerToRaw(der, kCoordinateSize);
}

Result<std::string> EcdsaDerToRaw(std::string_view der, size_t width) {
  auto p = reinterpret_cast<const unsigned char*>(der.data());
  std::unique_ptr<ECDSA_SIG, decltype(&ECDSA_SIG_free)> sig(
      d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size())), ECDSA_SIG_free);
  if (!sig) {
    OpenSslError();
    return InvalidArgument("not a DER ECDSA signature");
  }
  if (p != reinterpret_cast<const unsigned char*>(der.data()) + der.size()) {
    return InvalidArgument("trailing bytes after the DER ECDSA signature");
  }
  const BIGNUM* r = nullptr;
  const BIGNUM* s = nullptr;
  ECDSA_SIG_get0(sig.get(), &r, &s);
  std::string out(2 * width, '\0');
  auto buf = reinterpret_cast<unsigned char*>(out.data());
  if (BN_bn2binpad(r, buf, static_cast<int>(width)) < 0 ||
      BN_bn2binpad(s, buf + width, static_cast<int>(width)) < 0) {
    return InvalidArgument("ECDSA signature integer wider than " + std::to_string(width) +
                           " bytes");
  }
  return out;
}

std::string ProtectedHeaderJson(const JwsHeader& header, const nlohmann::json& jwk) {
  nlohmann::json h = {{"alg", "ES256"}, {"nonce", header.nonce}, {"url", header.url}};
  if (header.kid) {
    h["kid"] = *header.kid;
  } else {
    h["jwk"] = jwk;
  }
  return h.dump();
}

Result<std::string> SignJws(const AccountKey& key, const JwsHeader& header,
                            std::string_view payload) {
  std::string protected64 = Base64Url(ProtectedHeaderJson(header, key.Jwk()));
  std::string payload64 = Base64Url(payload);
  VMCTL_ASSIGN_OR_RETURN(std::string signature, key.Sign(protected64 + "." + payload64));
  nlohmann::json jws = {
      {"protected", protected64}, {"payload", payload64}, {"signature", Base64Url(signature)}};
  return jws.dump();
}

std::string KeyAuthorization(std::string_view token, std::string_view thumbprint) {
  return std::string(token) + "." + std::string(thumbprint);
}

std::string Dns01TxtValue(std::string_view key_authorization) {
  return Base64Url(Sha256(key_authorization));
}

}  // namespace vmctl::acme
