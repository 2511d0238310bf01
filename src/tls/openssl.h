#ifndef VMCTL_TLS_OPENSSL_H_
#define VMCTL_TLS_OPENSSL_H_

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

// Owning handles and the few OpenSSL 3 operations vmctl needs, with failures as Result values
// carrying OpenSSL's own reasons. Pure functions (no I/O); thread-safe as OpenSSL 3 is.
namespace vmctl::tls {

struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct X509Free {
  void operator()(X509* p) const { X509_free(p); }
};
struct X509ReqFree {
  void operator()(X509_REQ* p) const { X509_REQ_free(p); }
};
struct BioFree {
  void operator()(BIO* p) const { BIO_free_all(p); }
};
using UniquePkey = std::unique_ptr<EVP_PKEY, PkeyFree>;
using UniqueX509 = std::unique_ptr<X509, X509Free>;
using UniqueX509Req = std::unique_ptr<X509_REQ, X509ReqFree>;
using UniqueBio = std::unique_ptr<BIO, BioFree>;
// Shared: handshakes in flight keep a context alive while a renewal swaps in its successor.
using SharedSslCtx = std::shared_ptr<SSL_CTX>;

// Takes ownership of a new context (null stays null).
SharedSslCtx AdoptSslCtx(SSL_CTX* ctx);

// Drains this thread's OpenSSL error queue into one error: "what: reason; reason".
Error OpenSslError(std::string_view what, ErrorCode code = ErrorCode::kInternal);

// A fresh ECDSA P-256 key.
Result<UniquePkey> GenerateP256Key();

// PEM ("PRIVATE KEY", PKCS#8, unencrypted) of a private key, and back. The parser accepts any
// unencrypted PEM private key; anything else is kInvalidArgument.
Result<std::string> PrivateKeyToPem(EVP_PKEY* key);
Result<UniquePkey> ParsePrivateKey(std::string_view pem);

// PEM of one certificate, and of a chain (leaf first), and back. The chain parser reads the PEM
// "CERTIFICATE" blocks in order (at most kMaxChainLength), skipping text and other blocks between
// them, and is pure (fuzzed); no certificate, or a malformed one, is kInvalidArgument.
inline constexpr size_t kMaxChainLength = 8;
Result<std::string> CertificateToPem(X509* cert);
Result<std::string> ChainToPem(const std::vector<UniqueX509>& chain);
Result<std::vector<UniqueX509>> ParseCertificateChain(std::string_view pem);

// The DNS names in the certificate's subjectAltName, lowercased, in order.
std::vector<std::string> DnsNames(X509* cert);

// Validity bounds of a certificate.
std::chrono::system_clock::time_point NotBefore(X509* cert);
std::chrono::system_clock::time_point NotAfter(X509* cert);

}  // namespace vmctl::tls

#endif  // VMCTL_TLS_OPENSSL_H_
