#include "vmm/cloud_hypervisor/backend.h"

#include <fmt/format.h>

#include "vmm/cloud_hypervisor/ch_api.h"
#include "vmm/common/http_unix.h"
#include "vmm/common/vmm_process.h"

namespace vmctl::vmm::cloud_hypervisor {
namespace {

class ChInstance : public Instance {
 public:
  explicit ChInstance(InstanceHandle handle)
      : handle_(std::move(handle)), api_(handle_.api_socket) {}

  const InstanceHandle& handle() const override { return handle_; }
  // ACPI power button: the guest shuts down cleanly (vm.shutdown would stop it hard).
  Result<void> RequestShutdown() override { return api_.PowerButton(); }
  Result<void> Kill() override {
    return StopVmmProcess(handle_.process, [&] { (void)api_.ShutdownVmm(); });
  }
  Result<void> Pause() override { return api_.Pause(); }
  Result<void> Resume() override { return api_.Resume(); }
  Result<std::string> QueryStatus() override {
    VMCTL_ASSIGN_OR_RETURN(nlohmann::json info, api_.Info());
    return info.value("state", "unknown");
  }
  Result<UniqueFd> ConnectAgent() override {
    return ConnectHybridVsock(handle_.agent_socket, kAgentVsockPort);
  }

 private:
  InstanceHandle handle_;
  Client api_;
};

class ChBackend : public Backend {
 public:
  explicit ChBackend(Options options) : options_(std::move(options)) {}

  std::string name() const override { return "cloud-hypervisor"; }
  Capabilities capabilities() const override {
    Capabilities c;
    c.pause_resume = c.snapshot_restore = c.resize_cpus = c.resize_memory = true;
    c.graceful_shutdown = c.qcow2_disks = c.needs_kvm = true;
    c.agent_transport = Capabilities::AgentTransport::kHybridVsock;
    return c;
  }

  Result<std::unique_ptr<Instance>> Launch(const LaunchSpec& spec) override {
    auto api_socket = ApiSocket(spec);
    auto vsock = VsockSocket(spec);
    Client api(api_socket);
    VMCTL_ASSIGN_OR_RETURN(
        ProcessRef process,
        StartVmmProcess({options_.binary, "--api-socket", api_socket.string()}, spec.vmm_log,
                        [&]() -> Result<void> {
                          VMCTL_TRY(api.Ping());
                          return Ok();
                        },
                        {api_socket, vsock}));
    auto fail = [&](const Error& e) {
      DiscardVmmProcess(process, {api_socket, vsock});
      return e;
    };
    if (auto r = api.Create(VmConfigFor(spec)); !r.ok()) return fail(r.error());
    if (auto r = api.Boot(); !r.ok()) return fail(r.error());
    return std::unique_ptr<Instance>(new ChInstance({process, api_socket, vsock}));
  }

  Result<std::unique_ptr<Instance>> Adopt(const InstanceHandle& handle) override {
    if (!handle.process.Alive()) {
      return NotFound(fmt::format("cloud-hypervisor process {} is gone", handle.process.pid));
    }
    auto ping = Client(handle.api_socket).Ping();
    if (!ping.ok())
      return Unavailable("cloud-hypervisor does not answer: " + ping.error().message());
    return std::unique_ptr<Instance>(new ChInstance(handle));
  }

 private:
  Options options_;
};

}  // namespace

std::unique_ptr<Backend> NewCloudHypervisorBackend(Options options) {
  return std::make_unique<ChBackend>(std::move(options));
}

}  // namespace vmctl::vmm::cloud_hypervisor
