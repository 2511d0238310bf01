#ifndef VMCTL_VMM_FIRECRACKER_FC_API_H_
#define VMCTL_VMM_FIRECRACKER_FC_API_H_

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "base/result.h"
#include "vmm/vmm.h"

namespace vmctl::vmm::firecracker {

// Pure translation to requests of ../shared/reference/firecracker-swagger.yaml. Golden-tested
// and validated against the spec's schemas.

inline constexpr unsigned kAgentVsockPort = 1024;
inline constexpr int kGuestCid = 3;

std::filesystem::path ApiSocket(const LaunchSpec& spec);
std::filesystem::path VsockSocket(const LaunchSpec& spec);

struct Request {
  std::string method;  // PUT or PATCH
  std::string path;
  nlohmann::json body;
};

// The pre-boot configuration, in order, ending with InstanceStart. kInvalidArgument for what
// Firecracker cannot do: qcow2 disks, more than 32 vCPUs.
Result<std::vector<Request>> BootSequence(const LaunchSpec& spec);

Request PauseRequest(bool paused);  // PATCH /vm
Request CtrlAltDelRequest();        // the guest's clean shutdown on x86
Request SnapshotCreateRequest(const std::filesystem::path& snapshot,
                              const std::filesystem::path& memory);
Request SnapshotLoadRequest(const std::filesystem::path& snapshot,
                            const std::filesystem::path& memory, bool resume);

// Firecracker's {"fault_message": "..."} answers (or plain text) as one clear Error: 400 is a bad
// request or wrong state (kInvalidArgument), anything else a VMM failure (kInternal).
Error ErrorFromResponse(const Request& request, unsigned status, const std::string& body);

// Client of one Firecracker API socket.
class Client {
 public:
  explicit Client(std::filesystem::path socket) : socket_(std::move(socket)) {}
  // GET /: InstanceInfo (state "Not started", "Running" or "Paused").
  Result<nlohmann::json> Describe();
  Result<void> Send(const Request& request);

 private:
  std::filesystem::path socket_;
};

}  // namespace vmctl::vmm::firecracker

#endif  // VMCTL_VMM_FIRECRACKER_FC_API_H_
