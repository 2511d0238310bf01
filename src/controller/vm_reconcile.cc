// VmService's recovery after a daemon restart and its monitor: reconciling the database with the
// VMM processes found, and watching VMs (exits, console logs, boots adopted mid-way).
#include <dirent.h>
#include <fmt/format.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <chrono>
#include <future>
#include <set>
#include <system_error>

#include "base/io.h"
#include "base/process.h"
#include "controller/vm_records.h"
#include "controller/vm_service.h"

namespace vmctl::controller {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

Result<std::vector<std::string>> VmService::Reconcile() {
  std::vector<std::string> actions;
  VMCTL_ASSIGN_OR_RETURN(auto vms, store_.ListVms(std::nullopt));
  std::map<std::string, VmRecord> by_id;
  for (auto& vm : vms) {
    auto slot = SlotFor(vm.id);
    std::lock_guard lock(slot->mu);
    ProcessRef process{static_cast<pid_t>(vm.pid), vm.pid_start_time};
    bool alive = vm.pid != 0 && process.Alive();
    auto note = [&](const std::string& what) {
      actions.push_back(fmt::format("{}: {}", vm.name, what));
      Log(vm, "reconcile", what);
    };
    switch (vm.state) {
      case VmState::kCreating:
      case VmState::kDeleting: {
        // A create that was never acknowledged, or a removal that was asked for: the VM goes.
        if (alive) (void)process.Kill();
        if (!vm.tap.empty()) VMCTL_TRY(network_.Detach(NicOf(vm)));
        VMCTL_TRY(RemoveVolumes(vm));
        std::error_code ec;
        std::filesystem::remove_all(vm.runtime_dir, ec);
        VMCTL_TRY(store_.DeleteVm(vm.id));
        note(vm.state == VmState::kCreating ? "interrupted create rolled back"
                                            : "interrupted removal finished");
        continue;
      }
      case VmState::kRunning:
      case VmState::kStarting:
      case VmState::kStopping: {
        if (!alive) {
          auto stopped = MarkStopped(*slot, vm, "VMM exited while the daemon was down");
          if (stopped.ok()) vm = *stopped;
          note("VMM gone, marked stopped");
          break;
        }
        auto adopted = backend_.Adopt(HandleOf(vm));
        if (!adopted.ok()) {
          note("VMM alive but not answering (" + adopted.error().message() + "), killed it");
          (void)process.Kill();
          auto stopped = MarkStopped(*slot, vm, "VMM did not answer after daemon restart");
          if (stopped.ok()) vm = *stopped;
          break;
        }
        slot->instance = std::move(adopted).value();
        if (!vm.tap.empty()) {
          // The VMM kept its TAP open across the daemon's restart; the rules were rebuilt empty.
          if (auto attached = network_.Attach(NicOf(vm)); !attached.ok()) {
            note("could not restore its network: " + attached.error().message());
          }
        }
        if (vm.state == VmState::kStopping) {
          auto stopped = StopLocked(*slot, vm, true);
          if (stopped.ok()) vm = *stopped;
          note("interrupted stop finished");
        } else {
          note(fmt::format("re-adopted VMM pid {}", vm.pid));
        }
        break;
      }
      case VmState::kStopped:
      case VmState::kFailed:
        if (alive) {
          (void)process.Kill();
          note("killed a VMM that should not run");
        }
        if (!vm.tap.empty()) (void)network_.Detach(NicOf(vm));
        break;
    }
    by_id[vm.id] = vm;
  }

  // VMM processes started for our state dir that no VM accounts for (e.g. launched just before a
  // crash, before their pid was recorded).
  std::string marker = (options_.state_dir / "vms").string() + "/";
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string pid_name = entry.path().filename().string();
    if (pid_name.find_first_not_of("0123456789") != std::string::npos) continue;
    auto ref = ProcessRef::Of(std::stoi(pid_name));
    if (!ref.ok() || ref->pid == ::getpid()) continue;
    for (const auto& arg : ref->Cmdline()) {
      auto at = arg.find(marker);
      if (at == std::string::npos) continue;
      std::string id = arg.substr(at + marker.size());
      id = id.substr(0, id.find('/'));
      auto it = by_id.find(id);
      bool owned = it != by_id.end() && it->second.pid == ref->pid &&
                   it->second.pid_start_time == ref->start_time;
      if (!owned) {
        (void)ref->Kill();
        actions.push_back(fmt::format("killed orphan VMM pid {} (vm id {})", ref->pid, id));
        spdlog::info("reconcile: killed orphan VMM pid {} (vm id {})", ref->pid, id);
      }
      break;
    }
  }
  for (const auto& entry : std::filesystem::directory_iterator(options_.state_dir / "vms", ec)) {
    std::string id = entry.path().filename().string();
    if (!by_id.count(id)) {
      std::filesystem::remove_all(entry.path(), ec);
      actions.push_back(fmt::format("removed orphan runtime directory {}", entry.path().string()));
    }
  }
  // Volumes whose VM row is gone (a crash between removing the row and the disks cannot happen,
  // but one during create before the row was written can).
  VMCTL_ASSIGN_OR_RETURN(auto owners, volumes_.ListOwners());
  for (const auto& id : owners) {
    if (by_id.count(id)) continue;
    VMCTL_TRY(volumes_.RemoveAll(id));
    actions.push_back(fmt::format("removed orphan volumes of vm id {}", id));
    spdlog::info("reconcile: removed orphan volumes of vm id {}", id);
  }
  return actions;
}

