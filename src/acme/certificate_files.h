#ifndef VMCTL_ACME_CERTIFICATE_FILES_H_
#define VMCTL_ACME_CERTIFICATE_FILES_H_

#include <filesystem>
#include <optional>

#include "acme/certificate.h"
#include "base/result.h"

namespace vmctl::acme {

// An issued certificate on disk, so a restarted daemon serves it again at once and renews it on
// schedule instead of ordering a new one: `DIR/NAME.crt` (the PEM chain) and `DIR/NAME.key`,
// both 0600, each written to a temporary file, fsynced and renamed. The key is written first, so
// a crash in between leaves a new key beside the old chain, which Load refuses (kInvalidArgument)
// and the renewer then replaces.

Result<void> SaveCertificate(const std::filesystem::path& dir, const std::string& name,
                             const IssuedCertificate& cert);
// nullopt when neither file exists; validity comes from the chain's leaf, and the key must be the
// leaf's.
Result<std::optional<IssuedCertificate>> LoadCertificate(const std::filesystem::path& dir,
                                                         const std::string& name);

}  // namespace vmctl::acme

#endif  // VMCTL_ACME_CERTIFICATE_FILES_H_
