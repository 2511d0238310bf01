#ifndef VMCTL_MODEL_USER_H_
#define VMCTL_MODEL_USER_H_

#include <cstdint>
#include <string>

namespace vmctl {

struct User {
  std::string id;
  std::string name;  // unique; the local admin is "admin"
  std::string email;
  int64_t created_at = 0;
};

struct SshKey {
  std::string fingerprint;  // SHA256:..., unique
  std::string user_id;
  std::string public_key;  // authorized_keys line
  int64_t created_at = 0;
};

// Totals a user's VMs may use together. Checked at create against the sum over all their VMs.
struct Quota {
  std::string user_id;
  int max_vms = 16;
  int max_cpus = 32;
  int64_t max_memory_mib = 64 * 1024;
  int64_t max_disk_mib = 512 * 1024;
};

// A key waiting for its owner to confirm their email (`--registration verify`): no user exists
// until the code mailed to `email` comes back from the same key.
struct PendingRegistration {
  std::string fingerprint;  // the key's, unique: one pending registration per key
  std::string public_key;   // authorized_keys line
  std::string email;        // normalized (NormalizeEmail)
  std::string code;         // one-time verification code
  std::string source;       // the address it registered from
  int64_t created_at = 0;
  int64_t expires_at = 0;  // seconds since the epoch
  int failed_attempts = 0;
};

struct Share {
  std::string vm_id;
  std::string user_id;  // who it is shared with
  int64_t created_at = 0;
};

}  // namespace vmctl

#endif  // VMCTL_MODEL_USER_H_
