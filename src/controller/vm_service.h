#ifndef VMCTL_CONTROLLER_VM_SERVICE_H_
#define VMCTL_CONTROLLER_VM_SERVICE_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "agent/client.h"
#include "base/result.h"
#include "controller/vm_locks.h"
#include "model/vm.h"
#include "network/network.h"
#include "storage/volume.h"
#include "store/store.h"
#include "vmm/vmm.h"

namespace vmctl::controller {

// One human-readable progress line per step of a long operation.
using Progress = std::function<void(const std::string&)>;

struct VmServiceOptions {
  // Per-VM runtime directories live in state_dir/vms/<id>; the daemon recognises its own VMM
  // processes by this path in their command line.
  std::filesystem::path state_dir;
  std::chrono::milliseconds boot_timeout = std::chrono::seconds(120);
  std::chrono::milliseconds stop_timeout = std::chrono::seconds(30);
  std::chrono::milliseconds monitor_interval = std::chrono::milliseconds(500);
  // The default image's initramfs mounts root= and switch_roots to systemd.
  std::string kernel_cmdline = "root=/dev/vda rw panic=-1 quiet";
  // The SSH gateway's routing addresses: each new VM gets the first one its owner's other VMs
  // do not use (VmRecord::ssh_address); none once the owner uses them all.
  std::vector<std::string> ssh_address_pool;
  // What every VM of every user may be given together (overcommit included), checked at create
  // against the sum over all VMs, whatever their state (as quotas are); 0 means no limit.
  int host_cpus = 0;
  int64_t host_memory_mib = 0;
};

// The VM lifecycle: the one implementation behind the API, CLI and (later) SSH front ends.
//
// Threading: all methods are thread-safe. Operations on one VM are serialized by a per-VM lock;
// operations on different VMs run in parallel. Long operations block the calling thread (the API
// server gives each request its own thread).
//
// Every state change is written to the store before it is acted on, so after a crash Reconcile()
// finds each VM in a state that says what was in flight.
//
// Errors: kInvalidArgument (bad request), kNotFound (unknown VM or image), kAlreadyExists (name
// taken), kResourceExhausted (quota, host capacity), kFailedPrecondition (wrong state, e.g. exec on
// a stopped VM), kResourceExhausted also when the address pool is used up, kDeadlineExceeded (guest
// agent did not answer in time), kUnavailable/kInternal (VMM or network failures, with the console
// tail in the message).
class VmService {
 public:
  // Does not take ownership; store, backend, volumes, network and locks must outlive the
  // service. `locks` is shared with the other controllers that change VMs (Sharing).
  VmService(Store& store, vmm::Backend& backend, storage::VolumeBackend& volumes,
            network::Network& network, VmLocks& locks, VmServiceOptions options);
  ~VmService();
  VmService(const VmService&) = delete;
  VmService& operator=(const VmService&) = delete;

  Result<VmRecord> Create(const std::string& owner, const VmRequest& request,
                          const Progress& progress);
  Result<VmRecord> Start(const std::string& owner, const std::string& name,
                         const Progress& progress);
  // Graceful (guest agent, then ACPI) and forced after stop_timeout; force skips the grace.
  Result<VmRecord> Stop(const std::string& owner, const std::string& name, bool force);
  Result<VmRecord> Restart(const std::string& owner, const std::string& name,
                           const Progress& progress);
  // Removes the VM and every trace: process, sockets, disks, logs, rows.
  Result<void> Remove(const std::string& owner, const std::string& name);

  // Grows the root and/or data disk (0 leaves one alone): at once, guest filesystem included,
  // when the VM runs and both the volume backend and the VMM can grow an open disk; otherwise the
  // volume grows now (stopped VM) or at the next start (running VM), and the guest filesystem
  // follows at that start. Progress says which. Disks never shrink (kInvalidArgument).
  Result<VmRecord> Resize(const std::string& owner, const std::string& name, int64_t root_mib,
                          int64_t data_mib, const Progress& progress);

  struct DiskInfo {
    std::string role;  // "root" or "data"
    std::string path;
    std::string format;  // "raw" or "qcow2"
    int64_t wanted_mib = 0;
    storage::VolumeUsage usage;
  };
  // The VM's disks with their size and the host space they take.
  Result<std::vector<DiskInfo>> Disks(const std::string& owner, const std::string& name);

  Result<VmRecord> Get(const std::string& owner, const std::string& name);
  Result<std::vector<VmRecord>> List(const std::string& owner);

  // The user's own VM of that name, else the one shared with them. kNotFound "no VM named" (the
  // same for other users' VMs not shared with `user`), kFailedPrecondition if several VMs of that
  // name are shared with them.
  Result<VmRecord> FindVisible(const std::string& user, const std::string& name);

  // What the SSH gateway needs to log into a VM's sshd on a user's behalf.
  struct SshTarget {
    VmRecord vm;             // running; ssh_host_keys holds the keys just pinned
    std::string guest_user;  // whom `key` was installed for
  };
  // For the SSH gateway (docs/ssh-gateway.md). Finds `name` among `user`'s VMs, then among the
  // VMs shared with them; installs `key` (an authorized_keys line ending in " vmctl-gateway",
  // replacing earlier such lines only) for `guest_user` through the agent, and pins the host keys
  // the agent reports, waiting up to `timeout` for sshd to have made them. An empty guest user
  // means the image's default one, as does a guest user the VM lacks when `or_default`.
  // kNotFound "no VM named" (also for other users' VMs not shared with `user`), or for a guest
  // user the VM lacks; kFailedPrecondition "VM 'x' is stopped" (and the like) if it does not run;
  // kDeadlineExceeded if sshd has no host keys in time.
  Result<SshTarget> PrepareSsh(const std::string& user, const std::string& name,
                               const std::string& guest_user, bool or_default,
                               const std::function<Result<std::string>(const VmRecord&)>& key_for,
                               std::chrono::milliseconds timeout);
  // Makes the next PrepareSsh for the VM install the gateway's key again even though this boot
  // already has it: for when sshd refused it because the guest's authorized_keys was rewritten.
  void ForgetSshKeys(const std::string& vm_id);
  // The tag on the gateway's authorized_keys lines in guests.
  static constexpr char kGatewayKeyTag[] = "vmctl-gateway";

