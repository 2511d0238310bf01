#ifndef VMCTL_NETWORK_NETWORK_H_
#define VMCTL_NETWORK_NETWORK_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "network/addr.h"

namespace vmctl::network {

// One VM's attachment to the managed network. Names and the MAC derive from the VM id (addr.h),
// the address comes from the pool and is persisted by the controller.
struct VmNic {
  std::string vm_id;
  std::string tap;
  std::string mac;
  Ipv4 address;
  uint64_t bandwidth_kbit = 0;  // each direction; 0: unlimited
};

// What the controller needs to know about the managed network.
struct NetworkInfo {
  std::string bridge;                 // e.g. vmctl0
  Cidr gateway;                       // the host's address on the bridge, e.g. 10.0.0.1/16
  Ipv4 pool_first, pool_last;         // addresses handed to VMs (inclusive)
  std::vector<std::string> dns;       // resolvers the guests are given (may be empty)
  std::optional<std::string> uplink;  // device of the default route; none: no outside access
};

// The per-VM half of the host network. The daemon sets the network up (bridge, forwarding,
// firewall tables) before handing it to the controller; the controller attaches a VM before
// its VMM starts and detaches it when the VMM is gone.
//
// Threading: thread-safe. Errors: kInvalidArgument for a malformed nic, kAlreadyExists when the
// TAP name is taken by a foreign device, kInternal for kernel or nftables failures (with their
// text).
class Network {
 public:
  virtual ~Network() = default;

  virtual const NetworkInfo& info() const = 0;

  // Creates the VM's TAP on the bridge and installs its anti-spoofing, isolation and bandwidth
  // rules. Idempotent: attaching an attached VM refreshes everything (used after a daemon restart,
  // while the VMM keeps the TAP open).
  virtual Result<void> Attach(const VmNic& nic) = 0;
  // Removes the VM's rules and TAP. Ok if they are already gone.
  virtual Result<void> Detach(const VmNic& nic) = 0;
};

}  // namespace vmctl::network

#endif  // VMCTL_NETWORK_NETWORK_H_
