#include "tls/certificates.h"

#include <spdlog/spdlog.h>

#include <string>
#include <vector>

namespace vmctl::tls {

Result<Certificates> OpenCertificates(const std::filesystem::path& state_dir,
                                      std::string_view domain, bool use_local_ca) {
  std::filesystem::path dir = state_dir / "tls";
  Certificates out;
  VMCTL_ASSIGN_OR_RETURN(out.store, CertStore::Open(dir / "certs", std::string(domain)));
  if (use_local_ca) {
    VMCTL_ASSIGN_OR_RETURN(LocalCa ca, LocalCa::Open(dir, domain));
    VMCTL_TRY(RenewFromLocalCa(ca, *out.store, domain, std::chrono::system_clock::now()));
    out.local_ca.emplace(std::move(ca));
  }
  return out;
}

Result<bool> RenewFromLocalCa(const LocalCa& ca, CertStore& store, std::string_view domain,
                              std::chrono::system_clock::time_point now) {
  std::string apex(domain);
  std::string wildcard = "*." + apex;
  auto apex_info = store.Lookup(apex);
  // Any one-label name below the domain is served from its wildcard.
  auto wildcard_info = store.Lookup("a." + apex);
  if (apex_info && wildcard_info && !apex_info->NeedsRenewal(now) &&
      !wildcard_info->NeedsRenewal(now)) {
    return false;
  }
  std::vector<std::string> names = {apex, wildcard};
  VMCTL_ASSIGN_OR_RETURN(IssuedCertificate issued, ca.Issue(names));
  VMCTL_TRY(store.Install(names, issued.chain_pem, issued.key_pem));
  return true;
}

LocalRenewal::LocalRenewal(const LocalCa& ca, CertStore& store, std::string domain,
                           std::chrono::milliseconds interval) {
  thread_ = std::thread([this, &ca, &store, domain = std::move(domain), interval] {
    std::unique_lock lock(mu_);
    while (!wake_.wait_for(lock, interval, [this] { return stopping_; })) {
      lock.unlock();
      auto renewed = RenewFromLocalCa(ca, store, domain, std::chrono::system_clock::now());
      if (!renewed.ok()) {
        spdlog::error("tls: renewing the certificate for {}: {}", domain,
                      renewed.error().message());
      } else if (*renewed) {
        spdlog::info("tls: renewed the certificate for {} from the local CA", domain);
      }
      lock.lock();
    }
  });
}

LocalRenewal::~LocalRenewal() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

}  // namespace vmctl::tls