  // Starts a process in a running VM.
  Result<std::unique_ptr<agent::ExecSession>> Exec(const std::string& owner,
                                                   const std::string& name,
                                                   const agent::ExecRequest& request);
  // Path of the VM's serial console log (exists once the VM was started).
  Result<std::filesystem::path> ConsoleLog(const std::string& owner, const std::string& name);

  // Brings the store and the host in line after a (re)start of the daemon: re-adopts live VMMs,
  // marks VMs whose VMM died as stopped, finishes interrupted deletes, rolls back interrupted
  // creates, and kills VMM processes and removes runtime directories that belong to no VM.
  // Returns one line per action taken.
  Result<std::vector<std::string>> Reconcile();

  // Watches running VMs in a background thread and marks a VM stopped when its VMM exits.
  void StartMonitor();

 private:
  struct Slot;

  std::shared_ptr<Slot> SlotFor(const std::string& vm_id);
  Result<VmRecord> Lookup(const std::string& owner, const std::string& name);
  // Under create_mu_.
  Result<std::string> PickSshAddress(const std::string& owner);
  Result<void> CheckQuota(const std::string& owner, const VmRequest& request);
  Result<void> CheckHostCapacity(const VmRequest& request);
  Result<VmRecord> Boot(Slot& slot, VmRecord vm, const Progress& progress);
  // Everything after the agent answered, the same for a boot started here and one adopted from
  // a daemon that died meanwhile: guest network, data disk, waiting until the guest has
  // finished booting (until `deadline`), running, clock. Under the slot's lock; on failure the
  // VM is failed (FailBoot), unless the daemon is going down, which leaves it starting.
  Result<VmRecord> FinishBoot(Slot& slot, VmRecord vm, agent::AgentClient& agent,
                              std::chrono::steady_clock::time_point deadline,
                              const Progress& progress);
  // Until the agent reports the guest's boot finished. Past the deadline the VM runs anyway,
  // with a warning; an agent without boot_status does not wait. kInternal for a malformed reply.
  Result<void> WaitBooted(agent::AgentClient& agent, const VmRecord& vm,
                          std::chrono::steady_clock::time_point deadline, const Progress& progress);
  // Takes the slot's lock and finishes the boot of a VM re-adopted while starting.
  void FinishAdopted(Slot& slot, const std::string& vm_id);
  bool Stopping();
  Result<VmRecord> StopLocked(Slot& slot, VmRecord vm, bool force);
  // Records the failure, kills whatever runs and returns `cause` extended with the console tail.
  Error FailBoot(Slot& slot, const VmRecord& vm, VmState from, const Error& cause);
  Result<std::shared_ptr<agent::AgentClient>> Agent(Slot& slot, const VmRecord& vm,
                                                    std::chrono::milliseconds timeout);
  // The limits for a client to the VM's agent; a protocol violation is recorded as an event.
  agent::ClientOptions AgentOptions(Slot& slot, const VmRecord& vm);
  static constexpr std::chrono::milliseconds kViolationEventInterval{10000};
  void ReleaseRuntime(Slot& slot, VmRecord& vm);
  // Gives a VM created before networking existed its TAP, MAC and address.
  Result<VmRecord> EnsureNetworkIdentity(VmRecord vm);
  Result<void> ConfigureGuestNetwork(agent::AgentClient& agent, const VmRecord& vm);
  Result<VmRecord> MarkStopped(Slot& slot, const VmRecord& vm, const std::string& why);
  // Creates the VM's volumes; on failure removes whatever was made.
  Result<VmRecord> ProvisionDisks(VmRecord vm, const ImageRecord& image, const Progress& progress);
  // Grows volumes that are smaller than the VM's wanted sizes (a resize while it ran).
  Result<void> GrowPendingVolumes(const VmRecord& vm, const Progress& progress);
  Result<void> PrepareDataDisk(agent::AgentClient& agent, const VmRecord& vm,
                               const Progress& progress);
  Result<void> RemoveVolumes(const VmRecord& vm);
  void MonitorLoop();
  // Keeps the VM's serial console log under kMaxConsoleLog (its newest kConsoleLogKept remain).
  void CapConsoleLog(const VmRecord& vm);
  static constexpr size_t kMaxConsoleLog = 16 << 20;
  static constexpr size_t kConsoleLogKept = 4 << 20;
  void Log(const VmRecord& vm, const std::string& kind, const std::string& detail);
  std::filesystem::path RuntimeDir(const std::string& vm_id) const;

  Store& store_;
  vmm::Backend& backend_;
  storage::VolumeBackend& volumes_;
  network::Network& network_;
  VmLocks& locks_;
  VmServiceOptions options_;

  std::mutex slots_mu_;
  std::map<std::string, std::shared_ptr<Slot>> slots_;
  // Serializes quota check + insert so two concurrent creates cannot both pass the quota.
  std::mutex create_mu_;

  std::mutex monitor_mu_;
  std::condition_variable monitor_cv_;
  bool stopping_ = false;
  std::thread monitor_;
};

}  // namespace vmctl::controller

#endif  // VMCTL_CONTROLLER_VM_SERVICE_H_
