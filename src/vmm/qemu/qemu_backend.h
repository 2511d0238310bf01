#ifndef VMCTL_VMM_QEMU_QEMU_BACKEND_H_
#define VMCTL_VMM_QEMU_QEMU_BACKEND_H_

#include <memory>
#include <string>

#include "vmm/qemu/qemu_argv.h"
#include "vmm/vmm.h"

namespace vmctl::vmm::qemu {

struct QemuOptions {
  std::string binary = "qemu-system-x86_64";
  enum class Accel { kAuto, kKvm, kTcg } accel = Accel::kAuto;
  // q35 by default: it never hung in the measured TCG boots, while microvm needs tsc_early_khz.
  Machine machine = Machine::kQ35;
};

// Resolves kAuto: KVM when /dev/kvm can be opened read-write, else TCG. `why` explains the pick.
bool UseKvm(const QemuOptions& options, std::string* why);

// The QEMU driver: one detached qemu-system process per VM, controlled over QMP.
std::unique_ptr<Backend> NewQemuBackend(QemuOptions options);

}  // namespace vmctl::vmm::qemu

#endif  // VMCTL_VMM_QEMU_QEMU_BACKEND_H_
