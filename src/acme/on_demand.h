#ifndef VMCTL_ACME_ON_DEMAND_H_
#define VMCTL_ACME_ON_DEMAND_H_

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "acme/certificate.h"
#include "acme/client.h"
#include "acme/renewal.h"
#include "base/result.h"
#include "tls/cert_store.h"
#include "tls/certificate_source.h"

namespace vmctl::acme {

struct OnDemandOptions {
  // DOMAIN: it and its subdomains are never custom domains (their certificate is the renewer's).
  std::string domain;
  // Orders for new certificates (not renewals) one VM may start per window, failed ones too: a
  // VM cannot spend the ACME account's rate limits by cycling through domains.
  int max_new_per_vm = 5;
  std::chrono::seconds window = std::chrono::hours(1);
  // After a failed order for a domain, nothing is tried for it until the backoff has passed.
  BackoffPolicy backoff;
  // How often served custom-domain certificates are checked: renewed when due, removed when
  // their domain is no longer registered (`domain rm`).
  std::chrono::milliseconds check_interval = std::chrono::minutes(1);
  // Names waiting for their first order at most; more are refused (a flood of invented SNI
  // names costs a bounded queue).
  size_t max_queued = 64;
  Progress log;  // one line per event (issued, refused, removed, failed); may be empty
};

// Certificates for custom domains (`domain add`), obtained on first use: a TLS handshake for a
// registered custom domain that has no certificate yet (AwaitCertificate) starts one order,
// whose certificate is installed in `store` (STATE/tls/certs, 0600, atomic; loaded again at the
// next start by CertStore::Open). Concurrent handshakes for one name share its order. Served
// custom-domain certificates are renewed when a third of their lifetime is left, and removed
// once their domain is no longer registered.
//
// Ownership: borrows `store` and `clock`, which must outlive it. Threading: ForServerName and
// AwaitCertificate never block (the proxy's event loops call them); one worker thread, started
// by Start and joined by Stop (and the destructor), runs `vm_of` and `issue`, one order at a
// time. Errors: nothing is returned to callers; a refused or failed name gets `ready` called
// with no certificate served, and a line in `log`.
class OnDemandCertificates final : public tls::CertificateSource {
 public:
  // Orders a certificate for one domain (blocks for the whole order, e.g. AcmeClient::Issue
  // with HTTP-01).
  using Issue = std::function<Result<IssuedCertificate>(const std::string& domain)>;
  // The id of the VM that has the custom domain; nullopt when it is not registered.
  using VmOf = std::function<Result<std::optional<std::string>>(const std::string& domain)>;

  OnDemandCertificates(OnDemandOptions options, tls::CertStore& store, Issue issue, VmOf vm_of,
                       Clock& clock);
  ~OnDemandCertificates() override;
  OnDemandCertificates(const OnDemandCertificates&) = delete;
  OnDemandCertificates& operator=(const OnDemandCertificates&) = delete;

  void Start();
  void Stop();
  // Re-reads the clock and checks the served certificates now (after a test moved the clock).
  void Poke();

  std::shared_ptr<SSL_CTX> ForServerName(std::string_view server_name) override;
  bool AwaitCertificate(std::string_view server_name, std::function<void()> ready) override;

 private:
  struct Pending {
    std::vector<std::function<void()>> waiters;
  };
  struct Backoff {
    int failures = 0;
    SystemTime next_attempt;
  };

  bool IsCustom(std::string_view name) const;
  void Loop();
  // The first order for `name`, if it is registered and its VM may have another.
  void Guarded(std::string_view what, const std::function<void()>& step);
  void Obtain(const std::string& name);
  // Renewals and removals of the served custom-domain certificates.
  void Check();
  // Orders and installs; a failure sets the name's backoff.
  void Order(const std::string& name);
  // Counts an order for `vm` in its window; false when the window is full.
  bool TakeOrderSlot(const std::string& vm, const std::string& name);
  void Log(const std::string& line) const;

  const OnDemandOptions options_;
  tls::CertStore& store_;
  const Issue issue_;
  const VmOf vm_of_;
  Clock& clock_;

  mutable std::mutex mu_;
  std::condition_variable wake_;
  bool stop_ = false;
  bool poked_ = false;
  std::deque<std::string> queue_;                         // names waiting, first come first
  std::map<std::string, Pending, std::less<>> pending_;   // queued or being ordered
  std::map<std::string, Backoff, std::less<>> backoff_;   // names whose last order failed
  std::map<std::string, std::deque<SystemTime>> orders_;  // per VM: order times in the window
  std::thread thread_;
};

}  // namespace vmctl::acme

#endif  // VMCTL_ACME_ON_DEMAND_H_
