#ifndef VMCTL_AGENT_GUEST_OPS_H_
#define VMCTL_AGENT_GUEST_OPS_H_

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "base/result.h"

namespace vmctl::agent::guest {

// The agent's one-shot operations (everything but exec), each answering a request's arguments
// with a result object. They run on the agent's single thread and may block briefly.

struct OpsConfig {
  std::filesystem::path ssh_dir = "/etc/ssh";
  std::filesystem::path passwd = "/etc/passwd";
  std::filesystem::path root = "/";  // prefix for files written by configure_network
};

nlohmann::json HelloInfo();
Result<nlohmann::json> ConfigureNetwork(const nlohmann::json& args, const OpsConfig& config);
Result<nlohmann::json> SetAuthorizedKeys(const nlohmann::json& args, const OpsConfig& config);
Result<nlohmann::json> HostKeys(const OpsConfig& config);
Result<nlohmann::json> Stats();
Result<nlohmann::json> TimeSync(const nlohmann::json& args);
// {"device", "mountpoint"}: formats a blank (all-zero head) device as ext4 on first use, mounts
// it, and grows the filesystem to the device. Refuses to format a device that holds anything
// else. Answers {"formatted", "size_bytes" (of the filesystem)}.
Result<nlohmann::json> PrepareDisk(const nlohmann::json& args);
// {"device", "size_bytes"?}: waits until the device shows size_bytes (the host just grew it),
// then grows its mounted ext4 online. Answers {"size_bytes"} of the filesystem.
Result<nlohmann::json> GrowFilesystem(const nlohmann::json& args);

}  // namespace vmctl::agent::guest

#endif  // VMCTL_AGENT_GUEST_OPS_H_
