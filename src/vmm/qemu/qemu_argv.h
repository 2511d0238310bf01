#ifndef VMCTL_VMM_QEMU_QEMU_ARGV_H_
#define VMCTL_VMM_QEMU_QEMU_ARGV_H_

#include <filesystem>
#include <string>
#include <vector>

#include "vmm/vmm.h"

namespace vmctl::vmm::qemu {

enum class Machine { kQ35, kMicrovm };

// Everything about the host that the command line depends on, resolved beforehand so that
// building the argv is a pure function.
struct ResolvedOptions {
  std::string binary = "qemu-system-x86_64";
  bool kvm = false;
  Machine machine = Machine::kQ35;
  // Host TSC frequency for tsc_early_khz= under TCG (0: omit). Without it microvm guests under
  // TCG hang about one boot in four calibrating the TSC.
  int tsc_khz = 0;
};

// Socket paths the argv uses, derived from spec.runtime_dir.
std::filesystem::path QmpSocket(const LaunchSpec& spec);
std::filesystem::path AgentSocket(const LaunchSpec& spec);

// The QEMU command line for spec. Pure: no I/O. Golden-tested.
std::vector<std::string> BuildArgv(const LaunchSpec& spec, const ResolvedOptions& options);

}  // namespace vmctl::vmm::qemu

#endif  // VMCTL_VMM_QEMU_QEMU_ARGV_H_
