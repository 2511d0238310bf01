#include "vmm/cloud_hypervisor/backend.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "vmm/cloud_hypervisor/ch_api.h"
#include "vmm/common/hybrid_vsock.h"
#include "vmm/common/vmm_process.h"

namespace vmctl::vmm::cloud_hypervisor {
namespace {

constexpr std::chrono::seconds kAgentHandshakeTimeout{5};
constexpr std::chrono::seconds kQuitTimeout{2};

std::vector<std::filesystem::path> OwnedFiles(const InstanceHandle& handle) {
  return {handle.api_socket, ApiSocketLock(handle.api_socket), handle.agent_socket};
}

class ChInstance : public Instance {
 public:
  explicit ChInstance(InstanceHandle handle)
      : handle_(std::move(handle)), api_(handle_.api_socket) {}

  const InstanceHandle& handle() const override { return handle_; }

  // The ACPI power button lets the guest shut down cleanly; Cloud Hypervisor exits when it has.
  // (vm.shutdown would stop the guest without asking it.)
  Result<void> RequestShutdown() override { return api_.PowerButton(); }

  // vmm.shutdown stops the VM and ends the process; SIGKILL covers a VMM that does not answer.
  Result<void> Kill() override {
    return StopVmmProcess(
        handle_.process, [&] { return Client(handle_.api_socket, kQuitTimeout).ShutdownVmm(); },
        OwnedFiles(handle_));
  }

  Result<void> Pause() override { return api_.Pause(); }
  Result<void> Resume() override { return api_.Resume(); }
  Result<void> ResizeDisk(size_t index, const DiskSpec&, int64_t size_bytes) override {
    return api_.ResizeDisk(index, size_bytes);
  }

  // VmState: "Created", "Running", "Paused" or "Shutdown".
  Result<std::string> QueryStatus() override {
    VMCTL_ASSIGN_OR_RETURN(nlohmann::json info, api_.Info());
    if (!info.contains("state") || !info["state"].is_string()) {
      return Internal("cloud-hypervisor vm.info answered without a state: " + info.dump());
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

class ChBackend : public Backend {
 public:
  explicit ChBackend(Options options) : options_(std::move(options)) {}

  std::string name() const override { return "cloud-hypervisor"; }

  Capabilities capabilities() const override {
    Capabilities c;
    c.pause_resume = true;
    c.snapshot_restore = true;
    c.resize_cpus = true;
    c.resize_memory = true;
    c.graceful_shutdown = true;
    c.qcow2_disks = true;
    c.online_disk_resize = true;
    c.needs_kvm = true;
    c.agent_transport = Capabilities::AgentTransport::kHybridVsock;
    return c;
  }

  Result<std::unique_ptr<Instance>> Launch(const LaunchSpec& spec) override {
    InstanceHandle handle{{}, ApiSocket(spec), VsockSocket(spec)};
    VMCTL_TRY(CheckSocketPaths({handle.api_socket, handle.agent_socket}));
    const nlohmann::json config = VmConfigFor(spec);
    spdlog::debug("vm {}: cloud-hypervisor vm.create {}", spec.vm_id, config.dump());

    Client api(handle.api_socket);
    VMCTL_ASSIGN_OR_RETURN(
        handle.process,
        StartVmmProcess({.argv = {options_.binary, "--api-socket", handle.api_socket.string()},
                         .log = spec.vmm_log,
                         .owned_files = OwnedFiles(handle),
                         .ready = [&]() -> Result<void> {
                           VMCTL_TRY(api.Ping());
                           return Ok();
                         }}));
    auto configured = api.Create(config);
    if (configured.ok()) configured = api.Boot();
    if (!configured.ok()) {
      DiscardVmmProcess(handle.process, OwnedFiles(handle));
      return std::move(configured).error();
    }
    return std::unique_ptr<Instance>(new ChInstance(std::move(handle)));
  }

  Result<std::unique_ptr<Instance>> Adopt(const InstanceHandle& handle) override {
    if (!handle.process.Alive()) {
      return NotFound(fmt::format("cloud-hypervisor process {} is gone", handle.process.pid));
    }
    if (auto ping = Client(handle.api_socket).Ping(); !ping.ok()) {
      return Unavailable("cloud-hypervisor does not answer: " + ping.error().message());
    }
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
