#include "vmm/qemu/qemu_backend.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <functional>
#include <thread>

#include "base/io.h"
#include "base/process.h"
#include "vmm/qemu/qmp_client.h"

namespace vmctl::vmm::qemu {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

constexpr milliseconds kStartTimeout{30000};
constexpr milliseconds kQmpTimeout{5000};
constexpr milliseconds kQuitGrace{3000};
constexpr milliseconds kKillWait{10000};
// sockaddr_un.sun_path holds 108 bytes including the terminating NUL.
constexpr size_t kMaxSocketPath = 107;
constexpr size_t kLogTailBytes = 2000;

// The host's TSC frequency as the kernel reports it ("cpu MHz : 2096.027"), 0 if unknown.
int64_t HostTscKhz() {
  auto cpuinfo = ReadFile("/proc/cpuinfo");
  if (!cpuinfo.ok()) return 0;
  std::string_view text = *cpuinfo;
  auto at = text.find("cpu MHz");
  if (at == std::string_view::npos) return 0;
  auto colon = text.find(':', at);
  if (colon == std::string_view::npos) return 0;
  auto begin = text.find_first_not_of(" \t", colon + 1);
  if (begin == std::string_view::npos) return 0;
  double mhz = 0;
  auto [end, ec] = std::from_chars(text.data() + begin, text.data() + text.size(), mhz);
  if (ec != std::errc()) return 0;
  return static_cast<int64_t>(mhz * 1000);
}

uint64_t FileSize(const std::filesystem::path& path) {
  std::error_code ec;
  auto size = std::filesystem::file_size(path, ec);
  return ec ? 0 : size;
}

// What QEMU wrote to its log since `start`, at most the last kLogTailBytes. The log is appended to
// across restarts of the VM, and an older run's complaints would mislead.
std::string OutputSince(const std::filesystem::path& log, uint64_t start) {
  auto content = ReadFile(log);
  std::string_view out;
  if (content.ok() && content->size() > start) out = std::string_view(*content).substr(start);
  if (out.size() > kLogTailBytes) out = out.substr(out.size() - kLogTailBytes);
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.remove_suffix(1);
  return out.empty() ? "(no output)" : std::string(out);
}

void RemoveSockets(const InstanceHandle& handle) {
  std::error_code ec;
  std::filesystem::remove(handle.api_socket, ec);
  std::filesystem::remove(handle.agent_socket, ec);
}

// SIGKILLs the process, waits for it and removes its sockets (QEMU only unlinks them itself on a
// clean exit).
void Discard(const InstanceHandle& handle) {
  (void)handle.process.Signal(SIGKILL);
  (void)handle.process.WaitExit(kKillWait);
  RemoveSockets(handle);
}

class QemuInstance : public Instance {
 public:
  QemuInstance(InstanceHandle handle, std::unique_ptr<QmpClient> qmp)
      : handle_(std::move(handle)), qmp_(std::move(qmp)) {}

  const InstanceHandle& handle() const override { return handle_; }

  // ACPI power button: the guest decides (systemd-logind powers off; a guest without an ACPI
  // handler ignores it, so callers bound the wait and fall back to Kill).
  Result<void> RequestShutdown() override { return Command("system_powerdown"); }

  Result<void> Kill() override {
    if (handle_.process.Alive()) {
      // quit lets QEMU flush its disk caches and close its sockets; SIGKILL is the fallback for a
      // hung VMM (or one whose monitor is held by another client).
      (void)Call("quit", nlohmann::json::object(), milliseconds(2000));
      if (!handle_.process.WaitExit(kQuitGrace).ok()) {
        VMCTL_TRY(handle_.process.Signal(SIGKILL));
        VMCTL_TRY(handle_.process.WaitExit(kKillWait));
      }
    }
    qmp_.reset();
    RemoveSockets(handle_);
    return Ok();
  }

  Result<void> Pause() override { return Command("stop"); }
  Result<void> Resume() override { return Command("cont"); }

  // block_resize truncates the image to the size and signals the guest's virtio-blk; the size
  // equals the volume's, so for a grown raw file or block device it only tells the guest.
  Result<void> ResizeDisk(size_t index, const DiskSpec&, int64_t size_bytes) override {
    VMCTL_TRY(Call("block_resize", {{"device", fmt::format("disk{}", index)}, {"size", size_bytes}},
                   std::chrono::seconds(30)));
    return Ok();
  }

  Result<std::string> QueryStatus() override {
    VMCTL_ASSIGN_OR_RETURN(nlohmann::json status, Call("query-status", nlohmann::json::object(),
                                                       std::chrono::seconds(10)));
    if (!status.contains("status") || !status["status"].is_string()) {
      return Internal("QEMU query-status answered without a status: " + status.dump());
    }
    return status["status"].get<std::string>();
  }

  // virtio-serial has one host connection: while another is open, QEMU leaves this one in the
  // listen backlog (it connects but no bytes flow) until the other closes.
  Result<UniqueFd> ConnectAgent() override {
    auto fd = ConnectUnix(handle_.agent_socket);
    if (!fd.ok()) return Unavailable("agent socket: " + fd.error().message());
    return fd;
  }

