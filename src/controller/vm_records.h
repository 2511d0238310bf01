#ifndef VMCTL_CONTROLLER_VM_RECORDS_H_
#define VMCTL_CONTROLLER_VM_RECORDS_H_

#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "agent/client.h"
#include "controller/vm_service.h"
#include "model/vm.h"
#include "network/network.h"
#include "vmm/vmm.h"

// What VmService's files (vm_service.cc, vm_reconcile.cc) share: the per-VM slot and what they
// derive from a VM's row. Internal to the controller.
namespace vmctl::controller {

// Per-VM state that is not persisted: the live VMM handle and the agent connection. `mu`, the
// VM's mutex in VmLocks, serializes lifecycle operations on the VM and sharing changes to it.
struct VmService::Slot {
  explicit Slot(std::shared_ptr<std::mutex> lock) : lock_owner(std::move(lock)), mu(*lock_owner) {}
  std::shared_ptr<std::mutex> lock_owner;
  std::mutex& mu;
  std::unique_ptr<vmm::Instance> instance;
  std::shared_ptr<agent::AgentClient> agent;
  // Gateway keys installed in this boot of the guest (its agent connection): "user\nkey".
  std::shared_ptr<agent::AgentClient> ssh_agent;
  std::set<std::string> ssh_installed;
  // When the guest last broke the agent protocol (unix ms) and how often since it was recorded:
  // a guest that keeps doing it gets one event per kViolationEventInterval, not one per connect.
  // Shared with the clients' reader threads, which may outlive a lookup of the slot.
  struct Violations {
    std::mutex mu;
    int64_t last_logged_ms = 0;
    int unlogged = 0;
  };
  std::shared_ptr<Violations> violations = std::make_shared<Violations>();
};

// The VMM process and sockets a row records, for Backend::Adopt.
vmm::InstanceHandle HandleOf(const VmRecord& vm);
// The VM's TAP, MAC, address and bandwidth, for Network::Attach.
network::VmNic NicOf(const VmRecord& vm);

}  // namespace vmctl::controller

#endif  // VMCTL_CONTROLLER_VM_RECORDS_H_
