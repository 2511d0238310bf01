#include "controller/vm_service.h"

#include <dirent.h>
#include <fmt/format.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <chrono>
#include <future>
#include <set>
#include <system_error>

#include "agent/boot_status.h"
#include "agent/protocol.h"
#include "base/io.h"
#include "base/process.h"
#include "controller/vm_records.h"

namespace vmctl::controller {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

constexpr size_t kConsoleTailBytes = 3000;
constexpr int64_t kMib = int64_t{1} << 20;
// The data disk is the second virtio-blk device on every VMM (disks are attached in order).
constexpr char kDataDevice[] = "/dev/vdb";
constexpr char kDataMountpoint[] = "/data";
constexpr char kRootDevice[] = "/dev/vda";

int64_t NowSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int64_t NowMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void Report(const Progress& progress, const std::string& line) {
  if (progress) progress(line);
}

Error NoSuchVm(const std::string& name) { return NotFound(fmt::format("no VM named '{}'", name)); }

std::string WithConsoleTail(const std::string& message, const std::filesystem::path& log) {
  std::string tail = TailFile(log, kConsoleTailBytes);
  while (!tail.empty() && (tail.back() == '\n' || tail.back() == '\r')) tail.pop_back();
  if (tail.empty()) return message + " (the console log is empty)";
  return message + "\n--- last console output ---\n" + tail;
}

vmm::DiskSpec::Format FormatOf(const std::string& path) {
  return path.ends_with(".qcow2") ? vmm::DiskSpec::Format::kQcow2 : vmm::DiskSpec::Format::kRaw;
}

vmm::DiskSpec RootDiskOf(const VmRecord& vm) {
  return {vm.root_disk, FormatOf(vm.root_disk), false};
}

vmm::DiskSpec DataDiskOf(const VmRecord& vm) {
  return {vm.data_disk, FormatOf(vm.data_disk), false};
}

storage::BaseImage BaseOf(const ImageRecord& image) {
  return {std::filesystem::path(image.dir).filename().string(), image.rootfs};
}

int64_t MillisSince(Clock::time_point start) {
  return std::chrono::duration_cast<milliseconds>(Clock::now() - start).count();
}

// The lowest free address of the pool; the gateway is never handed out.
Store::AddressPicker PoolPicker(const network::NetworkInfo& info) {
  return [&info](const std::set<std::string>& used) -> Result<std::string> {
    for (uint32_t a = info.pool_first.value; a <= info.pool_last.value; ++a) {
      if (a == info.gateway.address.value) continue;
      std::string candidate = network::FormatIpv4(network::Ipv4{a});
      if (!used.count(candidate)) return candidate;
    }
    return ResourceExhausted(fmt::format(
        "no free address left in the VM network {} ({} addresses, all in use); remove a VM or "
        "restart the daemon with a larger --subnet",
        info.gateway.NetworkString(), info.pool_last.value - info.pool_first.value));
  };
}

}  // namespace

vmm::InstanceHandle HandleOf(const VmRecord& vm) {
  return {ProcessRef{static_cast<pid_t>(vm.pid), vm.pid_start_time}, vm.api_socket,
          vm.agent_socket};
}

network::VmNic NicOf(const VmRecord& vm) {
  network::VmNic nic{vm.id, vm.tap, vm.mac, {}, static_cast<uint64_t>(vm.bandwidth_kbit)};
  if (auto address = network::ParseIpv4(vm.address); address.ok()) nic.address = *address;
  return nic;
}

VmService::VmService(Store& store, vmm::Backend& backend, storage::VolumeBackend& volumes,
                     network::Network& network, VmLocks& locks, VmServiceOptions options)
    : store_(store),
      backend_(backend),
      volumes_(volumes),
      network_(network),
      locks_(locks),
      options_(std::move(options)) {}

VmService::~VmService() {
  {
    std::lock_guard lock(monitor_mu_);
    stopping_ = true;
  }
  monitor_cv_.notify_all();
  if (monitor_.joinable()) monitor_.join();
}

std::filesystem::path VmService::RuntimeDir(const std::string& vm_id) const {
  return options_.state_dir / "vms" / vm_id;
}

std::shared_ptr<VmService::Slot> VmService::SlotFor(const std::string& vm_id) {
  std::lock_guard lock(slots_mu_);
  auto& slot = slots_[vm_id];
  if (!slot) slot = std::make_shared<Slot>(locks_.For(vm_id));
  return slot;
}

void VmService::Log(const VmRecord& vm, const std::string& kind, const std::string& detail) {
  spdlog::info("vm {} ({}): {}: {}", vm.name, vm.id, kind, detail);
  auto r = store_.AppendEvent(Event{0, vm.id, vm.name, kind, detail, NowMillis()});
  if (!r.ok()) spdlog::warn("could not record event: {}", r.error().message());
}

Result<VmRecord> VmService::Lookup(const std::string& owner, const std::string& name) {
  auto vm = store_.GetVmByName(owner, name);
  if (!vm.ok() && vm.error().code() == ErrorCode::kNotFound) return NoSuchVm(name);
  return vm;
}

Result<VmRecord> VmService::Get(const std::string& owner, const std::string& name) {
  return Lookup(owner, name);
}

Result<std::vector<VmRecord>> VmService::List(const std::string& owner) {
  return store_.ListVms(owner);
}

