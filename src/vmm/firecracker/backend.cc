#include "vmm/firecracker/backend.h"

#include <fmt/format.h>

#include "vmm/common/http_unix.h"
#include "vmm/common/vmm_process.h"
#include "vmm/firecracker/fc_api.h"

namespace vmctl::vmm::firecracker {
namespace {

class FcInstance : public Instance {
 public:
  explicit FcInstance(InstanceHandle handle)
      : handle_(std::move(handle)), api_(handle_.api_socket) {}

  const InstanceHandle& handle() const override { return handle_; }
  Result<void> RequestShutdown() override { return api_.Send(CtrlAltDelRequest()); }
  // Firecracker has no API call that ends the process; SIGKILL after the grace period does.
  Result<void> Kill() override {
    return StopVmmProcess(handle_.process, [] {});
  }
  Result<void> Pause() override { return api_.Send(PauseRequest(true)); }
  Result<void> Resume() override { return api_.Send(PauseRequest(false)); }
  Result<std::string> QueryStatus() override {
    VMCTL_ASSIGN_OR_RETURN(nlohmann::json info, api_.Describe());
    return info.value("state", "unknown");
  }
  Result<UniqueFd> ConnectAgent() override {
    return ConnectHybridVsock(handle_.agent_socket, kAgentVsockPort);
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
    c.pause_resume = c.snapshot_restore = c.graceful_shutdown = c.needs_kvm = true;
    c.agent_transport = Capabilities::AgentTransport::kHybridVsock;
    return c;
  }

  Result<std::unique_ptr<Instance>> Launch(const LaunchSpec& spec) override {
    VMCTL_ASSIGN_OR_RETURN(std::vector<Request> sequence, BootSequence(spec));
    auto api_socket = ApiSocket(spec);
    auto vsock = VsockSocket(spec);
    Client api(api_socket);
    VMCTL_ASSIGN_OR_RETURN(
        ProcessRef process,
        StartVmmProcess({options_.binary, "--api-sock", api_socket.string()}, spec.console_log,
                        [&]() -> Result<void> {
                          VMCTL_TRY(api.Describe());
                          return Ok();
                        },
                        {api_socket, vsock}));
    for (const auto& request : sequence) {
      if (auto r = api.Send(request); !r.ok()) {
        DiscardVmmProcess(process, {api_socket, vsock});
        return r.error();
      }
    }
    return std::unique_ptr<Instance>(new FcInstance({process, api_socket, vsock}));
  }

  Result<std::unique_ptr<Instance>> Adopt(const InstanceHandle& handle) override {
    if (!handle.process.Alive()) {
      return NotFound(fmt::format("firecracker process {} is gone", handle.process.pid));
    }
    auto info = Client(handle.api_socket).Describe();
    if (!info.ok()) return Unavailable("firecracker does not answer: " + info.error().message());
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
