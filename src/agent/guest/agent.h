#ifndef VMCTL_AGENT_GUEST_AGENT_H_
#define VMCTL_AGENT_GUEST_AGENT_H_

#include <filesystem>
#include <memory>
#include <string>

#include "agent/guest/ops.h"
#include "agent/init_plan.h"

namespace vmctl::agent::guest {

struct AgentConfig {
  // virtio-serial port; empty: discover the port named org.vmctl.agent under
  // /sys/class/virtio-ports.
  std::filesystem::path virtio_port;
  bool use_virtio = true;
  bool use_vsock = true;
  int vsock_port = 1024;
  // Extra Unix socket to serve on (tests run the agent on the host this way).
  std::filesystem::path listen_unix;
  // Tests on the host: `shutdown` ends the agent process (as a VM's VMM ends when the guest powers
  // off) instead of powering off the machine.
  bool simulate_poweroff = false;
  // PID 1 of an image without an init system: mounts, services of the init plan, power off.
  bool init = false;
  std::filesystem::path init_plan = kInitPlanPath;
  // Asked when systemd has finished booting (`boot_status`); empty where systemd is not init.
  std::string systemctl;
  OpsConfig ops;
};

// Serves the agent protocol (docs/agent-protocol.md) on every configured transport until the
// process is killed. Single-threaded: one poll loop multiplexes connections, child processes and
// their output. Returns only on a fatal setup error.
int RunAgent(const AgentConfig& config);

}  // namespace vmctl::agent::guest

#endif  // VMCTL_AGENT_GUEST_AGENT_H_