Result<void> VmService::CheckQuota(const std::string& owner, const VmRequest& request) {
  VMCTL_ASSIGN_OR_RETURN(Quota quota, store_.GetQuota(owner));
  VMCTL_ASSIGN_OR_RETURN(auto vms, store_.ListVms(owner));
  int count = 0, cpus = 0;
  int64_t memory = 0, disk = 0;
  for (const auto& vm : vms) {
    ++count;
    cpus += vm.cpus;
    memory += vm.memory_mib;
    disk += vm.root_disk_mib + vm.data_disk_mib;
  }
  if (count + 1 > quota.max_vms) {
    return ResourceExhausted(fmt::format("quota exceeded: you have {} of {} VMs; remove one first",
                                         count, quota.max_vms));
  }
  if (cpus + request.cpus > quota.max_cpus) {
    return ResourceExhausted(fmt::format("quota exceeded: {} CPUs in use, {} requested, limit {}",
                                         cpus, request.cpus, quota.max_cpus));
  }
  if (memory + request.memory_mib > quota.max_memory_mib) {
    return ResourceExhausted(
        fmt::format("quota exceeded: {} MiB memory in use, {} MiB requested, limit {} MiB", memory,
                    request.memory_mib, quota.max_memory_mib));
  }
  const int64_t wanted = request.root_disk_mib + request.data_disk_mib;
  if (disk + wanted > quota.max_disk_mib) {
    return ResourceExhausted(
        fmt::format("quota exceeded: {} MiB disk in use, {} MiB requested, limit {} MiB", disk,
                    wanted, quota.max_disk_mib));
  }
  return Ok();
}

Result<void> VmService::CheckHostCapacity(const VmRequest& request) {
  if (options_.host_cpus == 0 && options_.host_memory_mib == 0) return Ok();
  VMCTL_ASSIGN_OR_RETURN(auto vms, store_.ListVms(std::nullopt));
  int64_t cpus = 0, memory = 0;
  for (const auto& vm : vms) {
    cpus += vm.cpus;
    memory += vm.memory_mib;
  }
  if (options_.host_cpus && cpus + request.cpus > options_.host_cpus) {
    return ResourceExhausted(fmt::format(
        "host capacity reached: {} of {} CPUs are given to VMs, {} left, {} requested", cpus,
        options_.host_cpus, std::max<int64_t>(0, options_.host_cpus - cpus), request.cpus));
  }
  if (options_.host_memory_mib && memory + request.memory_mib > options_.host_memory_mib) {
    return ResourceExhausted(fmt::format(
        "host capacity reached: {} of {} MiB memory are given to VMs, {} MiB left, {} MiB "
        "requested",
        memory, options_.host_memory_mib, std::max<int64_t>(0, options_.host_memory_mib - memory),
        request.memory_mib));
  }
  return Ok();
}

Result<VmRecord> VmService::Create(const std::string& owner, const VmRequest& request,
                                   const Progress& progress) {
  VMCTL_TRY(ValidateVmRequest(request));
  auto image = store_.GetImage(request.image);
  if (!image.ok()) {
    if (image.error().code() != ErrorCode::kNotFound) return image.error();
    return NotFound(fmt::format("image '{}' not found (build it with `vmctl image build {}`)",
                                request.image, request.image));
  }
  for (const auto& [what, path] :
       {std::pair{"kernel", image->kernel}, std::pair{"initramfs", image->initramfs},
        std::pair{"root filesystem", image->rootfs}}) {
    if (!std::filesystem::exists(path)) {
      return FailedPrecondition(
          fmt::format("image '{}' is missing its {} ({}); rebuild it with "
                      "`vmctl image build {}`",
                      request.image, what, path, request.image));
    }
  }
  std::error_code ec;
  auto base_size = std::filesystem::file_size(image->rootfs, ec);
  if (!ec && static_cast<uint64_t>(request.root_disk_mib * kMib) < base_size) {
    return InvalidArgument(fmt::format("root disk of {} MiB is smaller than image '{}' ({} MiB)",
                                       request.root_disk_mib, request.image,
                                       (base_size + kMib - 1) / kMib));
  }

  VmRecord vm;
  vm.id = NewVmId();
  vm.owner = owner;
  vm.name = request.name;
  vm.image = request.image;
  vm.state = VmState::kCreating;
  vm.cpus = request.cpus;
  vm.memory_mib = request.memory_mib;
  vm.root_disk_mib = request.root_disk_mib;
  vm.data_disk_mib = request.data_disk_mib;
  vm.storage = volumes_.name();
  vm.image_dir = image->dir;
  vm.backend = backend_.name();
  vm.runtime_dir = RuntimeDir(vm.id).string();
  vm.tap = network::TapNameForVm(vm.id);
  vm.mac = network::MacForVm(vm.id);
  vm.bandwidth_kbit = request.bandwidth_kbit;
  vm.created_at = vm.updated_at = NowSeconds();
  {
    std::lock_guard lock(create_mu_);
    VMCTL_TRY(CheckQuota(owner, request));
    VMCTL_TRY(CheckHostCapacity(request));
    VMCTL_ASSIGN_OR_RETURN(vm.ssh_address, PickSshAddress(owner));
    auto inserted = store_.InsertVm(vm);
    if (!inserted.ok()) {
      if (inserted.error().code() == ErrorCode::kAlreadyExists) {
        return AlreadyExists(fmt::format("VM name '{}' is taken", request.name));
      }
      return inserted.error();
    }
  }
  auto slot = SlotFor(vm.id);
  std::lock_guard lock(slot->mu);
  Log(vm, "create",
      fmt::format("image {}, {} CPU, {} MiB memory, {} MiB root disk, {} MiB data disk", vm.image,
                  vm.cpus, vm.memory_mib, vm.root_disk_mib, vm.data_disk_mib));
  Report(progress,
         fmt::format("Creating VM '{}' (id {}) from image '{}'", vm.name, vm.id, vm.image));

  // Until the VMM is launched, a failure rolls the create back entirely: the user never had it.
  auto rollback = [&](const Error& error) -> Error {
    if (auto removed = volumes_.RemoveAll(vm.id); !removed.ok()) {
      spdlog::warn("vm {}: {}", vm.name, removed.error().message());
    }
    std::filesystem::remove_all(vm.runtime_dir, ec);
    (void)store_.DeleteVm(vm.id);
    Log(vm, "create", "rolled back: " + error.message());
    return error;
  };
  auto address = store_.AssignAddress(vm.id, PoolPicker(network_.info()));
  if (!address.ok()) return rollback(address.error());
  vm.address = *address;
  Report(progress,
         fmt::format("Address {} on {} (MAC {})", vm.address, network_.info().bridge, vm.mac));
  std::filesystem::create_directories(vm.runtime_dir, ec);
  if (ec || ::chmod(vm.runtime_dir.c_str(), 0700) != 0) {
    return rollback(Internal(fmt::format("cannot create {}: {}", vm.runtime_dir, ec.message())));
  }
  auto provisioned = ProvisionDisks(vm, *image, progress);
  if (!provisioned.ok()) return rollback(provisioned.error());
  vm = std::move(provisioned).value();
  if (auto r = store_.UpdateVm(vm); !r.ok()) return rollback(r.error());
  auto starting = store_.TransitionVm(vm.id, VmState::kCreating, VmState::kStarting);
  if (!starting.ok()) return rollback(starting.error());
  return Boot(*slot, std::move(starting).value(), progress);
}

