#ifndef VMCTL_VMM_CLOUD_HYPERVISOR_BACKEND_H_
#define VMCTL_VMM_CLOUD_HYPERVISOR_BACKEND_H_

#include <memory>
#include <string>

#include "vmm/vmm.h"

namespace vmctl::vmm::cloud_hypervisor {

struct Options {
  std::string binary = "cloud-hypervisor";
};

// The Cloud Hypervisor driver: one `cloud-hypervisor --api-socket` process per VM, configured
// and controlled over its REST API; the agent is reached through hybrid vsock.
std::unique_ptr<Backend> NewCloudHypervisorBackend(Options options);

}  // namespace vmctl::vmm::cloud_hypervisor

#endif  // VMCTL_VMM_CLOUD_HYPERVISOR_BACKEND_H_