void VmService::CapConsoleLog(const VmRecord& vm) {
  // The VMM appends the guest's serial output for as long as it runs: a guest printing without
  // end must not fill the host's disk.
  auto cut = CapAppendedLog(std::filesystem::path(vm.runtime_dir) / "console.log", kMaxConsoleLog,
                            kConsoleLogKept);
  if (!cut.ok()) {
    spdlog::warn("vm {}: {}", vm.name, cut.error().message());
  } else if (*cut) {
    spdlog::info("vm {}: console log cut to its last {} KiB", vm.name, kConsoleLogKept >> 10);
  }
}

void VmService::StartMonitor() {
  monitor_ = std::thread([this] { MonitorLoop(); });
}

void VmService::MonitorLoop() {
  // Boots being finished for adopted VMs, by VM id; waited for when the monitor ends.
  std::map<std::string, std::future<void>> adoptions;
  for (;;) {
    std::erase_if(adoptions, [](auto& a) {
      return a.second.wait_for(milliseconds(0)) == std::future_status::ready;
    });
    {
      std::unique_lock lock(monitor_mu_);
      if (monitor_cv_.wait_for(lock, options_.monitor_interval, [this] { return stopping_; })) {
        return;
      }
    }
    // The thread's boundary: one VM's failure is logged and the others are still watched.
    try {
      auto vms = store_.ListVms(std::nullopt);
      if (!vms.ok()) continue;
      for (const auto& listed : *vms) {
        if (listed.state != VmState::kRunning && listed.state != VmState::kStarting) continue;
        ProcessRef process{static_cast<pid_t>(listed.pid), listed.pid_start_time};
        bool alive = listed.pid != 0 && process.Alive();
        CapConsoleLog(listed);
        if (alive && listed.state == VmState::kRunning) continue;
        auto slot = SlotFor(listed.id);
        // A busy slot means an operation owns the VM and will notice the exit itself.
        std::unique_lock lock(slot->mu, std::try_to_lock);
        if (!lock.owns_lock()) continue;
        auto vm = store_.GetVm(listed.id);
        if (!vm.ok() || (vm->state != VmState::kRunning && vm->state != VmState::kStarting)) {
          continue;
        }
        if (!alive) {
          (void)MarkStopped(*slot, *vm, "VMM exited");
          continue;
        }
        // A VM adopted in the middle of its boot: finished as Boot would, in a thread of its own
        // so that a slow guest does not hold up watching the others.
        if (!adoptions.count(vm->id)) {
          adoptions.emplace(vm->id, std::async(std::launch::async, [this, slot, id = vm->id] {
                              try {
                                FinishAdopted(*slot, id);
                              } catch (const std::exception& e) {
                                spdlog::error("vm {}: finishing its boot: {}", id, e.what());
                              }
                            }));
        }
      }
    } catch (const std::exception& e) {
      spdlog::error("monitor: {}", e.what());
    }
  }
}

void VmService::FinishAdopted(Slot& slot, const std::string& vm_id) {
  std::lock_guard lock(slot.mu);
  auto vm = store_.GetVm(vm_id);
  if (!vm.ok() || vm->state != VmState::kStarting) return;
  Progress progress = [name = vm->name](const std::string& line) {
    spdlog::info("vm {}: {}", name, line);
  };
  Log(*vm, "boot", "finishing the boot of a VM adopted while starting");
  // The boot timeout counts from the adoption: when the VMM started is not known.
  auto deadline = Clock::now() + options_.boot_timeout;
  Result<std::shared_ptr<agent::AgentClient>> agent = Unavailable("not asked yet");
  // Short waits, so that a daemon going down is not held up.
  while (!Stopping() && Clock::now() < deadline) {
    auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
    agent = Agent(slot, *vm, std::min(left, milliseconds(1000)));
    if (agent.ok() || agent.error().code() != ErrorCode::kDeadlineExceeded) break;
  }
  if (Stopping()) return;
  if (!agent.ok()) {
    (void)FailBoot(slot, *vm, VmState::kStarting, agent.error());
    return;
  }
  (void)FinishBoot(slot, std::move(vm).value(), **agent, deadline, progress);
}

bool VmService::Stopping() {
  std::lock_guard lock(monitor_mu_);
  return stopping_;
}

}  // namespace vmctl::controller