Result<VmRecord> VmService::ProvisionDisks(VmRecord vm, const ImageRecord& image,
                                           const Progress& progress) {
  const storage::BaseImage base = BaseOf(image);
  auto start = Clock::now();
  if (auto prepared = volumes_.PrepareBase(base); !prepared.ok()) {
    return prepared.error().WithContext("preparing the image for " + volumes_.name());
  }
  auto root = volumes_.CreateRootDisk(base, vm.id, vm.root_disk_mib);
  if (!root.ok()) return root.error().WithContext("provisioning the root disk");
  vm.root_disk = root->path.string();
  std::string detail = fmt::format("{} MiB root disk", vm.root_disk_mib);
  if (vm.data_disk_mib > 0) {
    auto data = volumes_.CreateDataDisk(vm.id, vm.data_disk_mib);
    if (!data.ok()) return data.error().WithContext("provisioning the data disk");
    vm.data_disk = data->path.string();
    detail += fmt::format(" and {} MiB data disk", vm.data_disk_mib);
  }
  detail += fmt::format(" ({}) in {} ms", volumes_.name(), MillisSince(start));
  Report(progress, "Provisioned a " + detail);
  Log(vm, "storage", "provisioned a " + detail);
  return vm;
}

Result<void> VmService::GrowPendingVolumes(const VmRecord& vm, const Progress& progress) {
  struct Want {
    const char* role;
    vmm::DiskSpec disk;
    int64_t mib;
  };
  std::vector<Want> wants = {{"root", RootDiskOf(vm), vm.root_disk_mib}};
  if (!vm.data_disk.empty()) wants.push_back({"data", DataDiskOf(vm), vm.data_disk_mib});
  for (const auto& want : wants) {
    VMCTL_ASSIGN_OR_RETURN(storage::VolumeUsage usage, volumes_.Usage(want.disk));
    if (usage.size_bytes >= want.mib * kMib) continue;
    VMCTL_TRY(volumes_.Grow(want.disk, want.mib));
    std::string line = fmt::format("Grew the {} disk from {} to {} MiB (resized while running)",
                                   want.role, usage.size_bytes / kMib, want.mib);
    Report(progress, line);
    Log(vm, "storage", line);
  }
  return Ok();
}

Result<void> VmService::PrepareDataDisk(agent::AgentClient& agent, const VmRecord& vm,
                                        const Progress& progress) {
  if (vm.data_disk.empty()) return Ok();
  auto start = Clock::now();
  // Formatting a large disk in an emulated guest takes a while on first boot.
  auto prepared =
      agent.Call("prepare_disk", {{"device", kDataDevice}, {"mountpoint", kDataMountpoint}},
                 std::chrono::minutes(5));
  if (!prepared.ok()) return prepared.error().WithContext("preparing the data disk");
  VMCTL_ASSIGN_OR_RETURN(bool formatted, agent::ReplyBool(*prepared, "formatted", false));
  VMCTL_ASSIGN_OR_RETURN(int64_t size_bytes, agent::ReplyInt(*prepared, "size_bytes", 0));
  std::string line = fmt::format("{} {} MiB data disk on {} in {} ms",
                                 formatted ? "Formatted and mounted a" : "Mounted the",
                                 size_bytes / kMib, kDataMountpoint, MillisSince(start));
  Report(progress, line);
  Log(vm, "storage", line);
  return Ok();
}

Result<void> VmService::RemoveVolumes(const VmRecord& vm) {
  if (vm.storage.empty() || vm.storage == volumes_.name()) return volumes_.RemoveAll(vm.id);
  // Disks made by another backend (the daemon was restarted with a different --storage): files
  // can still go; volumes of another kind need that backend.
  for (const auto& path : {vm.root_disk, vm.data_disk}) {
    if (path.empty()) continue;
    std::error_code ec;
    if (std::filesystem::is_regular_file(path, ec)) {
      std::filesystem::remove(path, ec);
      if (ec) return Internal(fmt::format("cannot remove {}: {}", path, ec.message()));
    } else if (std::filesystem::exists(path, ec)) {
      return FailedPrecondition(
          fmt::format("VM '{}' has its disks on {} storage but the daemon runs {}; restart it with "
                      "--storage {} to remove this VM",
                      vm.name, vm.storage, volumes_.name(), vm.storage));
    }
  }
  return Ok();
}

Result<VmRecord> VmService::EnsureNetworkIdentity(VmRecord vm) {
  if (vm.tap.empty() || vm.mac.empty()) {
    vm.tap = network::TapNameForVm(vm.id);
    vm.mac = network::MacForVm(vm.id);
    VMCTL_TRY(store_.UpdateVm(vm));
  }
  if (vm.address.empty()) {
    VMCTL_ASSIGN_OR_RETURN(vm.address, store_.AssignAddress(vm.id, PoolPicker(network_.info())));
  }
  const auto& net = network_.info();
  auto address = network::ParseIpv4(vm.address);
  if (!address.ok() || !net.gateway.Contains(*address)) {
    return FailedPrecondition(fmt::format(
        "VM '{}' has the address {}, outside the network {} this daemon manages (was --subnet "
        "changed?); start the daemon with its former --subnet",
        vm.name, vm.address, net.gateway.NetworkString()));
  }
  return vm;
}

