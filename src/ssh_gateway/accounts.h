#ifndef VMCTL_SSH_GATEWAY_ACCOUNTS_H_
#define VMCTL_SSH_GATEWAY_ACCOUNTS_H_

#include <libssh/libssh.h>

#include <string>
#include <string_view>

#include "base/result.h"
#include "controller/account_service.h"

namespace vmctl::ssh_gateway {

// A public key as the gateway parsed it.
using PublicKey = controller::KeyLine;
// OpenSSH's "SHA256:..." fingerprint of a key; empty if libssh cannot hash it.
std::string Fingerprint(ssh_key key);

// Parses an authorized_keys-style line ("ssh-ed25519 AAAA... comment"). kInvalidArgument if it
// is not a public key libssh can read.
Result<PublicKey> ParsePublicKey(std::string_view line);

}  // namespace vmctl::ssh_gateway

#endif  // VMCTL_SSH_GATEWAY_ACCOUNTS_H_
