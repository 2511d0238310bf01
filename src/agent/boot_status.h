#ifndef VMCTL_AGENT_BOOT_STATUS_H_
#define VMCTL_AGENT_BOOT_STATUS_H_

#include <nlohmann/json.hpp>
#include <string>

#include "base/result.h"

namespace vmctl::agent {

// The agent's answer to `boot_status` (docs/agent-protocol.md): whether the guest has finished
// booting, as its init system tells.
struct BootStatus {
  bool finished = false;
  std::string state;  // systemd's SystemState ("starting", "running", "degraded", ...)
  std::string init;   // "systemd", "vmctl-agent" (the agent is init) or "none"
  std::string detail;
};

// Pure and total: the reply comes from the guest, which may send anything. kInternal naming the
// field that is missing or of the wrong type.
Result<BootStatus> ParseBootStatus(const nlohmann::json& reply);

}  // namespace vmctl::agent

#endif  // VMCTL_AGENT_BOOT_STATUS_H_