Result<void> VmService::ConfigureGuestNetwork(agent::AgentClient& agent, const VmRecord& vm) {
  const auto& net = network_.info();
  nlohmann::json args = {{"mac", vm.mac},
                         {"address", fmt::format("{}/{}", vm.address, net.gateway.prefix)},
                         {"gateway", network::FormatIpv4(net.gateway.address)},
                         {"dns", net.dns},
                         {"hostname", vm.name}};
  auto configured = agent.Call("configure_network", args, std::chrono::seconds(20));
  if (!configured.ok()) return configured.error().WithContext("configuring the guest network");
  return Ok();
}

Result<VmRecord> VmService::Boot(Slot& slot, VmRecord vm, const Progress& progress) {
  std::filesystem::path image_dir = vm.image_dir;
  if (image_dir.empty()) {
    // VMs from before image builds were tracked boot the image's current build.
    auto image = store_.GetImage(vm.image);
    if (!image.ok()) return FailBoot(slot, vm, VmState::kStarting, image.error());
    image_dir = image->dir;
  }
  if (!std::filesystem::exists(image_dir / kImageKernelFile)) {
    return FailBoot(
        slot, vm, VmState::kStarting,
        FailedPrecondition(fmt::format("the image build this VM was created from is gone ({})",
                                       image_dir.string())));
  }
  if (auto grown = GrowPendingVolumes(vm, progress); !grown.ok()) {
    return FailBoot(slot, vm, VmState::kStarting, grown.error().WithContext("growing disks"));
  }
  auto identified = EnsureNetworkIdentity(vm);
  if (!identified.ok()) return FailBoot(slot, vm, VmState::kStarting, identified.error());
  vm = std::move(identified).value();
  std::filesystem::path dir = vm.runtime_dir;
  vmm::LaunchSpec spec;
  spec.vm_id = vm.id;
  spec.vm_name = vm.name;
  spec.cpus = vm.cpus;
  spec.memory_mib = vm.memory_mib;
  spec.kernel = image_dir / kImageKernelFile;
  spec.initramfs = image_dir / kImageInitramfsFile;
  spec.kernel_cmdline = options_.kernel_cmdline;
  spec.disks.push_back(RootDiskOf(vm));
  if (!vm.data_disk.empty()) spec.disks.push_back(DataDiskOf(vm));
  spec.net = vmm::NetSpec{vm.tap, vm.mac};
  spec.runtime_dir = dir;
  spec.console_log = dir / "console.log";
  spec.vmm_log = dir / "vmm.log";

  Report(progress, fmt::format("Connecting TAP {} to bridge {}", vm.tap, network_.info().bridge));
  auto attach_start = Clock::now();
  if (auto attached = network_.Attach(NicOf(vm)); !attached.ok()) {
    return FailBoot(slot, vm, VmState::kStarting, attached.error());
  }
  Log(vm, "network",
      fmt::format("TAP {} attached in {} ms", vm.tap,
                  std::chrono::duration_cast<milliseconds>(Clock::now() - attach_start).count()));

  Report(progress, fmt::format("Starting the {} VMM ({} CPU, {} MiB)", backend_.name(), vm.cpus,
                               vm.memory_mib));
  auto launched = backend_.Launch(spec);
  if (!launched.ok()) return FailBoot(slot, vm, VmState::kStarting, launched.error());
  slot.instance = std::move(launched).value();
  const auto& handle = slot.instance->handle();
  vm.pid = handle.process.pid;
  vm.pid_start_time = handle.process.start_time;
  vm.api_socket = handle.api_socket.string();
  vm.agent_socket = handle.agent_socket.string();
  if (auto r = store_.UpdateVm(vm); !r.ok()) {
    return FailBoot(slot, vm, VmState::kStarting, r.error());
  }
  Log(vm, "start", fmt::format("VMM pid {}", vm.pid));

  Report(progress, "Booting the guest, waiting for its agent");
  auto deadline = Clock::now() + options_.boot_timeout;
  auto agent = Agent(slot, vm, options_.boot_timeout);
  if (!agent.ok()) return FailBoot(slot, vm, VmState::kStarting, agent.error());
  return FinishBoot(slot, std::move(vm), **agent, deadline, progress);
}

Result<VmRecord> VmService::FinishBoot(Slot& slot, VmRecord vm, agent::AgentClient& agent,
                                       Clock::time_point deadline, const Progress& progress) {
  Report(progress,
         fmt::format("Configuring the guest network ({}, hostname {})", vm.address, vm.name));
  auto configure_start = Clock::now();
  if (auto configured = ConfigureGuestNetwork(agent, vm); !configured.ok()) {
    return FailBoot(slot, vm, VmState::kStarting, configured.error());
  }
  Log(vm, "network",
      fmt::format("guest configured as {} in {} ms", vm.address, MillisSince(configure_start)));
  if (auto prepared = PrepareDataDisk(agent, vm, progress); !prepared.ok()) {
    return FailBoot(slot, vm, VmState::kStarting, prepared.error());
  }
  if (auto booted = WaitBooted(agent, vm, deadline, progress); !booted.ok()) {
    // A daemon going down leaves the VM starting; the next one adopts it and finishes this.
    if (Stopping()) return booted.error();
    return FailBoot(slot, vm, VmState::kStarting, booted.error());
  }
  auto running = store_.TransitionVm(vm.id, VmState::kStarting, VmState::kRunning);
  if (!running.ok()) return FailBoot(slot, vm, VmState::kStarting, running.error());
  // The guest clock starts from the RTC; a resync keeps TLS and logs sane after restores too.
  auto synced = agent.Call("time_sync",
                           {{"unix_ns", std::chrono::duration_cast<std::chrono::nanoseconds>(
                                            std::chrono::system_clock::now().time_since_epoch())
                                            .count()}},
                           std::chrono::seconds(5));
  if (!synced.ok()) spdlog::warn("vm {}: time sync failed: {}", vm.name, synced.error().message());
  Report(progress, fmt::format("VM '{}' is running", vm.name));
  return running;
}

