#ifndef VMCTL_AGENT_GUEST_VIRTIO_PORT_H_
#define VMCTL_AGENT_GUEST_VIRTIO_PORT_H_

#include <filesystem>
#include <optional>
#include <string_view>

namespace vmctl::agent::guest {

// Finds the device node of the virtio-serial port with the given name: udev's link
// dev_dir/virtio-ports/NAME if present, else the vportNpM whose sys_dir/vportNpM/name matches
// (early in boot, before udev ran). nullopt if the port does not exist (yet).
std::optional<std::filesystem::path> FindVirtioPort(const std::filesystem::path& dev_dir,
                                                    const std::filesystem::path& sys_dir,
                                                    std::string_view name);

}  // namespace vmctl::agent::guest

#endif  // VMCTL_AGENT_GUEST_VIRTIO_PORT_H_
