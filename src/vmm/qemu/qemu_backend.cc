#include "vmm/qemu/qemu_backend.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "base/io.h"
#include "vmm/qemu/qmp_client.h"

namespace vmctl::vmm::qemu {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

constexpr milliseconds kStartTimeout{30000};
constexpr milliseconds kQmpTimeout{5000};

int HostTscKhz() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("cpu MHz", 0) == 0) {
      auto colon = line.find(':');
      if (colon != std::string::npos) return static_cast<int>(std::stod(line.substr(colon + 1)) * 1000);
    }
  }
  return 0;
}

std::string LogTail(const std::filesystem::path& log) {
  std::string tail = TailFile(log, 1500);
  while (!tail.empty() && (tail.back() == '\n' || tail.back() == ' ')) tail.pop_back();
  return tail.empty() ? "(no output)" : tail;
}

class QemuInstance : public Instance {
 public:
  QemuInstance(InstanceHandle handle, std::unique_ptr<QmpClient> qmp)
      : handle_(std::move(handle)), qmp_(std::move(qmp)) {}

  const InstanceHandle& handle() const override { return handle_; }

  Result<void> RequestShutdown() override { return Simple("system_powerdown"); }

  Result<void> Kill() override {
    if (!handle_.process.Alive()) return Ok();
    // quit lets QEMU flush its disk caches; SIGKILL is the fallback for a hung VMM.
    if (auto qmp = Qmp(); qmp.ok()) (void)(*qmp)->Execute("quit", {}, milliseconds(2000));
    qmp_.reset();
    if (handle_.process.WaitExit(milliseconds(3000)).ok()) return Ok();
    VMCTL_TRY(handle_.process.Signal(SIGKILL));
    return handle_.process.WaitExit(milliseconds(10000));
  }

  Result<void> Pause() override { return Simple("stop"); }
  Result<void> Resume() override { return Simple("cont"); }

  Result<std::string> QueryStatus() override {
    VMCTL_ASSIGN_OR_RETURN(QmpClient * qmp, Qmp());
    VMCTL_ASSIGN_OR_RETURN(nlohmann::json status, qmp->Execute("query-status"));
    return status.value("status", "unknown");
  }

  Result<UniqueFd> ConnectAgent() override { return ConnectUnix(handle_.agent_socket); }

 private:
  Result<void> Simple(const std::string& command) {
    VMCTL_ASSIGN_OR_RETURN(QmpClient * qmp, Qmp());
    auto r = qmp->Execute(command);
    if (!r.ok()) return r.error();
    return Ok();
  }

  // The QMP session, reconnected if it broke (QEMU accepts one QMP client at a time).
  Result<QmpClient*> Qmp() {
    if (!qmp_) {
      if (!handle_.process.Alive()) return Unavailable("the QEMU process has exited");
      VMCTL_ASSIGN_OR_RETURN(qmp_, QmpClient::Connect(handle_.api_socket, kQmpTimeout));
    }
    return qmp_.get();
  }

  InstanceHandle handle_;
  std::unique_ptr<QmpClient> qmp_;
};

class QemuBackend : public Backend {
 public:
  explicit QemuBackend(QemuOptions options) : options_(std::move(options)) {
    std::string why;
    resolved_.binary = options_.binary;
    resolved_.kvm = UseKvm(options_, &why);
    resolved_.machine = options_.machine;
    resolved_.tsc_khz = resolved_.kvm ? 0 : HostTscKhz();
  }

  std::string name() const override { return "qemu"; }

  Capabilities capabilities() const override {
    Capabilities c;
    c.pause_resume = true;
    c.graceful_shutdown = true;
    c.qcow2_disks = true;
    c.agent_transport = Capabilities::AgentTransport::kVirtioSerial;
    return c;
  }

  Result<std::unique_ptr<Instance>> Launch(const LaunchSpec& spec) override {
    if (!std::filesystem::exists(spec.kernel)) {
      return NotFound(fmt::format("kernel not found: {}", spec.kernel.string()));
    }
    auto qmp_socket = QmpSocket(spec);
    auto agent_socket = AgentSocket(spec);
    std::error_code ec;
    std::filesystem::remove(qmp_socket, ec);
    std::filesystem::remove(agent_socket, ec);
    auto argv = BuildArgv(spec, resolved_);
    spdlog::debug("qemu: {}", fmt::join(argv, " "));
    VMCTL_ASSIGN_OR_RETURN(ProcessRef process, SpawnDetached(argv, {.log_file = spec.vmm_log}));
    InstanceHandle handle{process, qmp_socket, agent_socket};
    auto cleanup = [&](const Error& error) -> Error {
      (void)process.Signal(SIGKILL);
      (void)process.WaitExit(milliseconds(10000));
      std::filesystem::remove(qmp_socket, ec);
      std::filesystem::remove(agent_socket, ec);
      return error;
    };
    auto deadline = Clock::now() + kStartTimeout;
    while (Clock::now() < deadline) {
      if (!process.Alive()) {
        return cleanup(Unavailable("qemu exited during start: " + LogTail(spec.vmm_log)));
      }
      if (std::filesystem::exists(qmp_socket)) {
        auto qmp = QmpClient::Connect(qmp_socket, kQmpTimeout);
        if (qmp.ok()) {
          auto status = (*qmp)->Execute("query-status");
          if (!status.ok()) return cleanup(status.error());
          if (status->value("status", "") != "running") {
            return cleanup(Internal("qemu started but the VM is " + status->value("status", "?")));
          }
          return std::unique_ptr<Instance>(
              new QemuInstance(std::move(handle), std::move(qmp).value()));
        }
      }
      std::this_thread::sleep_for(milliseconds(20));
    }
    return cleanup(DeadlineExceeded("qemu did not open its QMP socket within 30 s: " +
                                    LogTail(spec.vmm_log)));
  }

  Result<std::unique_ptr<Instance>> Adopt(const InstanceHandle& handle) override {
    if (!handle.process.Alive()) {
      return NotFound(fmt::format("QEMU process {} is gone", handle.process.pid));
    }
    auto qmp = QmpClient::Connect(handle.api_socket, kQmpTimeout);
    if (!qmp.ok()) return Unavailable("QEMU does not answer on QMP: " + qmp.error().message());
    return std::unique_ptr<Instance>(new QemuInstance(handle, std::move(qmp).value()));
  }

 private:
  QemuOptions options_;
  ResolvedOptions resolved_;
};

}  // namespace

bool UseKvm(const QemuOptions& options, std::string* why) {
  switch (options.accel) {
    case QemuOptions::Accel::kKvm:
      *why = "KVM requested";
      return true;
    case QemuOptions::Accel::kTcg:
      *why = "TCG requested";
      return false;
    case QemuOptions::Accel::kAuto:
      break;
  }
  int fd = ::open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (fd >= 0) {
    ::close(fd);
    *why = "/dev/kvm is usable";
    return true;
  }
  *why = fmt::format("/dev/kvm is not usable ({}), using TCG software emulation",
                     std::strerror(errno));
  return false;
}

std::unique_ptr<Backend> NewQemuBackend(QemuOptions options) {
  return std::make_unique<QemuBackend>(std::move(options));
}

}  // namespace vmctl::vmm::qemu
