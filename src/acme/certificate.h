#ifndef VMCTL_ACME_CERTIFICATE_H_
#define VMCTL_ACME_CERTIFICATE_H_

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace vmctl::acme {

// A certificate signing request for `names` (the first is also the subject CN) with a new P-256
// key: the DER CSR for the finalize request and the key as PKCS#8 PEM. Names are not checked
// here (the ACME server judges them); an empty list is kInvalidArgument.
struct CsrAndKey {
  std::string csr_der;
  std::string key_pem;
};
Result<CsrAndKey> MakeCsr(const std::vector<std::string>& names);

// What the daemon installs: the PEM chain as the server sent it (leaf first), the key, and the
// leaf's validity, which drives renewal.
struct IssuedCertificate {
  std::string chain_pem;
  std::string key_pem;
  std::chrono::system_clock::time_point not_before;
  std::chrono::system_clock::time_point not_after;
};

// The leaf (first certificate) of a PEM chain: its validity and DNS SANs. Pure; a chain with no
// certificate or anything but PEM certificates is kInvalidArgument.
struct LeafInfo {
  std::chrono::system_clock::time_point not_before;
  std::chrono::system_clock::time_point not_after;
  std::vector<std::string> dns_names;
};
Result<LeafInfo> ParseChainLeaf(std::string_view chain_pem);

}  // namespace vmctl::acme

#endif  // VMCTL_ACME_CERTIFICATE_H_
