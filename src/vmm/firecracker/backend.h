#ifndef VMCTL_VMM_FIRECRACKER_BACKEND_H_
#define VMCTL_VMM_FIRECRACKER_BACKEND_H_

#include <memory>
#include <string>

#include "vmm/vmm.h"

namespace vmctl::vmm::firecracker {

struct Options {
  std::string binary = "firecracker";
};

// The Firecracker driver: one `firecracker --api-sock` process per VM, configured with the
// pre-boot PUTs, then InstanceStart; the agent is reached through hybrid vsock. The serial
// console is Firecracker's stdout, so the VMM's output goes to the console log.
std::unique_ptr<Backend> NewFirecrackerBackend(Options options);

}  // namespace vmctl::vmm::firecracker

#endif  // VMCTL_VMM_FIRECRACKER_BACKEND_H_
