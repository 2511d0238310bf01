#ifndef VMCTL_TLS_LOCAL_CA_H_
#define VMCTL_TLS_LOCAL_CA_H_

#include <chrono>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "tls/openssl.h"

namespace vmctl::tls {

// A certificate (PEM chain, leaf first) and its private key (PEM), as CertStore::Install takes.
struct IssuedCertificate {
  std::string chain_pem;
  std::string key_pem;
};

// The certificate authority the daemon uses when no ACME server is configured: a P-256 key
// (ca.key, 0600) and a self-signed certificate (ca.crt, valid 10 years, "vmctl local CA DOMAIN",
// name-constrained to DOMAIN and its subdomains, so trusting it vouches for nothing else). Users
// trust ca.crt once; the leaves it issues then verify.
//
// Thread-safe after Open (issuing only reads the key and certificate).
class LocalCa {
 public:
  static constexpr std::chrono::hours kCaLifetime{24 * 3653};
  static constexpr std::chrono::hours kLeafLifetime{24 * 90};

  // Loads the CA from `dir` (created 0700 if missing), or creates it there at the first call.
  // A CA key without its certificate (or the reverse, or a pair that does not match) is an error
  // rather than silently replaced: whoever trusts the old CA would stop trusting this daemon.
  static Result<LocalCa> Open(const std::filesystem::path& dir, std::string_view domain);

  const std::filesystem::path& certificate_path() const { return certificate_path_; }
  // The CA certificate in PEM, what users add to their trust stores.
  const std::string& certificate_pem() const { return certificate_pem_; }

  // A new leaf with a fresh P-256 key for `names` (subjectAltName DNS entries, e.g. DOMAIN and
  // *.DOMAIN; the first is the subject's CN), serverAuth only, valid from a few minutes ago (clock
  // skew) for `lifetime`.
  Result<IssuedCertificate> Issue(const std::vector<std::string>& names,
                                  std::chrono::seconds lifetime = kLeafLifetime) const;

 private:
  LocalCa(UniquePkey key, UniqueX509 cert, std::filesystem::path certificate_path,
          std::string certificate_pem)
      : key_(std::move(key)),
        cert_(std::move(cert)),
        certificate_path_(std::move(certificate_path)),
        certificate_pem_(std::move(certificate_pem)) {}

  UniquePkey key_;
  UniqueX509 cert_;
  std::filesystem::path certificate_path_;
  std::string certificate_pem_;
};

}  // namespace vmctl::tls

#endif  // VMCTL_TLS_LOCAL_CA_H_
