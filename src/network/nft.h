#ifndef VMCTL_NETWORK_NFT_H_
#define VMCTL_NETWORK_NFT_H_

#include <string>

#include "base/result.h"

namespace vmctl::network {

// Runs an nftables script through libnftables in the calling thread's network namespace, as one
// transaction: either every command applies or none does.
// Errors: kInternal carrying nft's own diagnostics (which quote the offending line).
// Thread-safe (each call has its own nft context).
Result<void> RunNftScript(const std::string& script);

// `nft list table FAMILY NAME` output; kNotFound if the table does not exist.
Result<std::string> ListNftTable(const std::string& family, const std::string& name);

}  // namespace vmctl::network

#endif  // VMCTL_NETWORK_NFT_H_
