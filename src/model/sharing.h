#ifndef VMCTL_MODEL_SHARING_H_
#define VMCTL_MODEL_SHARING_H_

#include <cstdint>
#include <string>

namespace vmctl {

// Who besides its owner reaches a VM's web app, and at which port.
struct VmWebSettings {
  bool is_public = false;
  int web_port = 0;  // 0: the image's default
};

// A share link as persisted: the secret itself is never stored.
struct ShareLinkRecord {
  std::string id;  // public handle, 8 lowercase hex chars
  std::string vm_id;
  std::string secret_hash;  // lowercase hex SHA-256 of the secret
  int64_t created_at = 0;
};

// A host name of the user's own (`domain add`) that reaches one VM's web app.
struct CustomDomain {
  std::string domain;  // lowercase, no trailing dot; unique across VMs
  std::string vm_id;
  int64_t created_at = 0;
};

}  // namespace vmctl

#endif  // VMCTL_MODEL_SHARING_H_
