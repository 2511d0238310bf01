#ifndef VMCTL_VMM_CLOUD_HYPERVISOR_CH_API_H_
#define VMCTL_VMM_CLOUD_HYPERVISOR_CH_API_H_

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "base/result.h"
#include "vmm/vmm.h"

namespace vmctl::vmm::cloud_hypervisor {

// The Cloud Hypervisor REST API (../shared/reference/cloud-hypervisor-openapi.yaml, base path
// /api/v1): pure translation to request bodies, golden-tested and validated against the spec's
// schemas, and a client for one VMM's API socket.

inline constexpr unsigned kAgentVsockPort = 1024;
inline constexpr int kGuestCid = 3;

std::filesystem::path ApiSocket(const LaunchSpec& spec);
// Cloud Hypervisor takes a lock file beside its API socket (<api socket>.lock).
std::filesystem::path ApiSocketLock(const std::filesystem::path& api_socket);
std::filesystem::path VsockSocket(const LaunchSpec& spec);

// VmConfig for PUT /vm.create. The serial port goes to spec.console_log, the virtio console is
// off, the guest's vsock is proxied on VsockSocket(spec).
nlohmann::json VmConfigFor(const LaunchSpec& spec);
// VmResize for PUT /vm.resize; nullopt leaves that dimension alone.
nlohmann::json ResizeBody(std::optional<int> desired_vcpus, std::optional<int64_t> desired_ram);
// VmResizeDisk for PUT /vm.resize-disk: disk `index` of the LaunchSpec (id "disk<index>").
nlohmann::json ResizeDiskBody(size_t index, int64_t size_bytes);
// VmSnapshotConfig / RestoreConfig: a snapshot is a directory, addressed as a file:// URL.
nlohmann::json SnapshotBody(const std::filesystem::path& dir);
nlohmann::json RestoreBody(const std::filesystem::path& dir);

// One Error for a failed answer. Cloud Hypervisor answers errors with the error's cause chain as
// a JSON array of strings (older releases: plain text); either becomes one message, prefixed with
// the endpoint. 404 and 405 (VM not created / not booted), 429 (a CPU removal is pending) are
// kFailedPrecondition, other 4xx kInvalidArgument, anything else kInternal.
Error ErrorFromResponse(const std::string& endpoint, unsigned status, const std::string& body);

// Client of one VMM's API socket: one connection per call. Transport failures come from HttpUnix
// (kUnavailable when the VMM is gone, kDeadlineExceeded on timeout).
class Client {
 public:
  explicit Client(std::filesystem::path socket,
                  std::chrono::milliseconds timeout = std::chrono::seconds(10))
      : socket_(std::move(socket)), timeout_(timeout) {}

  Result<nlohmann::json> Ping();  // VmmPingResponse
  Result<void> Create(const nlohmann::json& vm_config);
  Result<void> Boot();
  Result<nlohmann::json> Info();  // VmInfo
  // Stops the guest at once, like pulling the plug; PowerButton asks it to power off.
  Result<void> Shutdown();
  Result<void> PowerButton();
  Result<void> Reboot();
  Result<void> Pause();
  Result<void> Resume();
  // The VM must be paused. Saving or loading guest memory takes time: these wait longer.
  Result<void> Snapshot(const std::filesystem::path& dir);
  Result<void> Restore(const std::filesystem::path& dir);
  Result<void> Resize(std::optional<int> desired_vcpus, std::optional<int64_t> desired_ram);
  Result<void> ResizeDisk(size_t index, int64_t size_bytes);
  Result<void> Delete();
  Result<void> ShutdownVmm();

 private:
  Result<nlohmann::json> Call(const std::string& method, const std::string& endpoint,
                              const std::optional<nlohmann::json>& body,
                              std::chrono::milliseconds timeout);
  Result<void> Put(const std::string& endpoint, const std::optional<nlohmann::json>& body = {});

  std::filesystem::path socket_;
  std::chrono::milliseconds timeout_;
};

}  // namespace vmctl::vmm::cloud_hypervisor

#endif  // VMCTL_VMM_CLOUD_HYPERVISOR_CH_API_H_
