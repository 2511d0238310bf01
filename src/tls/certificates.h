#ifndef VMCTL_TLS_CERTIFICATES_H_
#define VMCTL_TLS_CERTIFICATES_H_

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string_view>

#include "base/result.h"
#include "tls/cert_store.h"
#include "tls/local_ca.h"

namespace vmctl::tls {

// The daemon's certificates under STATE/tls: the store (STATE/tls/certs) and, when no ACME server
// is configured, the local CA (STATE/tls/ca.{key,crt}) that issues the domain's certificate.
struct Certificates {
  std::unique_ptr<CertStore> store;
  std::optional<LocalCa> local_ca;
};

// Opens both; with `use_local_ca`, also makes sure DOMAIN and *.DOMAIN have a certificate that is
// not yet due for renewal (RenewFromLocalCa).
Result<Certificates> OpenCertificates(const std::filesystem::path& state_dir,
                                      std::string_view domain, bool use_local_ca);

// Issues and installs a new certificate for DOMAIN and *.DOMAIN from the local CA when the store
// has none or the one it has is due at `now`. Returns whether it issued one.
Result<bool> RenewFromLocalCa(const LocalCa& ca, CertStore& store, std::string_view domain,
                              std::chrono::system_clock::time_point now);

}  // namespace vmctl::tls

#endif  // VMCTL_TLS_CERTIFICATES_H_