Result<void> VmService::WaitBooted(agent::AgentClient& agent, const VmRecord& vm,
                                   Clock::time_point deadline, const Progress& progress) {
  auto start = Clock::now();
  auto next_report = start;
  agent::BootStatus status;
  std::string last_error;
  while (true) {
    auto reply = agent.Call("boot_status", {}, milliseconds(5000));
    if (!reply.ok() && reply.error().code() == ErrorCode::kUnimplemented) {
      std::string line =
          "The guest's agent predates boot_status (an older image build): not waiting for its "
          "boot to finish";
      Report(progress, line);
      Log(vm, "boot", line);
      return Ok();
    }
    if (reply.ok()) {
      auto parsed = agent::ParseBootStatus(*reply);
      if (!parsed.ok()) return parsed.error().WithContext("the guest agent's answer");
      status = std::move(parsed).value();
      if (status.finished) break;
    } else {
      if (agent.closed()) return reply.error().WithContext("waiting for the guest to boot");
      last_error = reply.error().message();
    }
    if (Stopping()) return Unavailable("the daemon is shutting down");
    auto now = Clock::now();
    if (now >= deadline) {
      // The guest answers and may be usable: running, with the reason in its events.
      std::string line = fmt::format(
          "The guest had not finished booting after {} s ({}{}); calling it running anyway",
          MillisSince(start) / 1000, status.state.empty() ? last_error : status.state,
          status.detail.empty() ? "" : ", " + status.detail);
      Report(progress, line);
      Log(vm, "boot", line);
      return Ok();
    }
    if (now >= next_report) {
      Report(progress, fmt::format("Waiting for the guest to finish booting ({}: {}{}, {} s)",
                                   status.init.empty() ? "agent" : status.init,
                                   status.state.empty() ? "no answer" : status.state,
                                   status.detail.empty() ? "" : ", " + status.detail,
                                   MillisSince(start) / 1000));
      next_report = now + std::chrono::seconds(5);
    }
    std::this_thread::sleep_for(milliseconds(200));
  }
  std::string line =
      fmt::format("The guest finished booting ({}: {}) {} ms after its agent answered", status.init,
                  status.state, MillisSince(start));
  Report(progress, line);
  Log(vm, "boot", line);
  return Ok();
}

agent::ClientOptions VmService::AgentOptions(Slot& slot, const VmRecord& vm) {
  agent::ClientOptions options;
  // The client drops the connection; the next use of the agent connects again (Agent()).
  options.on_violation = [this, vm, violations = slot.violations](const Error& error) {
    std::lock_guard lock(violations->mu);
    int64_t now = NowMillis();
    if (now - violations->last_logged_ms < kViolationEventInterval.count()) {
      ++violations->unlogged;
      return;
    }
    std::string more = violations->unlogged
                           ? fmt::format(" ({} more since the last report)", violations->unlogged)
                           : "";
    Log(vm, "agent", fmt::format("dropped the agent connection: {}{}", error.message(), more));
    violations->last_logged_ms = now;
    violations->unlogged = 0;
  };
  return options;
}

Result<std::shared_ptr<agent::AgentClient>> VmService::Agent(Slot& slot, const VmRecord& vm,
                                                             milliseconds timeout) {
  if (slot.agent && !slot.agent->closed()) return slot.agent;
  slot.agent.reset();
  if (!slot.instance) {
    VMCTL_ASSIGN_OR_RETURN(slot.instance, backend_.Adopt(HandleOf(vm)));
  }
  auto deadline = Clock::now() + timeout;
  Error last = Unavailable("the guest agent did not answer");
  while (Clock::now() < deadline) {
    if (!slot.instance->Alive()) {
      return Unavailable("the VMM exited while waiting for the guest agent");
    }
    auto stream = slot.instance->ConnectAgent();
    if (stream.ok()) {
      std::shared_ptr<agent::AgentClient> client =
          agent::NewAgentClient(std::move(stream).value(), AgentOptions(slot, vm));
      // Short waits so that a VMM dying mid-boot is noticed promptly. The connection is kept:
      // virtio-serial delivers the hello on this same stream once the guest opens its port.
      while (!client->closed() && Clock::now() < deadline && slot.instance->Alive()) {
        auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
        auto hello = client->WaitHello(std::min(left, milliseconds(1000)));
        if (hello.ok()) {
          Log(vm, "agent",
              fmt::format("agent {} up, kernel {}", hello->agent_version, hello->kernel));
          slot.agent = client;
          return client;
        }
        last = hello.error();
      }
      if (client->closed()) std::this_thread::sleep_for(milliseconds(100));
    } else {
      last = stream.error();
      std::this_thread::sleep_for(milliseconds(100));
    }
  }
  return DeadlineExceeded(fmt::format("the guest agent did not answer within {} s ({})",
                                      timeout.count() / 1000, last.message()));
}

Error VmService::FailBoot(Slot& slot, const VmRecord& vm, VmState from, const Error& cause) {
  if (slot.instance) {
    (void)slot.instance->Kill();
  } else if (vm.pid) {
    (void)ProcessRef{static_cast<pid_t>(vm.pid), vm.pid_start_time}.Kill();
  }
  std::string message =
      WithConsoleTail(cause.message(), std::filesystem::path(vm.runtime_dir) / "console.log");
  VmRecord copy = vm;
  ReleaseRuntime(slot, copy);
  auto failed = store_.TransitionVm(vm.id, from, VmState::kFailed, cause.message());
  if (!failed.ok()) spdlog::warn("vm {}: {}", vm.name, failed.error().message());
  Log(vm, "fail", cause.message());
  return Error(cause.code(), message);
}

void VmService::ReleaseRuntime(Slot& slot, VmRecord& vm) {
  slot.agent.reset();
  slot.instance.reset();
  if (!vm.tap.empty()) {
    if (auto detached = network_.Detach(NicOf(vm)); !detached.ok()) {
      spdlog::warn("vm {}: {}", vm.name, detached.error().message());
    }
  }
  std::error_code ec;
  for (const auto& socket : {vm.api_socket, vm.agent_socket}) {
    if (!socket.empty()) std::filesystem::remove(socket, ec);
  }
  vm.pid = 0;
  vm.pid_start_time = 0;
  vm.api_socket.clear();
  vm.agent_socket.clear();
  auto current = store_.GetVm(vm.id);
  if (current.ok()) {
    VmRecord updated = *current;
    updated.pid = 0;
    updated.pid_start_time = 0;
    updated.api_socket.clear();
    updated.agent_socket.clear();
    if (auto r = store_.UpdateVm(updated); !r.ok()) {
      spdlog::warn("vm {}: {}", vm.name, r.error().message());
    }
  }
}

