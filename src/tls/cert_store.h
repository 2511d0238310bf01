#ifndef VMCTL_TLS_CERT_STORE_H_
#define VMCTL_TLS_CERT_STORE_H_

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "tls/certificate_source.h"
#include "tls/openssl.h"

namespace vmctl::tls {

// What renewal needs to know about one served certificate.
struct CertificateInfo {
  std::vector<std::string> names;  // its subjectAltName DNS names, as served
  std::chrono::system_clock::time_point not_before;
  std::chrono::system_clock::time_point not_after;

  // Less than a third of the certificate's lifetime is left (or it has expired).
  bool NeedsRenewal(std::chrono::system_clock::time_point now) const;
};

// The certificates the HTTPS front end serves, kept in DIR (STATE/tls/certs) as NAME.crt (PEM
// chain, leaf first) and NAME.key (PEM key), both 0600, and served by the names in their
// subjectAltName: an exact name first, then a single-label wildcard ("*.d" covers "a.d", not
// "a.b.d" nor "d"). ForServerName("") serves the default name (the domain).
//
// Threading: ForServerName only copies a shared_ptr under a short lock, so it never waits for the
// disk; Install serializes with other Installs and swaps the new context in once it is stored.
class CertStore final : public CertificateSource {
 public:
  // Loads every NAME.crt with its NAME.key from `dir` (created 0700). One that is unreadable,
  // malformed, expired or does not match its key is skipped and described in problems(); leftover
  // temp files of an interrupted Install are removed. Errors only if `dir` is unusable.
  static Result<std::unique_ptr<CertStore>> Open(std::filesystem::path dir,
                                                 std::string default_name);

  std::shared_ptr<SSL_CTX> ForServerName(std::string_view server_name) override;

  // Stores and serves a certificate covering `names` (each must be in the leaf's subjectAltName).
  // Checked before anything is written: the chain parses, the key matches, the leaf has not
  // expired (kInvalidArgument otherwise). The files are named after names[0] and replaced
  // atomically; from then on every name of the leaf is served from it.
  Result<void> Install(const std::vector<std::string>& names, std::string_view chain_pem,
                       std::string_view key_pem);

  // Stops serving the certificate installed under `first_name` (Install's names[0]), for all its
  // names, and deletes its files. kNotFound when none is.
  Result<void> Remove(std::string_view first_name);

  // Every served certificate, once each.
  std::vector<CertificateInfo> Certificates() const;

  // The certificate ForServerName(server_name) would serve, if any.
  std::optional<CertificateInfo> Lookup(std::string_view server_name) const;
  std::optional<std::chrono::system_clock::time_point> NotAfter(std::string_view server_name) const;
  // Each served certificate whose renewal is due at `now`.
  std::vector<CertificateInfo> NeedingRenewal(std::chrono::system_clock::time_point now) const;

  // One line per file Open skipped, for the daemon's log.
  const std::vector<std::string>& problems() const { return problems_; }

 private:
  struct Entry {
    SharedSslCtx ctx;
    CertificateInfo info;
  };

  CertStore(std::filesystem::path dir, std::string default_name)
      : dir_(std::move(dir)), default_name_(std::move(default_name)) {}

  // Checks a certificate and builds its context, without registering it.
  static Result<std::shared_ptr<const Entry>> Prepare(std::string_view chain_pem,
                                                      std::string_view key_pem);
  void LoadFile(const std::filesystem::path& crt);
  std::shared_ptr<const Entry> Find(std::string_view server_name) const;
  void Register(const std::shared_ptr<const Entry>& entry);

  const std::filesystem::path dir_;
  const std::string default_name_;
  std::vector<std::string> problems_;  // written by Open only
  std::mutex install_mu_;              // serializes Install's file writes
  mutable std::mutex mu_;              // guards by_name_; held only to copy or swap pointers
  std::map<std::string, std::shared_ptr<const Entry>, std::less<>> by_name_;
};

}  // namespace vmctl::tls

#endif  // VMCTL_TLS_CERT_STORE_H_
