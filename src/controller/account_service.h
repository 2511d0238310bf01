#ifndef VMCTL_CONTROLLER_ACCOUNT_SERVICE_H_
#define VMCTL_CONTROLLER_ACCOUNT_SERVICE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "model/user.h"

namespace vmctl::controller {

// A public key as a front end parsed it.
struct KeyLine {
  std::string fingerprint;  // "SHA256:..." as OpenSSH prints it
  std::string line;         // authorized_keys line
};

// What a registration did: either the user exists now, or a code went out by mail and the key
// waits for it (`pending`).
struct RegistrationResult {
  std::optional<User> user;
  bool pending = false;
  std::string email;       // normalized
  int64_t expires_at = 0;  // of the pending registration
};

// Users and their keys, and who may register (the policy: `vmctl serve --registration`). The
// front ends (SSH gateway, later the HTTPS proxy) stand on this, never on the store.
//
// Threading: thread-safe. Errors: kInvalidArgument (a bad email or code), kAlreadyExists (email
// or key registered), kFailedPrecondition (registration closed, the email not allowed, nothing
// pending, a code expired, the user's last key), kResourceExhausted (too many registrations
// from the source address), kUnavailable / kDeadlineExceeded (the verification mail could not be
// sent), kNotFound (unknown user or key), kInternal (store failures).
class AccountService {
 public:
  virtual ~AccountService() = default;

  // The id of the user owning the key, if it is registered (pending keys are not).
  virtual std::optional<std::string> Owner(const std::string& fingerprint) = 0;
  virtual Result<User> GetUser(const std::string& id) = 0;
  // Registers `key` for `email`, asked from the address `source`: at once, or pending an email
  // confirmation, as the policy says.
  virtual Result<RegistrationResult> Register(std::string_view email, const KeyLine& key,
                                              const std::string& source) = 0;
  // Confirms the key's pending registration with the code that was mailed: creates the user.
  virtual Result<User> Verify(const KeyLine& key, std::string_view code) = 0;

  virtual Result<std::vector<SshKey>> Keys(const std::string& user_id) = 0;
  virtual Result<SshKey> AddKey(const std::string& user_id, const KeyLine& key) = 0;
  virtual Result<void> RemoveKey(const std::string& user_id, const std::string& fingerprint) = 0;
};

}  // namespace vmctl::controller

#endif  // VMCTL_CONTROLLER_ACCOUNT_SERVICE_H_
