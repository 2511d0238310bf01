#ifndef VMCTL_MODEL_VM_H_
#define VMCTL_MODEL_VM_H_

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace vmctl {

// Lifecycle states. Every change goes through CheckTransition, and the store persists the new
// state before the controller acts on it (write-ahead), so a crash mid-operation is visible on
// restart and reconciled.
enum class VmState {
  kCreating,  // row exists, disk being provisioned, VMM not yet started
  kStarting,  // VMM launched, waiting for the guest agent's hello
  kRunning,   // agent answered
  kStopping,  // graceful shutdown requested
  kStopped,   // no VMM process; disk kept
  kFailed,    // boot or VMM failure; `error` says why; can be started again or removed
  kDeleting,  // rm in progress; the row goes away when every resource is released
};

std::string_view VmStateName(VmState state);
Result<VmState> VmStateFromName(std::string_view name);

// ok, or kFailedPrecondition "cannot go from X to Y".
Result<void> CheckTransition(VmState from, VmState to);

// Resource limits a single VM may ask for (quotas cap the totals per user).
struct VmLimits {
  static constexpr int kMinCpus = 1;
  static constexpr int kMaxCpus = 64;
  static constexpr int64_t kMinMemoryMib = 128;
  static constexpr int64_t kMaxMemoryMib = 256 * 1024;
  static constexpr int64_t kMinDiskMib = 512;  // root disk
  static constexpr int64_t kMaxDiskMib = 2 * 1024 * 1024;
  static constexpr int64_t kMinDataDiskMib = 64;  // or 0: no data disk
  static constexpr int64_t kMaxDataDiskMib = 16 * 1024 * 1024;
  static constexpr size_t kMaxNameLength = 32;
  static constexpr int64_t kMinBandwidthKbit = 64;
  static constexpr int64_t kMaxBandwidthKbit = 10 * 1000 * 1000;  // tbf takes 32-bit byte rates
};

// VM names are DNS labels (they become myvm.host): 1-32 chars of [a-z0-9-], starting with a
// letter, not ending with '-', without "--" (VM--PORT.host is the VM's other ports). Host-side
// names (TAP, sockets) derive from the VM id, never the name, so the limit is about DNS and
// readability rather than IFNAMSIZ.
Result<void> ValidateVmName(std::string_view name);

// What a user asks for; validated by ValidateVmRequest.
struct VmRequest {
  std::string name;
  std::string image = "default";
  int cpus = 1;
  int64_t memory_mib = 512;
  int64_t root_disk_mib = 2048;
  // Persistent disk mounted at /data in the guest; 0: none.
  int64_t data_disk_mib = 1024;
  int64_t bandwidth_kbit = 0;  // 0: unlimited
};
Result<void> ValidateVmRequest(const VmRequest& request);

// Checks a new size for a VM's disks (`vmctl resize`): each may only grow, within the limits.
// Zero means "unchanged".
Result<void> ValidateDiskGrowth(int64_t root_mib, int64_t data_mib, int64_t new_root_mib,
                                int64_t new_data_mib);

// "500kbit", "100mbit", "1gbit" (case-insensitive, decimal units as tc uses them) or "0".
Result<int64_t> ParseBandwidthKbit(std::string_view text);

// One VM as persisted. Runtime fields (pid, sockets) are empty while stopped.
struct VmRecord {
  std::string id;     // 12 lowercase hex chars, random, immutable
  std::string owner;  // user id
  std::string name;   // unique across owners (a host name)
  std::string image;
  VmState state = VmState::kCreating;
  int cpus = 1;
  int64_t memory_mib = 512;
  // Wanted disk sizes; the volumes are grown to them before each boot (and at once when the
  // backends allow it).
  int64_t root_disk_mib = 2048;
  int64_t data_disk_mib = 0;  // 0: no data disk
  std::string backend;        // backend that runs it, e.g. "qemu"
  int64_t pid = 0;
  uint64_t pid_start_time = 0;  // with pid, identifies the VMM process across reuse
  std::string api_socket;       // VMM control socket (QMP or REST)
  std::string agent_socket;     // host end of the agent channel
  std::string runtime_dir;      // per-VM directory with sockets, logs, disks
  std::string root_disk;        // path the VMM opens; qcow2 iff it ends in ".qcow2"
  std::string data_disk;        // likewise; empty without a data disk
  std::string storage;          // volume backend that made the disks, e.g. "reflink"
  // The image build the root disk was cloned from (its kernel and initramfs boot the VM): a
  // rebuilt image leaves existing VMs on their build, and the build stays while VMs use it.
  std::string image_dir;
  std::string tap;             // host TAP device, "vt" + id
  std::string mac;             // guest NIC's MAC, derived from the id
  std::string address;         // IPv4 address from the pool; kept until rm
  int64_t bandwidth_kbit = 0;  // per direction; 0: unlimited
  // The SSH gateway's routing address for this VM (one of its address pool, distinct among the
  // owner's VMs; empty without a pool), and the VM's sshd host keys as its agent last reported
  // them ("ssh-ed25519 AAAA..." lines), which the gateway checks when it connects.
  std::string ssh_address;
  std::vector<std::string> ssh_host_keys;
  std::string error;       // why the last operation failed (with console tail), else empty
  int64_t created_at = 0;  // unix seconds
  int64_t updated_at = 0;
};

nlohmann::json ToJson(const VmRecord& vm);

std::string NewVmId();

}  // namespace vmctl

#endif  // VMCTL_MODEL_VM_H_
