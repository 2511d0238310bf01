#ifndef VMCTL_VMM_CLOUD_HYPERVISOR_CH_API_H_
#define VMCTL_VMM_CLOUD_HYPERVISOR_CH_API_H_

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "base/result.h"
#include "vmm/vmm.h"

namespace vmctl::vmm::cloud_hypervisor {

// Pure translation to request bodies of ../shared/reference/cloud-hypervisor-openapi.yaml.
// Golden-tested and validated against the spec's schemas.

inline constexpr unsigned kAgentVsockPort = 1024;
inline constexpr int kGuestCid = 3;

std::filesystem::path ApiSocket(const LaunchSpec& spec);
std::filesystem::path VsockSocket(const LaunchSpec& spec);

// VmConfig for PUT /vm.create. The serial console goes to spec.console_log, the virtio console is
// off, and the agent's vsock is proxied on VsockSocket(spec).
nlohmann::json VmConfigFor(const LaunchSpec& spec);
// VmResize for PUT /vm.resize; 0 leaves that dimension alone.
nlohmann::json ResizeBody(int desired_vcpus, int64_t desired_ram_bytes);
// VmSnapshotConfig / RestoreConfig: snapshots live in a directory, addressed as file:// URLs.
nlohmann::json SnapshotBody(const std::filesystem::path& dir);
nlohmann::json RestoreBody(const std::filesystem::path& dir);

// Turns a failed answer into an Error. CH answers errors with a JSON array of strings (the
// error's cause chain), sometimes with plain text; both become one message. 404/405 mean the VM
// is in the wrong state (kFailedPrecondition), 400 a bad request, 5xx a VMM failure.
Error ErrorFromResponse(const std::string& what, unsigned status, const std::string& body);

// Client of one VMM's API socket. Stateless apart from the path; thread-compatible.
class Client {
 public:
  explicit Client(std::filesystem::path socket) : socket_(std::move(socket)) {}

  Result<nlohmann::json> Ping();
  Result<void> Create(const nlohmann::json& vm_config);
  Result<void> Boot();
  Result<nlohmann::json> Info();
  Result<void> Shutdown();
  Result<void> Reboot();
  Result<void> PowerButton();
  Result<void> Pause();
  Result<void> Resume();
  Result<void> Snapshot(const std::filesystem::path& dir);
  Result<void> Restore(const std::filesystem::path& dir);
  Result<void> Resize(int desired_vcpus, int64_t desired_ram_bytes);
  Result<void> Delete();
  Result<void> ShutdownVmm();

 private:
  Result<nlohmann::json> Call(const std::string& method, const std::string& endpoint,
                              const std::optional<nlohmann::json>& body);

  std::filesystem::path socket_;
};

}  // namespace vmctl::vmm::cloud_hypervisor

#endif  // VMCTL_VMM_CLOUD_HYPERVISOR_CH_API_H_
