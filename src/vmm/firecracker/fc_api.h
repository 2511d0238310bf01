#ifndef VMCTL_VMM_FIRECRACKER_FC_API_H_
#define VMCTL_VMM_FIRECRACKER_FC_API_H_

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "base/result.h"
#include "vmm/vmm.h"

namespace vmctl::vmm::firecracker {

// The Firecracker REST API (../shared/reference/firecracker-swagger.yaml): pure translation to
// requests, golden-tested and validated against the spec's schemas, and a client for one VMM's
// API socket.

inline constexpr unsigned kAgentVsockPort = 1024;
inline constexpr int kGuestCid = 3;
inline constexpr int kMaxVcpus = 32;  // MachineConfiguration.vcpu_count maximum

std::filesystem::path ApiSocket(const LaunchSpec& spec);
std::filesystem::path VsockSocket(const LaunchSpec& spec);

struct Request {
  std::string method;  // PUT or PATCH
  std::string path;
  nlohmann::json body;
  // Saving or loading guest memory takes longer than configuring a device.
  std::chrono::milliseconds timeout = std::chrono::seconds(10);
};

// The pre-boot configuration in order, ending with InstanceStart. kInvalidArgument for what
// Firecracker cannot do: qcow2 disks, more than 32 vCPUs.
Result<std::vector<Request>> BootSequence(const LaunchSpec& spec);

Request PauseRequest(bool paused);  // PATCH /vm
// PATCH /drives/{id} naming the drive's file again, which makes Firecracker re-read its size and
// tell the guest (disk `index` of the LaunchSpec).
Request UpdateDriveRequest(size_t index, const std::filesystem::path& path);
// Ctrl-Alt-Del is how a Firecracker guest is asked to shut down (there is no ACPI power button):
// the guest reboots, and Firecracker exits on a guest reboot.
Request CtrlAltDelRequest();
// The VM must be paused; a full snapshot (device state + all guest memory).
Request SnapshotCreateRequest(const std::filesystem::path& snapshot,
                              const std::filesystem::path& memory);
// Only on a fresh Firecracker process, instead of the boot sequence.
Request SnapshotLoadRequest(const std::filesystem::path& snapshot,
                            const std::filesystem::path& memory, bool resume);

// One Error for a failed answer: Firecracker's {"fault_message": "..."} (or plain text), prefixed
// with the request. Firecracker answers 400 both for bad input (kInvalidArgument) and for calls
// made in the wrong phase, "not supported before/after starting the microVM"
// (kFailedPrecondition); anything else is kInternal.
Error ErrorFromResponse(const Request& request, unsigned status, const std::string& body);

// Client of one Firecracker API socket: one connection per call. Transport failures come from
// HttpUnix (kUnavailable when the VMM is gone, kDeadlineExceeded on timeout).
class Client {
 public:
  explicit Client(std::filesystem::path socket) : socket_(std::move(socket)) {}
  // GET /: InstanceInfo, whose state is "Not started", "Running" or "Paused".
  Result<nlohmann::json> Describe();
  Result<void> Send(const Request& request);

 private:
  std::filesystem::path socket_;
};

}  // namespace vmctl::vmm::firecracker

#endif  // VMCTL_VMM_FIRECRACKER_FC_API_H_
