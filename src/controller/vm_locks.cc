#include "controller/vm_locks.h"

namespace vmctl::controller {

std::shared_ptr<std::mutex> VmLocks::For(const std::string& vm_id) {
  std::lock_guard lock(mu_);
  auto& slot = locks_[vm_id];
  if (!slot) slot = std::make_shared<std::mutex>();
  return slot;
}

void VmLocks::Forget(const std::string& vm_id) {
  std::lock_guard lock(mu_);
  locks_.erase(vm_id);
}

}  // namespace vmctl::controller
