#ifndef VMCTL_NETWORK_HOST_NETWORK_H_
#define VMCTL_NETWORK_HOST_NETWORK_H_

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "network/network.h"

namespace vmctl::network {

struct HostNetworkOptions {
  std::string bridge = "vmctl0";
  std::string gateway = "10.0.0.1/16";  // the bridge's address; its prefix is the VM subnet
  // Resolvers for guests; nullopt: the host's own from /etc/resolv.conf, minus loopback ones
  // (which a guest cannot reach).
  std::optional<std::vector<std::string>> dns;
  // Records what setup changed on the host (ip_forward) so that cleanup can undo exactly that.
  std::filesystem::path state_file;
};

// Brings up the managed network in the calling thread's network namespace: the bridge with its
// address, IPv4 forwarding, and the vmctl nftables tables (replaced atomically, with no VM
// attached: the controller re-attaches running VMs). Idempotent.
// Errors: kInvalidArgument for bad options; kFailedPrecondition when the subnet collides with a
// route the host already has (the message lists them); kAlreadyExists when the bridge name is
// taken by a device that is not a bridge; kInternal for kernel or nftables refusals.
Result<std::unique_ptr<Network>> SetUpHostNetwork(const HostNetworkOptions& options);

// Removes everything SetUpHostNetwork and Attach created: vmctl's TAP devices (named vt<id>),
// the bridge, both nftables tables, and restores ip_forward if setup turned it on. Touches
// nothing else. Returns one line per thing removed.
Result<std::vector<std::string>> CleanUpHostNetwork(const HostNetworkOptions& options);

// A one-line description for the daemon's start banner.
std::string Describe(const NetworkInfo& info);

}  // namespace vmctl::network

#endif  // VMCTL_NETWORK_HOST_NETWORK_H_
