#ifndef VMCTL_CONTROLLER_VM_LOCKS_H_
#define VMCTL_CONTROLLER_VM_LOCKS_H_

#include <map>
#include <memory>
#include <mutex>
#include <string>

namespace vmctl::controller {

// One mutex per VM, shared by every controller that changes a VM (the lifecycle in VmService,
// sharing in Sharing), so that no change to a VM interleaves with another, e.g. a domain added
// while the VM is being removed.
//
// Threading: thread-safe. Callers hold the returned pointer while they lock it, so Forget never
// destroys a mutex in use; a caller that waited through a Forget re-reads the VM (it is gone).
class VmLocks {
 public:
  // The mutex of VM `vm_id`, made on first use.
  std::shared_ptr<std::mutex> For(const std::string& vm_id);
  // Drops the VM's mutex once its row is deleted.
  void Forget(const std::string& vm_id);

 private:
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<std::mutex>> locks_;
};

}  // namespace vmctl::controller

#endif  // VMCTL_CONTROLLER_VM_LOCKS_H_
