#ifndef VMCTL_VMM_VMM_H_
#define VMCTL_VMM_VMM_H_

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/process.h"
#include "base/result.h"
#include "base/unique_fd.h"

namespace vmctl::vmm {

// What a backend can do. The controller branches on these, never on backend names.
struct Capabilities {
  bool pause_resume = false;
  bool snapshot_restore = false;
  bool resize_cpus = false;
  bool resize_memory = false;
  bool graceful_shutdown = false;   // can ask the guest to power off (ACPI / Ctrl-Alt-Del)
  bool qcow2_disks = false;         // accepts qcow2 images, not only raw
  bool online_disk_resize = false;  // tells a running guest that a disk grew (ResizeDisk)
  bool needs_kvm = false;
  enum class AgentTransport {
    kVirtioSerial,
    kHybridVsock
  } agent_transport = AgentTransport::kVirtioSerial;
};

struct DiskSpec {
  std::filesystem::path path;  // absolute
  enum class Format { kRaw, kQcow2 } format = Format::kRaw;
  bool read_only = false;
};

struct NetSpec {
  std::string tap;  // existing TAP device name
  std::string mac;  // aa:bb:cc:dd:ee:ff
};

// Everything needed to boot one VM. Paths are absolute and chosen by the controller.
struct LaunchSpec {
  std::string vm_id;
  std::string vm_name;
  int cpus = 1;
  int64_t memory_mib = 512;
  std::filesystem::path kernel;     // PVH-bootable vmlinux
  std::filesystem::path initramfs;  // may be empty
  std::string kernel_cmdline;       // backend appends what it needs (console=, tsc_early_khz=)
  std::vector<DiskSpec> disks;      // disks[0] is the root disk (/dev/vda in the guest)
  std::optional<NetSpec> net;
  // Per-VM directory the backend owns for sockets and files (exists, 0700). Unix socket paths are
  // limited to 107 bytes, so keep it short.
  std::filesystem::path runtime_dir;
  std::filesystem::path console_log;  // serial console output is appended here
  std::filesystem::path vmm_log;      // the VMM process's own stdout/stderr
};

// What the daemon persists to find a running VMM again after its own restart.
struct InstanceHandle {
  ProcessRef process;
  std::filesystem::path api_socket;    // QMP or REST socket
  std::filesystem::path agent_socket;  // Unix socket of the agent channel (virtio-serial chardev
                                       // or hybrid vsock)
};

// One running VMM process. Not thread-safe: the controller serializes calls per VM.
// Destroying an Instance never stops the VM (VMs outlive the daemon); use Kill for that.
class Instance {
 public:
  virtual ~Instance() = default;

  virtual const InstanceHandle& handle() const = 0;

  // True while the VMM process exists.
  virtual bool Alive() const { return handle().process.Alive(); }

  // Asks the guest to power off (ACPI). Returns once the request is delivered, not when the
  // guest is down: wait with WaitExit. kUnimplemented without graceful_shutdown.
  virtual Result<void> RequestShutdown() = 0;
  // Stops the VMM now (API quit, then SIGKILL). Ok if it already exited.
  virtual Result<void> Kill() = 0;
  // Waits for the VMM process to exit. kDeadlineExceeded on timeout.
  virtual Result<void> WaitExit(std::chrono::milliseconds timeout) {
    return handle().process.WaitExit(timeout);
  }
  virtual Result<void> Pause() = 0;   // kUnimplemented without pause_resume
  virtual Result<void> Resume() = 0;  // kUnimplemented without pause_resume
  // Tells the running guest that disk `index` of the LaunchSpec (0 = root), which is `disk`, now
  // has `size_bytes`; the file or volume must already have grown. kUnimplemented without
  // online_disk_resize, kInvalidArgument for an index the VM was not launched with.
  virtual Result<void> ResizeDisk(size_t index, const DiskSpec& disk, int64_t size_bytes) = 0;
  // Status string as the VMM reports it ("running", "paused", "shutdown", ...). kUnavailable if
  // the VMM does not answer.
  virtual Result<std::string> QueryStatus() = 0;

  // Opens a new byte stream to the guest agent. For virtio-serial there is a single channel:
  // only one connection may be open at a time. For hybrid vsock this performs the
  // "CONNECT <port>\n" / "OK <n>\n" handshake. kUnavailable while the VMM is not listening.
  virtual Result<UniqueFd> ConnectAgent() = 0;
};

// A VMM implementation. Thread-safe: Launch/Adopt may be called concurrently for different VMs.
class Backend {
 public:
  virtual ~Backend() = default;

  virtual std::string name() const = 0;  // "qemu", "cloud-hypervisor", "firecracker"
  virtual Capabilities capabilities() const = 0;

  // Starts a VMM process for spec (detached: it outlives the daemon) and boots the guest.
  // Returns when the VMM has accepted the configuration and the guest CPU runs; the guest agent
  // is not necessarily up yet. On failure no process or socket is left behind and the error
  // carries the VMM's own message (kUnavailable / kInvalidArgument / kInternal).
  virtual Result<std::unique_ptr<Instance>> Launch(const LaunchSpec& spec) = 0;

  // Re-attaches to a VMM started earlier (possibly by a previous daemon). kNotFound if the
  // process is gone; kUnavailable if it lives but its API socket does not answer.
  virtual Result<std::unique_ptr<Instance>> Adopt(const InstanceHandle& handle) = 0;
};

}  // namespace vmctl::vmm

#endif  // VMCTL_VMM_VMM_H_