Result<VmRecord> VmService::MarkStopped(Slot& slot, const VmRecord& vm, const std::string& why) {
  VmRecord copy = vm;
  ReleaseRuntime(slot, copy);
  Log(vm, "stop", why);
  return store_.TransitionVm(vm.id, vm.state, VmState::kStopped);
}

Result<VmRecord> VmService::Start(const std::string& owner, const std::string& name,
                                  const Progress& progress) {
  VMCTL_ASSIGN_OR_RETURN(VmRecord vm, Lookup(owner, name));
  auto slot = SlotFor(vm.id);
  std::lock_guard lock(slot->mu);
  VMCTL_ASSIGN_OR_RETURN(vm, store_.GetVm(vm.id));
  if (vm.state == VmState::kRunning) return vm;
  if (vm.state != VmState::kStopped && vm.state != VmState::kFailed) {
    return FailedPrecondition(
        fmt::format("VM '{}' is {}; wait for it to finish", name, VmStateName(vm.state)));
  }
  VMCTL_ASSIGN_OR_RETURN(vm, store_.TransitionVm(vm.id, vm.state, VmState::kStarting));
  return Boot(*slot, std::move(vm), progress);
}

Result<VmRecord> VmService::Stop(const std::string& owner, const std::string& name, bool force) {
  VMCTL_ASSIGN_OR_RETURN(VmRecord vm, Lookup(owner, name));
  auto slot = SlotFor(vm.id);
  std::lock_guard lock(slot->mu);
  VMCTL_ASSIGN_OR_RETURN(vm, store_.GetVm(vm.id));
  return StopLocked(*slot, std::move(vm), force);
}

Result<VmRecord> VmService::StopLocked(Slot& slot, VmRecord vm, bool force) {
  if (vm.state == VmState::kStopped || vm.state == VmState::kFailed) return vm;
  VMCTL_ASSIGN_OR_RETURN(vm, store_.TransitionVm(vm.id, vm.state, VmState::kStopping));
  if (!slot.instance) {
    auto adopted = backend_.Adopt(HandleOf(vm));
    if (!adopted.ok()) return MarkStopped(slot, vm, "VMM already gone");
    slot.instance = std::move(adopted).value();
  }
  if (!force) {
    // The agent powers off cleanly through systemd on every backend; ACPI is the fallback for a
    // guest whose agent does not answer.
    bool asked = false;
    auto agent = Agent(slot, vm, milliseconds(3000));
    if (agent.ok()) {
      asked = (*agent)->Call("shutdown", {{"reboot", false}}, milliseconds(5000)).ok();
    }
    if (!asked && backend_.capabilities().graceful_shutdown) {
      asked = slot.instance->RequestShutdown().ok();
    }
    if (asked && slot.instance->WaitExit(options_.stop_timeout).ok()) {
      return MarkStopped(slot, vm, "guest powered off");
    }
  }
  if (auto killed = slot.instance->Kill(); !killed.ok()) {
    auto failed =
        store_.TransitionVm(vm.id, VmState::kStopping, VmState::kFailed, killed.error().message());
    return killed.error().WithContext("stopping the VMM");
  }
  return MarkStopped(slot, vm, force ? "VMM killed (forced stop)" : "VMM killed after timeout");
}

Result<VmRecord> VmService::Restart(const std::string& owner, const std::string& name,
                                    const Progress& progress) {
  VMCTL_ASSIGN_OR_RETURN(VmRecord vm, Lookup(owner, name));
  auto slot = SlotFor(vm.id);
  std::lock_guard lock(slot->mu);
  VMCTL_ASSIGN_OR_RETURN(vm, store_.GetVm(vm.id));
  if (vm.state != VmState::kStopped && vm.state != VmState::kFailed) {
    Report(progress, fmt::format("Stopping VM '{}'", name));
    VMCTL_ASSIGN_OR_RETURN(vm, StopLocked(*slot, std::move(vm), false));
  }
  VMCTL_ASSIGN_OR_RETURN(vm, store_.TransitionVm(vm.id, vm.state, VmState::kStarting));
  return Boot(*slot, std::move(vm), progress);
}

Result<void> VmService::Remove(const std::string& owner, const std::string& name) {
  VMCTL_ASSIGN_OR_RETURN(VmRecord vm, Lookup(owner, name));
  auto slot = SlotFor(vm.id);
  std::lock_guard lock(slot->mu);
  VMCTL_ASSIGN_OR_RETURN(vm, store_.GetVm(vm.id));
  if (vm.state != VmState::kDeleting) {
    VMCTL_ASSIGN_OR_RETURN(vm, store_.TransitionVm(vm.id, vm.state, VmState::kDeleting));
  }
  Log(vm, "rm", "removing");
  if (slot->instance) {
    VMCTL_TRY(slot->instance->Kill());
  } else if (vm.pid) {
    VMCTL_TRY((ProcessRef{static_cast<pid_t>(vm.pid), vm.pid_start_time}.Kill()));
  }
  slot->agent.reset();
  slot->instance.reset();
  if (!vm.tap.empty()) VMCTL_TRY(network_.Detach(NicOf(vm)));
  VMCTL_TRY(RemoveVolumes(vm));
  std::error_code ec;
  std::filesystem::remove_all(vm.runtime_dir, ec);
  if (ec) return Internal(fmt::format("cannot remove {}: {}", vm.runtime_dir, ec.message()));
  VMCTL_TRY(store_.DeleteVm(vm.id));
  locks_.Forget(vm.id);
  std::lock_guard slots_lock(slots_mu_);
  slots_.erase(vm.id);
  return Ok();
}

