#ifndef VMCTL_AGENT_GUEST_BOOT_H_
#define VMCTL_AGENT_GUEST_BOOT_H_

#include <sys/types.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "base/unique_fd.h"

namespace vmctl::agent::guest {

// What `systemctl is-system-running` printed, judged: systemd's start-up job queue is done
// ("running", "degraded", "maintenance"), the machine is already going down ("stopping"), or
// there is no systemd ("offline"); anything else ("initializing", "starting", "unknown", nothing)
// means ask again. Pure.
struct SystemState {
  bool finished = false;
  std::string state;  // the last word printed, "" if none
};
SystemState ParseSystemState(std::string_view output);

// Watches systemd's boot for the `boot_status` op (docs/agent-protocol.md): a child
// `systemctl is-system-running --wait` returns once the start-up job queue is empty, whatever
// units the image has and in whichever order they start. A child that ends too early (systemd
// not answering yet) is started again a second later. Runs on the agent's single thread: the
// agent reaps every child and hands this one's exit to OnExit.
class SystemdBootWatch {
 public:
  explicit SystemdBootWatch(std::string systemctl) : systemctl_(std::move(systemctl)) {}

  void Start();
  // True if pid was the watcher child.
  bool OnExit(pid_t pid, int status);
  // Starts the child again when due; the milliseconds until then, or -1.
  int Tick();
  // {"finished", "state", "init": "systemd", "detail"}.
  nlohmann::json Status() const;

 private:
  std::string systemctl_;
  pid_t pid_ = 0;
  UniqueFd output_;
  bool finished_ = false;
  std::string state_ = "starting";
  std::string detail_;
  bool retry_ = false;
  std::chrono::steady_clock::time_point retry_at_{};
};

}  // namespace vmctl::agent::guest

#endif  // VMCTL_AGENT_GUEST_BOOT_H_
