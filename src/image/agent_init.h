#ifndef VMCTL_IMAGE_AGENT_INIT_H_
#define VMCTL_IMAGE_AGENT_INIT_H_

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "agent/init_plan.h"
#include "base/result.h"

namespace vmctl::image {

// Images without systemd (most OCI images) boot with the guest agent as init. They get what
// systemd images get from their packages: an sshd that makes host keys on first boot, `ip`, and
// mkfs.ext4/resize2fs for data disks. Those come from the host (Debian's openssh-server, iproute2,
// e2fsprogs), copied with their shared libraries and loader into agent::kBundleDir and relinked
// there by patchelf, so they run on any libc the image has, or none.

// Content hash of the host tools and the sshd configuration that go into such images (an image
// build input). kNotFound naming a missing tool and the package to install.
Result<std::string> AgentInitInputsKey();

// Makes the unpacked root filesystem at `root` boot with the agent as init: the bundled tools,
// /etc/vmctl/init.json planned from `config` (the image config the builder records: entrypoint,
// cmd, env, user, working_dir), the users sshd needs and the directories the agent mounts on.
// Errors name the step; kNotFound for missing host tools.
Result<void> PrepareAgentInit(const std::filesystem::path& root, const nlohmann::json& config);

// Pure helpers, exposed for tests.

// The services of an agent-init image: the image's entrypoint + cmd when it has one (run once, as
// its user, in its working dir, with its env), then host keys (waited for), then sshd (restarted).
agent::InitPlan PlanServices(const nlohmann::json& config);

// The library paths in `ldd` output, the loader included; sonames ldd could not resolve go to
// `missing`.
std::vector<std::string> ParseLdd(std::string_view output, std::vector<std::string>* missing);

}  // namespace vmctl::image

#endif  // VMCTL_IMAGE_AGENT_INIT_H_
