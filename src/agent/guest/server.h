#ifndef VMCTL_AGENT_GUEST_SERVER_H_
#define VMCTL_AGENT_GUEST_SERVER_H_

#include <filesystem>
#include <optional>
#include <string>

namespace vmctl::agent::guest {

inline constexpr const char* kVirtioPortName = "org.vmctl.agent";
inline constexpr unsigned kDefaultVsockPort = 1024;

struct ServerOptions {
  std::string version;
  // Where passwd, resolv.conf, hostname, hosts and ssh/ live.
  std::filesystem::path etc_dir = "/etc";
  // Transports; the agent serves all that are set at the same time.
  std::optional<std::filesystem::path> listen_unix;
  // A virtio-serial port device. A Unix socket path is connected to instead, which lets tests
  // play the VMM's chardev.
  std::optional<std::filesystem::path> virtio_port;
  // Find the port named kVirtioPortName under /dev and /sys (ignored if virtio_port is set).
  bool discover_virtio_port = false;
  std::optional<unsigned> vsock_port;
};

// Runs the agent's event loop until SIGTERM or SIGINT. Returns the process exit code.
int RunServer(const ServerOptions& options);

}  // namespace vmctl::agent::guest

#endif  // VMCTL_AGENT_GUEST_SERVER_H_
