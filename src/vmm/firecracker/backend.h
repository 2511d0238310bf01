#ifndef VMCTL_VMM_FIRECRACKER_BACKEND_H_
#define VMCTL_VMM_FIRECRACKER_BACKEND_H_

#include <memory>
#include <string>

#include "vmm/vmm.h"

namespace vmctl::vmm::firecracker {

struct Options {
  std::string binary = "firecracker";  // searched in PATH unless absolute
};

// The Firecracker driver: one `firecracker --api-sock <runtime_dir>/api.sock` process per VM,
// configured with the pre-boot PUTs, then InstanceStart; the agent is reached through hybrid vsock
// (<runtime_dir>/vsock.sock). Firecracker's serial console is its stdout, so the process's output
// goes to spec.console_log (spec.vmm_log stays unused). Raw disks only.
std::unique_ptr<Backend> NewFirecrackerBackend(Options options);

}  // namespace vmctl::vmm::firecracker

#endif  // VMCTL_VMM_FIRECRACKER_BACKEND_H_