 private:
  Result<void> Command(const std::string& command) {
    VMCTL_TRY(Call(command, nlohmann::json::object(), std::chrono::seconds(10)));
    return Ok();
  }

  // Runs a QMP command on the one connection this instance keeps, connecting lazily. A dropped
  // connection (the socket broke, or QEMU closed it) is replaced once; the commands used here
  // are idempotent, so resending one that may have reached QEMU is safe.
  Result<nlohmann::json> Call(const std::string& command, const nlohmann::json& arguments,
                              milliseconds timeout) {
    if (qmp_) {
      auto result = qmp_->Execute(command, arguments, timeout);
      if (result.ok() || result.error().code() != ErrorCode::kUnavailable) return result;
      qmp_.reset();
    }
    if (!handle_.process.Alive()) {
      return Unavailable(fmt::format("QEMU process {} has exited", handle_.process.pid));
    }
    VMCTL_ASSIGN_OR_RETURN(qmp_, QmpClient::Connect(handle_.api_socket, kQmpTimeout));
    auto result = qmp_->Execute(command, arguments, timeout);
    if (!result.ok() && result.error().code() == ErrorCode::kUnavailable) qmp_.reset();
    return result;
  }

  InstanceHandle handle_;
  std::unique_ptr<QmpClient> qmp_;
};

class QemuBackend : public Backend {
 public:
  explicit QemuBackend(QemuOptions options) {
    AccelDecision accel =
        ResolveAccel(options.accel, "/dev/kvm", [&] { return ProbeKvm(options.binary); });
    argv_options_ = {.binary = std::move(options.binary),
                     .accel = accel.accel,
                     .machine = options.machine,
                     .tsc_khz = accel.accel == Accel::kTcg ? HostTscKhz() : 0};
  }

  std::string name() const override { return "qemu"; }

  Capabilities capabilities() const override {
    Capabilities c;
    c.pause_resume = true;
    c.graceful_shutdown = true;
    c.qcow2_disks = true;
    c.online_disk_resize = true;
    c.needs_kvm = false;
    c.agent_transport = Capabilities::AgentTransport::kVirtioSerial;
    return c;
  }

  Result<std::unique_ptr<Instance>> Launch(const LaunchSpec& spec) override {
    InstanceHandle handle{{}, QmpSocket(spec), AgentSocket(spec)};
    for (const auto& socket : {handle.api_socket, handle.agent_socket}) {
      if (socket.string().size() > kMaxSocketPath) {
        return InvalidArgument(
            fmt::format("socket path {} is longer than {} bytes: use a shorter "
                        "runtime directory",
                        socket.string(), kMaxSocketPath));
      }
    }
    // Left over if an earlier QEMU of this VM was SIGKILLed.
    RemoveSockets(handle);
    const uint64_t log_start = FileSize(spec.vmm_log);
    auto output = [&] { return OutputSince(spec.vmm_log, log_start); };

    std::vector<std::string> argv = BuildArgv(spec, argv_options_);
    spdlog::debug("vm {}: {}", spec.vm_id, fmt::join(argv, " "));
    auto process = SpawnDetached(argv, {.log_file = spec.vmm_log});
    if (!process.ok()) {
      if (process.error().code() == ErrorCode::kNotFound) {
        return process.error().WithContext("cannot start QEMU");
      }
      return Error(process.error().code(),
                   fmt::format("cannot start QEMU: {}: {}", process.error().message(), output()));
    }
    handle.process = *process;

    auto qmp = WaitForQmp(handle, output);
    if (!qmp.ok()) {
      Discard(handle);
      return qmp.error();
    }
    // Without -S the guest CPUs start as soon as QEMU's main loop runs, which is also when QMP
    // greets: anything but "running" means the start went wrong.
    auto status = (*qmp)->Execute("query-status", nlohmann::json::object(), kQmpTimeout);
    if (!status.ok() || status->value("status", "") != "running") {
      Discard(handle);
      if (!status.ok()) {
        return Error(status.error().code(),
                     fmt::format("qemu started but {}: {}", status.error().message(), output()));
      }
      return Internal(
          fmt::format("qemu started but the VM is {}: {}", status->value("status", "?"), output()));
    }
    return std::unique_ptr<Instance>(new QemuInstance(std::move(handle), std::move(qmp).value()));
  }

  Result<std::unique_ptr<Instance>> Adopt(const InstanceHandle& handle) override {
    if (!handle.process.Alive()) {
      return NotFound(fmt::format("QEMU process {} is gone", handle.process.pid));
    }
    auto qmp = QmpClient::Connect(handle.api_socket, kQmpTimeout);
    if (!qmp.ok()) {
      return Unavailable(fmt::format("QEMU process {} does not answer on QMP: {}",
                                     handle.process.pid, qmp.error().message()));
    }
    return std::unique_ptr<Instance>(new QemuInstance(handle, std::move(qmp).value()));
  }

