#ifndef VMCTL_VMM_QEMU_QEMU_BACKEND_H_
#define VMCTL_VMM_QEMU_QEMU_BACKEND_H_

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "base/result.h"
#include "vmm/qemu/qemu_argv.h"
#include "vmm/vmm.h"

namespace vmctl::vmm::qemu {

enum class AccelMode { kAuto, kKvm, kTcg };

struct QemuOptions {
  // A name searched in PATH, or a path.
  std::string binary = "qemu-system-x86_64";
  AccelMode accel = AccelMode::kAuto;
  // q35 by default: it never hung in the measured TCG boots, while microvm needs tsc_early_khz
  // (which the driver adds under TCG) and saves only ~0.2 s of boot.
  Machine machine = Machine::kQ35;
};

// Parses the spellings of configuration flags: "auto" | "kvm" | "tcg", and "q35" | "microvm".
Result<AccelMode> ParseAccelMode(std::string_view text);
Result<Machine> ParseMachine(std::string_view text);

struct AccelDecision {
  Accel accel;
  std::string reason;  // one sentence for the daemon's startup log
};

// Whether QEMU can really run a vCPU under KVM. A /dev/kvm that opens is not enough: nested KVM
// may lack what QEMU needs ("failed to set MSR"), and QEMU then aborts at every start, or run a
// vCPU far slower than TCG.
using KvmProbe = std::function<Result<void>()>;
// Runs `binary`'s firmware with KVM and the vCPU model VMs get, until it finds nothing to boot
// (0.1-0.2 s). kUnavailable with QEMU's first error line when it fails, or when it takes longer
// than kKvmProbeLimit: nested KVM that opens, starts and then crawls (15x slower than TCG on
// these hosts; Linux guests stall before their console).
inline constexpr std::chrono::milliseconds kKvmProbeLimit{1500};
Result<void> ProbeKvm(const std::string& binary);

// Resolves the accelerator: kAuto picks KVM when kvm_device opens read-write and the probe (if
// any) passes, else TCG. An explicit choice is kept, with a warning in the reason when KVM is
// requested but unusable.
AccelDecision ResolveAccel(AccelMode mode, const std::filesystem::path& kvm_device = "/dev/kvm",
                           const KvmProbe& probe = nullptr);

// The QEMU driver: one detached qemu-system process per VM, controlled over QMP. Resolves the
// accelerator and reads the host CPU frequency once, here.
std::unique_ptr<Backend> NewQemuBackend(QemuOptions options);

}  // namespace vmctl::vmm::qemu

#endif  // VMCTL_VMM_QEMU_QEMU_BACKEND_H_
