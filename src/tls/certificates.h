#ifndef VMCTL_TLS_CERTIFICATES_H_
#define VMCTL_TLS_CERTIFICATES_H_

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

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

// Keeps the local CA's certificate for DOMAIN fresh while the daemon runs: its own thread calls
// RenewFromLocalCa every `interval` and logs what it did or why it failed (the old certificate is
// served meanwhile and the next check tries again). Stops and joins on destruction; `ca` and
// `store` must outlive it.
class LocalRenewal {
 public:
  LocalRenewal(const LocalCa& ca, CertStore& store, std::string domain,
               std::chrono::milliseconds interval = std::chrono::hours(1));
  ~LocalRenewal();
  LocalRenewal(const LocalRenewal&) = delete;
  LocalRenewal& operator=(const LocalRenewal&) = delete;

 private:
  std::mutex mu_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace vmctl::tls

#endif  // VMCTL_TLS_CERTIFICATES_H_
