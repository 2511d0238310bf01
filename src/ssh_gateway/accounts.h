#ifndef VMCTL_SSH_GATEWAY_ACCOUNTS_H_
#define VMCTL_SSH_GATEWAY_ACCOUNTS_H_

#include <libssh/libssh.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "model/user.h"
#include "store/store.h"

namespace vmctl::ssh_gateway {

// A public key as the gateway stores it.
struct PublicKey {
  std::string fingerprint;  // "SHA256:..." as OpenSSH prints it
  std::string line;         // "TYPE BASE64 [COMMENT]"
};
// OpenSSH's "SHA256:..." fingerprint of a key; empty if libssh cannot hash it.
std::string Fingerprint(ssh_key key);

// Parses an authorized_keys-style line ("ssh-ed25519 AAAA... comment"). kInvalidArgument if it
// is not a public key libssh can read.
Result<PublicKey> ParsePublicKey(std::string_view line);

// kInvalidArgument unless `email` looks like local@domain.tld (no spaces, one '@', a dot in
// the domain, at most 254 bytes).
Result<void> ValidateEmail(std::string_view email);

// Users and their SSH keys, as the gateway's registration and `ssh-key` commands manage them.
// Thread-safe (the store is). Does not own the store.
class Accounts {
 public:
  explicit Accounts(Store& store) : store_(store) {}

  // The id of the user owning the key, if it is registered.
  std::optional<std::string> Owner(const std::string& fingerprint);
  // Creates a user for `email` (named after its local part, made unique) holding `key`.
  // kInvalidArgument (bad email), kAlreadyExists (email or key already registered).
  Result<User> Register(std::string_view email, const PublicKey& key);
  Result<std::vector<SshKey>> Keys(const std::string& user_id);
  // kInvalidArgument (not a key), kAlreadyExists (registered, to anyone).
  Result<SshKey> AddKey(const std::string& user_id, std::string_view line);
  // kNotFound (not one of the user's keys), kFailedPrecondition (their last key).
  Result<void> RemoveKey(const std::string& user_id, const std::string& fingerprint);

 private:
  Store& store_;
};

}  // namespace vmctl::ssh_gateway

#endif  // VMCTL_SSH_GATEWAY_ACCOUNTS_H_
