#include "vmm/firecracker/backend.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "vmm/common/hybrid_vsock.h"
#include "vmm/common/vmm_process.h"
#include "vmm/firecracker/fc_api.h"

namespace vmctl::vmm::firecracker {
namespace {

constexpr std::chrono::seconds kAgentHandshakeTimeout{5};

std::vector<std::filesystem::path> OwnedFiles(const InstanceHandle& handle) {
  return {handle.api_socket, handle.agent_socket};
}

class FcInstance : public Instance {
 public:
  explicit FcInstance(InstanceHandle handle)
      : handle_(std::move(handle)), api_(handle_.api_socket) {}

  const InstanceHandle& handle() const override { return handle_; }

  Result<void> RequestShutdown() override { return api_.Send(CtrlAltDelRequest()); }

  // Firecracker has no API call that ends the process, and nothing to flush: SIGKILL.
  Result<void> Kill() override { return StopVmmProcess(handle_.process, {}, OwnedFiles(handle_)); }

  Result<void> Pause() override { return api_.Send(PauseRequest(true)); }
  Result<void> Resume() override { return api_.Send(PauseRequest(false)); }
  Result<void> ResizeDisk(size_t index, const DiskSpec& disk, int64_t) override {
    return api_.Send(UpdateDriveRequest(index, disk.path));
  }

  // InstanceInfo.state: "Not started", "Running" or "Paused".
  Result<std::string> QueryStatus() override {
    VMCTL_ASSIGN_OR_RETURN(nlohmann::json info, api_.Describe());
    if (!info.contains("state") || !info["state"].is_string()) {
      return Internal("firecracker GET / answered without a state: " + info.dump());
    }
    return info["state"].get<std::string>();
  }

  Result<UniqueFd> ConnectAgent() override {
    return ConnectHybridVsock(handle_.agent_socket, kAgentVsockPort, kAgentHandshakeTimeout);
  }

 private:
  InstanceHandle handle_;
  Client api_;
};

class FcBackend : public Backend {
 public:
  explicit FcBackend(Options options) : options_(std::move(options)) {}

  std::string name() const override { return "firecracker"; }

  Capabilities capabilities() const override {
    Capabilities c;
    c.pause_resume = true;
    c.snapshot_restore = true;
    c.graceful_shutdown = true;
    c.qcow2_disks = false;
    c.online_disk_resize = true;
    c.needs_kvm = true;
    c.agent_transport = Capabilities::AgentTransport::kHybridVsock;
    return c;
  }

  Result<std::unique_ptr<Instance>> Launch(const LaunchSpec& spec) override {
    VMCTL_ASSIGN_OR_RETURN(std::vector<Request> sequence, BootSequence(spec));
    InstanceHandle handle{{}, ApiSocket(spec), VsockSocket(spec)};
    VMCTL_TRY(CheckSocketPaths({handle.api_socket, handle.agent_socket}));

    Client api(handle.api_socket);
    VMCTL_ASSIGN_OR_RETURN(
        handle.process,
        StartVmmProcess({.argv = {options_.binary, "--api-sock", handle.api_socket.string()},
                         .log = spec.console_log,
                         .owned_files = OwnedFiles(handle),
                         .ready = [&]() -> Result<void> {
                           VMCTL_TRY(api.Describe());
                           return Ok();
                         }}));
    for (const Request& request : sequence) {
      spdlog::debug("vm {}: firecracker {} {} {}", spec.vm_id, request.method, request.path,
                    request.body.dump());
      if (auto sent = api.Send(request); !sent.ok()) {
        DiscardVmmProcess(handle.process, OwnedFiles(handle));
        return std::move(sent).error();
      }
    }
    return std::unique_ptr<Instance>(new FcInstance(std::move(handle)));
  }

  Result<std::unique_ptr<Instance>> Adopt(const InstanceHandle& handle) override {
    if (!handle.process.Alive()) {
      return NotFound(fmt::format("firecracker process {} is gone", handle.process.pid));
    }
    if (auto info = Client(handle.api_socket).Describe(); !info.ok()) {
      return Unavailable("firecracker does not answer: " + info.error().message());
    }
    return std::unique_ptr<Instance>(new FcInstance(handle));
  }

 private:
  Options options_;
};

}  // namespace

std::unique_ptr<Backend> NewFirecrackerBackend(Options options) {
  return std::make_unique<FcBackend>(std::move(options));
}

}  // namespace vmctl::vmm::firecracker
