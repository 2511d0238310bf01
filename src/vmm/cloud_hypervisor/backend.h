#ifndef VMCTL_VMM_CLOUD_HYPERVISOR_BACKEND_H_
#define VMCTL_VMM_CLOUD_HYPERVISOR_BACKEND_H_

#include <memory>
#include <string>

#include "vmm/vmm.h"

namespace vmctl::vmm::cloud_hypervisor {

struct Options {
  std::string binary = "cloud-hypervisor";  // searched in PATH unless absolute
};

// The Cloud Hypervisor driver: one `cloud-hypervisor --api-socket <runtime_dir>/api.sock` process
// per VM, configured and controlled over its REST API; the agent is reached through hybrid vsock
// (<runtime_dir>/vsock.sock). The VMM's own output goes to spec.vmm_log, the serial console to
// spec.console_log.
std::unique_ptr<Backend> NewCloudHypervisorBackend(Options options);

}  // namespace vmctl::vmm::cloud_hypervisor

#endif  // VMCTL_VMM_CLOUD_HYPERVISOR_BACKEND_H_