 private:
  // Polls until QMP greets. QEMU creates the socket before loading the kernel and greets only
  // once its main loop runs, so an early failure (bad kernel, bad disk) shows up as the process
  // exiting while we wait: its log then says why.
  Result<std::unique_ptr<QmpClient>> WaitForQmp(const InstanceHandle& handle,
                                                const std::function<std::string()>& output) {
    const auto deadline = Clock::now() + kStartTimeout;
    Error last = Unavailable("the QMP socket was never created");
    while (Clock::now() < deadline) {
      if (!handle.process.Alive()) return Unavailable("qemu exited during start: " + output());
      if (std::filesystem::exists(handle.api_socket)) {
        auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
        auto qmp = QmpClient::Connect(handle.api_socket, std::max(left, milliseconds(1)));
        if (qmp.ok()) return qmp;
        last = qmp.error();
      }
      std::this_thread::sleep_for(milliseconds(20));
    }
    return DeadlineExceeded(fmt::format("qemu did not answer on QMP within {} s ({}): {}",
                                        kStartTimeout.count() / 1000, last.message(), output()));
  }

  ArgvOptions argv_options_;
};

}  // namespace

Result<AccelMode> ParseAccelMode(std::string_view text) {
  if (text == "auto") return AccelMode::kAuto;
  if (text == "kvm") return AccelMode::kKvm;
  if (text == "tcg") return AccelMode::kTcg;
  return InvalidArgument(fmt::format("unknown accelerator '{}' (use auto, kvm or tcg)", text));
}

Result<Machine> ParseMachine(std::string_view text) {
  if (text == "q35") return Machine::kQ35;
  if (text == "microvm") return Machine::kMicrovm;
  return InvalidArgument(fmt::format("unknown machine '{}' (use q35 or microvm)", text));
}

Result<void> ProbeKvm(const std::string& binary) {
  // The firmware alone, with no disk: SeaBIOS finds nothing to boot and reboots at once, which
  // -no-reboot turns into an exit. It takes ~0.2 s under TCG and less on a working KVM; nested
  // KVM that crawls (seen on these hosts: 2.4-2.8 s, and a Linux guest then never reaches its
  // console) does not finish within kKvmProbeLimit.
  auto started = std::chrono::steady_clock::now();
  auto out = RunCommand({binary, "-accel", "kvm", "-cpu", "host", "-machine", "q35", "-display",
                         "none", "-nodefaults", "-no-reboot", "-boot", "reboot-timeout=0"},
                        RunOptions{.timeout = kKvmProbeLimit});
  if (!out.ok()) {
    if (out.error().code() != ErrorCode::kDeadlineExceeded) return out.error();
    return Unavailable(fmt::format(
        "a vCPU on KVM did not run the firmware within {} ms (TCG takes about 200 ms): nested KVM "
        "too slow to boot a guest",
        kKvmProbeLimit.count()));
  }
  if (out->exit_code == 0) {
    spdlog::debug("KVM probe: the firmware ran in {} ms",
                  std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now() - started)
                      .count());
    return Ok();
  }
  std::string first = out->err.substr(0, out->err.find('\n'));
  return Unavailable(first.empty() ? fmt::format("exit status {}", out->exit_code) : first);
}

AccelDecision ResolveAccel(AccelMode mode, const std::filesystem::path& kvm_device,
                           const KvmProbe& probe) {
  if (mode == AccelMode::kTcg) return {Accel::kTcg, "TCG (software emulation) as configured"};
  int fd = ::open(kvm_device.c_str(), O_RDWR | O_CLOEXEC);
  int open_errno = errno;
  if (fd >= 0) ::close(fd);
  Result<void> probed = Ok();
  if (fd >= 0 && probe) probed = probe();
  if (mode == AccelMode::kKvm) {
    if (fd < 0) {
      return {Accel::kKvm,
              fmt::format("KVM as configured, but {} cannot be opened read-write ({}): VMs will "
                          "fail to start",
                          kvm_device.string(), std::strerror(open_errno))};
    }
    if (!probed.ok()) {
      return {Accel::kKvm, fmt::format("KVM as configured, but QEMU cannot use it ({}): VMs will "
                                       "fail to start",
                                       probed.error().message())};
    }
    return {Accel::kKvm, "KVM as configured"};
  }
  if (fd >= 0 && !probed.ok()) {
    return {Accel::kTcg,
            fmt::format("TCG (software emulation, several times slower): {} opens but QEMU "
                        "cannot run a vCPU with it ({})",
                        kvm_device.string(), probed.error().message())};
  }
  if (fd >= 0) return {Accel::kKvm, fmt::format("KVM: {} is usable", kvm_device.string())};
  return {Accel::kTcg,
          fmt::format("TCG (software emulation, several times slower): {} cannot be opened "
                      "read-write ({})",
                      kvm_device.string(), std::strerror(open_errno))};
}

std::unique_ptr<Backend> NewQemuBackend(QemuOptions options) {
  return std::make_unique<QemuBackend>(std::move(options));
}

}  // namespace vmctl::vmm::qemu