Result<VmRecord> VmService::Resize(const std::string& owner, const std::string& name,
                                   int64_t root_mib, int64_t data_mib, const Progress& progress) {
  VMCTL_ASSIGN_OR_RETURN(VmRecord vm, Lookup(owner, name));
  auto slot = SlotFor(vm.id);
  std::lock_guard lock(slot->mu);
  VMCTL_ASSIGN_OR_RETURN(vm, store_.GetVm(vm.id));
  VMCTL_TRY(ValidateDiskGrowth(vm.root_disk_mib, vm.data_disk_mib, root_mib, data_mib));
  if (vm.state != VmState::kRunning && vm.state != VmState::kStopped &&
      vm.state != VmState::kFailed) {
    return FailedPrecondition(
        fmt::format("VM '{}' is {}; wait for it to finish", name, VmStateName(vm.state)));
  }
  if (!vm.storage.empty() && vm.storage != volumes_.name()) {
    return FailedPrecondition(
        fmt::format("VM '{}' has its disks on {} storage but the daemon runs {}", name, vm.storage,
                    volumes_.name()));
  }
  int64_t extra =
      (root_mib ? root_mib - vm.root_disk_mib : 0) + (data_mib ? data_mib - vm.data_disk_mib : 0);
  {
    std::lock_guard create_lock(create_mu_);
    VMCTL_ASSIGN_OR_RETURN(Quota quota, store_.GetQuota(owner));
    VMCTL_ASSIGN_OR_RETURN(auto vms, store_.ListVms(owner));
    int64_t disk = 0;
    for (const auto& other : vms) disk += other.root_disk_mib + other.data_disk_mib;
    if (disk + extra > quota.max_disk_mib) {
      return ResourceExhausted(
          fmt::format("quota exceeded: {} MiB disk in use, {} MiB more requested, limit {} MiB",
                      disk, extra, quota.max_disk_mib));
    }
    // The wanted sizes are recorded first: whatever happens next, the next start grows to them.
    if (root_mib) vm.root_disk_mib = root_mib;
    if (data_mib) vm.data_disk_mib = data_mib;
    VMCTL_TRY(store_.UpdateVm(vm));
  }
  Log(vm, "resize",
      fmt::format("root disk {} MiB, data disk {} MiB", vm.root_disk_mib, vm.data_disk_mib));

  const bool running = vm.state == VmState::kRunning;
  const bool online =
      running && volumes_.CanGrowOnline() && backend_.capabilities().online_disk_resize;
  if (running && !online) {
    std::string why = !volumes_.CanGrowOnline()
                          ? fmt::format("{} storage cannot grow a disk in use", volumes_.name())
                          : fmt::format("{} cannot resize a disk of a running VM", backend_.name());
    Report(progress,
           fmt::format("The disks grow at the next start of '{}' ({}): `vmctl restart {}`", name,
                       why, name));
    return vm;
  }
  if (!running) {
    VMCTL_TRY(GrowPendingVolumes(vm, progress));
    Report(progress,
           fmt::format("The guest filesystem grows to the new size when '{}' starts", name));
    return vm;
  }
  VMCTL_ASSIGN_OR_RETURN(auto agent, Agent(*slot, vm, milliseconds(10000)));
  if (!slot->instance) return Unavailable("the VMM of '" + name + "' is not reachable");
  struct Online {
    const char* role;
    size_t index;
    vmm::DiskSpec disk;
    int64_t mib;
    const char* device;
  };
  std::vector<Online> grow;
  if (root_mib) grow.push_back({"root", 0, RootDiskOf(vm), root_mib, kRootDevice});
  if (data_mib) grow.push_back({"data", 1, DataDiskOf(vm), data_mib, kDataDevice});
  for (const auto& g : grow) {
    auto start = Clock::now();
    VMCTL_TRY(volumes_.Grow(g.disk, g.mib));
    VMCTL_TRY(slot->instance->ResizeDisk(g.index, g.disk, g.mib * kMib)
                  .WithContext(fmt::format("telling the guest that its {} disk grew", g.role)));
    auto grown = agent->Call("grow_fs", {{"device", g.device}, {"size_bytes", g.mib * kMib}},
                             std::chrono::minutes(2));
    if (!grown.ok()) return grown.error().WithContext("growing the guest filesystem");
    VMCTL_ASSIGN_OR_RETURN(int64_t fs_bytes, agent::ReplyInt(*grown, "size_bytes", 0));
    std::string line =
        fmt::format("Grew the {} disk to {} MiB online; its filesystem now has {} MiB ({} ms)",
                    g.role, g.mib, fs_bytes / kMib, MillisSince(start));
    Report(progress, line);
    Log(vm, "storage", line);
  }
  return vm;
}

Result<std::vector<VmService::DiskInfo>> VmService::Disks(const std::string& owner,
                                                          const std::string& name) {
  VMCTL_ASSIGN_OR_RETURN(VmRecord vm, Lookup(owner, name));
  std::vector<DiskInfo> disks;
  auto add = [&](const char* role, const vmm::DiskSpec& disk, int64_t mib) -> Result<void> {
    if (disk.path.empty()) return Ok();
    VMCTL_ASSIGN_OR_RETURN(storage::VolumeUsage usage, volumes_.Usage(disk));
    disks.push_back(DiskInfo{role, disk.path.string(),
                             disk.format == vmm::DiskSpec::Format::kQcow2 ? "qcow2" : "raw", mib,
                             usage});
    return Ok();
  };
  VMCTL_TRY(add("root", RootDiskOf(vm), vm.root_disk_mib));
  VMCTL_TRY(add("data", DataDiskOf(vm), vm.data_disk_mib));
  return disks;
}

Result<std::unique_ptr<agent::ExecSession>> VmService::Exec(const std::string& owner,
                                                            const std::string& name,
                                                            const agent::ExecRequest& request) {
  if (request.argv.empty()) return InvalidArgument("exec needs a command");
  VMCTL_ASSIGN_OR_RETURN(VmRecord vm, Lookup(owner, name));
  if (vm.state != VmState::kRunning) {
    return FailedPrecondition(fmt::format("VM '{}' is {}; start it with `vmctl start {}`", name,
                                          VmStateName(vm.state), name));
  }
  auto slot = SlotFor(vm.id);
  std::shared_ptr<agent::AgentClient> client;
  {
    std::lock_guard lock(slot->mu);
    VMCTL_ASSIGN_OR_RETURN(client, Agent(*slot, vm, milliseconds(10000)));
  }
  return client->Exec(request);
}

