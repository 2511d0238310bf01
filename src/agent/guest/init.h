#ifndef VMCTL_AGENT_GUEST_INIT_H_
#define VMCTL_AGENT_GUEST_INIT_H_

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <vector>

#include "agent/init_plan.h"
#include "base/result.h"

namespace vmctl::agent::guest {

// The agent as PID 1, for images without an init system. The initramfs starts the agent in place
// of /sbin/init when the image carries an init plan (agent/init_plan.h). Everything here runs on
// the agent's single thread.

// Mounts /proc, /sys, /dev/pts, /dev/shm and /run, brings up loopback and sets a PATH that ends
// in the bundled tools. Failures are logged to the console, not fatal: a VM with a missing
// mount still answers the host.
void SetUpAsInit();

// Grows the root ext4 filesystem to its disk online (EXT4_IOC_RESIZE_FS), so images need no
// resize2fs. Errors: kInternal with the failing call.
Result<void> GrowRootFilesystem();

// Starts the plan's services and restarts those that ask for it. Owns no processes beyond
// tracking their pids: the agent reaps every child and reports services' exits here.
class Supervisor {
 public:
  explicit Supervisor(InitPlan plan);

  // Starts services in plan order, up to the first that later ones wait for.
  void Start();
  // True if pid was a service: it is restarted after a second if it asks for that, and the plan
  // continues past it if others waited for it.
  bool OnExit(pid_t pid, int status);
  // Restarts the services that are due; returns the milliseconds until the next one, or -1.
  int Tick();
  // The image's equivalent of a finished boot: every service started, and those that later ones
  // wait for have exited. {"finished", "state", "init": "vmctl-agent", "detail"}.
  nlohmann::json Status() const;

 private:
  struct Running {
    Service service;
    pid_t pid = 0;
    std::chrono::steady_clock::time_point restart_at{};
    bool pending_restart = false;
  };
  void StartAt(size_t index);
  void Continue();

  std::vector<Running> services_;
  size_t next_ = 0;  // first service not started yet
  bool waiting_ = false;
};

// Powers the VM off (or reboots it) the way an init system would: SIGTERM to every process, up
// to five seconds' grace, SIGKILL, sync, root remounted read-only. Runs in a child process so the
// agent keeps reaping while others exit; returns at once.
void PowerOffAsInit(bool reboot);

}  // namespace vmctl::agent::guest

#endif  // VMCTL_AGENT_GUEST_INIT_H_
