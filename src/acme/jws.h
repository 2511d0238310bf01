#ifndef VMCTL_ACME_JWS_H_
#define VMCTL_ACME_JWS_H_

#include <openssl/evp.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "base/result.h"

namespace vmctl::acme {

// base64url without padding (RFC 7515 section 2), the encoding of every binary ACME field.
std::string Base64Url(std::string_view data);

// An ES256 (ECDSA P-256 with SHA-256) account key. Movable value owning its EVP_PKEY;
// thread-compatible (signing from two threads at once needs two keys or a lock).
class AccountKey {
 public:
  static Result<AccountKey> Generate();
  // A PEM private key (PKCS#8 or SEC1) that must be a P-256 EC key.
  static Result<AccountKey> FromPem(std::string_view pem);

  // PKCS#8 PEM, the form stored under STATE/acme/account.key.
  std::string ToPem() const;
  // The public JWK (RFC 7517): {"crv":"P-256","kty":"EC","x":...,"y":...}.
  nlohmann::json Jwk() const;
  // RFC 7638 thumbprint: base64url(SHA-256(the JWK's required members in lexicographic order)).
  std::string Thumbprint() const;
  // The JWS ES256 signature of `data`: r||s, 32 bytes each (RFC 7518 section 3.4).
  Result<std::string> Sign(std::string_view data) const;

  EVP_PKEY* pkey() const { return key_.get(); }

 private:
  struct Free {
    void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
  };
  explicit AccountKey(EVP_PKEY* key) : key_(key) {}
  std::unique_ptr<EVP_PKEY, Free> key_;
};

// A DER ECDSA-Sig-Value (SEQUENCE of two INTEGERs, what OpenSSL produces) as the fixed-width
// r||s form JWS wants; each integer is left-padded to `width` bytes. Pure; bad DER or an integer
// wider than `width` is kInvalidArgument.
Result<std::string> EcdsaDerToRaw(std::string_view der, size_t width = 32);

// The protected header of one ACME request (RFC 8555 section 6.2): the account's URL as "kid"
// once it has one, else the public key as "jwk" (newAccount).
struct JwsHeader {
  std::string nonce;
  std::string url;
  std::optional<std::string> kid;
};

// The protected header's JSON text; keys in lexicographic order so it is reproducible. Pure.
std::string ProtectedHeaderJson(const JwsHeader& header, const nlohmann::json& jwk);

// The flattened JSON serialization {"protected","payload","signature"} of `payload` (a JSON
// text, or "" for POST-as-GET) under `key`.
Result<std::string> SignJws(const AccountKey& key, const JwsHeader& header,
                            std::string_view payload);

// RFC 8555 section 8.1: token "." thumbprint.
std::string KeyAuthorization(std::string_view token, std::string_view thumbprint);
// RFC 8555 section 8.4: the TXT record value, base64url(SHA-256(key authorization)).
std::string Dns01TxtValue(std::string_view key_authorization);

}  // namespace vmctl::acme

#endif  // VMCTL_ACME_JWS_H_