Result<std::string> VmService::PickSshAddress(const std::string& owner) {
  VMCTL_ASSIGN_OR_RETURN(auto vms, store_.ListVms(owner));
  std::set<std::string> used;
  for (const auto& vm : vms) used.insert(vm.ssh_address);
  for (const auto& address : options_.ssh_address_pool) {
    if (!used.count(address)) return address;
  }
  return std::string();  // pool used up: the VM is reachable by name only
}

Result<VmRecord> VmService::FindVisible(const std::string& user, const std::string& name) {
  auto own = store_.GetVmByName(user, name);
  if (own.ok() || own.error().code() != ErrorCode::kNotFound) return own;
  VMCTL_ASSIGN_OR_RETURN(auto all, store_.ListVms(std::nullopt));
  std::vector<VmRecord> shared;
  for (auto& vm : all) {
    if (vm.name != name) continue;
    VMCTL_ASSIGN_OR_RETURN(auto shares, store_.ListShares(vm.id));
    for (const auto& share : shares) {
      if (share.user_id == user) shared.push_back(vm);
    }
  }
  if (shared.empty()) return NoSuchVm(name);
  if (shared.size() > 1) {
    return FailedPrecondition(
        fmt::format("{} VMs named '{}' are shared with you; ask their owners to rename one",
                    shared.size(), name));
  }
  return shared.front();
}

void VmService::ForgetSshKeys(const std::string& vm_id) {
  auto slot = SlotFor(vm_id);
  std::lock_guard lock(slot->mu);
  slot->ssh_installed.clear();
}

Result<VmService::SshTarget> VmService::PrepareSsh(
    const std::string& user, const std::string& name, const std::string& guest_user,
    bool or_default, const std::function<Result<std::string>(const VmRecord&)>& key_for,
    milliseconds timeout) {
  VMCTL_ASSIGN_OR_RETURN(VmRecord vm, FindVisible(user, name));
  if (vm.state != VmState::kRunning) {
    return FailedPrecondition(fmt::format("VM '{}' is {}", name, VmStateName(vm.state)));
  }
  VMCTL_ASSIGN_OR_RETURN(std::string key, key_for(vm));
  std::string fallback = "root";
  if (auto image = store_.GetImage(vm.image); image.ok()) {
    std::string configured = image->config.value("user", "");
    configured = configured.substr(0, configured.find(':'));  // "user:group"
    if (!configured.empty()) fallback = configured;
  }
  SshTarget target{vm, guest_user.empty() ? fallback : guest_user};

  auto slot = SlotFor(vm.id);
  std::shared_ptr<agent::AgentClient> agent;
  {
    std::lock_guard lock(slot->mu);
    VMCTL_ASSIGN_OR_RETURN(target.vm, store_.GetVm(vm.id));  // fresh, under the VM's lock
    if (target.vm.state != VmState::kRunning) {
      return FailedPrecondition(fmt::format("VM '{}' is {}", name, VmStateName(target.vm.state)));
    }
    VMCTL_ASSIGN_OR_RETURN(agent, Agent(*slot, target.vm, milliseconds(10000)));
    if (slot->ssh_agent != agent) {  // a new boot: its authorized_keys may be anything
      slot->ssh_agent = agent;
      slot->ssh_installed.clear();
    }
    auto install = [&](const std::string& guest) -> Result<void> {
      if (slot->ssh_installed.count(guest + "\n" + key)) return Ok();
      VMCTL_TRY(agent->Call("set_authorized_keys",
                            {{"user", guest}, {"keys", {key}}, {"tag", kGatewayKeyTag}},
                            milliseconds(10000)));
      slot->ssh_installed.insert(guest + "\n" + key);
      return Ok();
    };
    auto installed = install(target.guest_user);
    if (!installed.ok() && installed.error().code() == ErrorCode::kNotFound && or_default &&
        target.guest_user != fallback) {
      target.guest_user = fallback;
      installed = install(fallback);
    }
    if (!installed.ok()) {
      if (installed.error().code() == ErrorCode::kNotFound) {
        return NotFound(fmt::format("VM '{}' has no user '{}'", name, target.guest_user));
      }
      return installed.error().WithContext("installing the gateway's key");
    }
  }

  // sshd makes its host keys at its first start, seconds after the agent is up. Waited for
  // without the VM's lock, which stop and exec need meanwhile.
  auto deadline = Clock::now() + timeout;
  std::vector<std::string> keys;
  while (true) {
    VMCTL_ASSIGN_OR_RETURN(auto answer, agent->Call("host_keys", {}, milliseconds(10000)));
    VMCTL_ASSIGN_OR_RETURN(keys, agent::ReplyStrings(answer, "keys"));
    if (!keys.empty()) break;
    if (Clock::now() > deadline || agent->closed()) {
      return DeadlineExceeded(
          fmt::format("VM '{}' has no SSH host keys yet (is sshd installed?)", name));
    }
    std::this_thread::sleep_for(milliseconds(250));
  }
  std::lock_guard lock(slot->mu);
  VMCTL_ASSIGN_OR_RETURN(target.vm, store_.GetVm(vm.id));
  if (keys != target.vm.ssh_host_keys) {
    target.vm.ssh_host_keys = keys;
    VMCTL_TRY(store_.UpdateVm(target.vm));
    Log(target.vm, "ssh", fmt::format("pinned {} host keys", keys.size()));
  }
  return target;
}

Result<std::filesystem::path> VmService::ConsoleLog(const std::string& owner,
                                                    const std::string& name) {
  VMCTL_ASSIGN_OR_RETURN(VmRecord vm, Lookup(owner, name));
  return std::filesystem::path(vm.runtime_dir) / "console.log";
}

}  // namespace vmctl::controller
