#include "tls/certificates.h"

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

}  // namespace vmctl::tls
