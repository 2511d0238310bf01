#ifndef VMCTL_VMM_QEMU_QEMU_ARGV_H_
#define VMCTL_VMM_QEMU_QEMU_ARGV_H_

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "vmm/vmm.h"

namespace vmctl::vmm::qemu {

enum class Accel { kKvm, kTcg };
enum class Machine { kQ35, kMicrovm };

// Everything about the host that the command line depends on, resolved beforehand so that
// building the argv is a pure function.
struct ArgvOptions {
  std::string binary = "qemu-system-x86_64";
  Accel accel = Accel::kTcg;
  Machine machine = Machine::kQ35;
  // Host TSC frequency for tsc_early_khz= under TCG (0: omit). Without it microvm guests under
  // TCG hang about one boot in four calibrating the TSC.
  int64_t tsc_khz = 0;
};

// The sockets QEMU listens on, inside spec.runtime_dir. Keeping them there puts the runtime dir
// in QEMU's argv, which is how the daemon recognizes its orphaned VMMs.
std::filesystem::path QmpSocket(const LaunchSpec& spec);
std::filesystem::path AgentSocket(const LaunchSpec& spec);

// Name of the virtio-serial port the guest agent opens (/dev/virtio-ports/<name>).
inline constexpr std::string_view kAgentPortName = "org.vmctl.agent";

// QEMU's option parser splits "key=value,key=value" at commas; a literal comma is written twice.
std::string EscapeOptionValue(std::string_view value);

// The QEMU command line for spec. Pure: no I/O. Golden-tested.
std::vector<std::string> BuildArgv(const LaunchSpec& spec, const ArgvOptions& options);

}  // namespace vmctl::vmm::qemu

#endif  // VMCTL_VMM_QEMU_QEMU_ARGV_H_
