// VmService with a fake backend whose "VMM" is the real guest agent serving a Unix socket on the
// host: lifecycle, rollback, quotas, the monitor and reconciliation run without booting guests
// (the end-to-end tests in tests/e2e cover the same paths with real QEMU guests).
#include "controller/vm_service.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "base/io.h"
#include "store/sqlite/sqlite_store.h"
#include "testing/netns/netns.h"

// The agent configures "guest" networking and the hostname on the host side here.
VMCTL_TEST_IN_PRIVATE_NETWORK_NAMESPACE();

namespace vmctl::controller {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using std::chrono::seconds;

const char* AgentBinary() { return VMCTL_BUILD_DIR "/bin/vmctl-agent"; }

class FakeInstance : public vmm::Instance {
 public:
  explicit FakeInstance(vmm::InstanceHandle h) : handle_(std::move(h)) {}
  const vmm::InstanceHandle& handle() const override { return handle_; }
  Result<void> RequestShutdown() override { return Unimplemented("fake"); }
  Result<void> Kill() override {
    VMCTL_TRY(handle_.process.Signal(SIGKILL));
    return handle_.process.WaitExit(seconds(5));
  }
  Result<void> Pause() override { return Unimplemented("fake"); }
  Result<void> Resume() override { return Unimplemented("fake"); }
  Result<void> ResizeDisk(size_t, const vmm::DiskSpec&, int64_t) override {
    return Unimplemented("fake");
  }
  Result<std::string> QueryStatus() override { return std::string("running"); }
  Result<UniqueFd> ConnectAgent() override { return ConnectUnix(handle_.agent_socket); }

 private:
  vmm::InstanceHandle handle_;
};

class FakeBackend : public vmm::Backend {
 public:
  std::string name() const override { return "fake"; }
  vmm::Capabilities capabilities() const override { return {}; }
  Result<std::unique_ptr<vmm::Instance>> Launch(const vmm::LaunchSpec& spec) override {
    ++launches;
    if (fail_launch) return Unavailable("fake VMM refused to start");
    auto socket = spec.runtime_dir / "agent.sock";
    if (!spec.net) return InvalidArgument("no NIC in the launch spec");
    last_net = *spec.net;
    std::vector<std::string> argv = {AgentBinary(),         "--listen-unix", socket.string(),
                                     "--simulate-poweroff", "--root",        guest_root.string()};
    if (!systemctl.empty()) argv.insert(argv.end(), {"--systemctl", systemctl.string()});
    VMCTL_ASSIGN_OR_RETURN(ProcessRef p, SpawnDetached(argv, {.log_file = spec.vmm_log}));
    while (!fs::exists(socket)) std::this_thread::sleep_for(milliseconds(5));
    return std::unique_ptr<vmm::Instance>(new FakeInstance({p, "", socket}));
  }
  Result<std::unique_ptr<vmm::Instance>> Adopt(const vmm::InstanceHandle& h) override {
    if (!h.process.Alive()) return NotFound("gone");
    return std::unique_ptr<vmm::Instance>(new FakeInstance(h));
  }
  bool fail_launch = false;
  int launches = 0;
  fs::path guest_root;  // the agent's /etc goes here
  fs::path systemctl;   // the guest's systemd, as the agent asks it when boot has finished
  vmm::NetSpec last_net;
};

// Stands in for the bridge port with a bare TAP carrying the VM's MAC, which the agent then
// configures as the guest's NIC (all inside the test's private network namespace).
class FakeNetwork : public network::Network {
 public:
  explicit FakeNetwork(const std::string& gateway) {
    info_.bridge = "br-test";
    info_.gateway = *network::ParseCidr(gateway);
    info_.pool_first = network::Ipv4{info_.gateway.Network().value + 1};
    info_.pool_last = network::Ipv4{info_.gateway.Broadcast().value - 1};
    info_.dns = {"192.0.2.53"};
  }
  const network::NetworkInfo& info() const override { return info_; }
  Result<void> Attach(const network::VmNic& nic) override {
    std::lock_guard lock(mu);
    if (!attached.count(nic.vm_id)) {
      VMCTL_TRY(RunCommandChecked({"ip", "tuntap", "add", nic.tap, "mode", "tap"}));
      VMCTL_TRY(RunCommandChecked({"ip", "link", "set", nic.tap, "address", nic.mac}));
    }
    attached[nic.vm_id] = nic;
    return Ok();
  }
  Result<void> Detach(const network::VmNic& nic) override {
    std::lock_guard lock(mu);
    if (attached.erase(nic.vm_id)) VMCTL_TRY(RunCommandChecked({"ip", "link", "del", nic.tap}));
    return Ok();
  }
  std::mutex mu;
  std::map<std::string, network::VmNic> attached;

 private:
  network::NetworkInfo info_;
};

std::string LinkAddresses(const std::string& dev) {
  auto out = RunCommand({"ip", "-4", "-o", "addr", "show", "dev", dev});
  return out.ok() ? out->out : "";
}

// Volumes are files of the wanted size in dir/<vm id>/.
class FakeVolumes : public storage::VolumeBackend {
 public:
  std::string name() const override { return "fake"; }
  std::string Describe() const override { return "fake"; }
  vmm::DiskSpec::Format format() const override { return vmm::DiskSpec::Format::kRaw; }
  Result<void> PrepareBase(const storage::BaseImage& base) override {
    std::lock_guard lock(mu);
    prepared.insert(base.id);
    return Ok();
  }
  Result<void> RemoveBase(const storage::BaseImage& base) override {
    std::lock_guard lock(mu);
    prepared.erase(base.id);
    return Ok();
  }
  Result<vmm::DiskSpec> CreateRootDisk(const storage::BaseImage&, std::string_view vm_id,
                                       int64_t size_mib) override {
    if (fail) return Internal("disk full");
    return Make(vm_id, "root.img", size_mib);
  }
  Result<vmm::DiskSpec> CreateDataDisk(std::string_view vm_id, int64_t size_mib) override {
    return Make(vm_id, "data.img", size_mib);
  }
  Result<void> Grow(const vmm::DiskSpec& disk, int64_t size_mib) override {
    std::lock_guard lock(mu);
    grown.push_back(disk.path.filename().string() + "=" + std::to_string(size_mib));
    fs::resize_file(disk.path, static_cast<uintmax_t>(size_mib) << 20);
    return Ok();
  }
  bool CanGrowOnline() const override { return true; }
  Result<void> Remove(const vmm::DiskSpec& disk) override {
    fs::remove(disk.path);
    return Ok();
  }
  Result<storage::VolumeUsage> Usage(const vmm::DiskSpec& disk) override {
    std::error_code ec;
    auto size = fs::file_size(disk.path, ec);
    if (ec) return NotFound(disk.path.string());
    return storage::VolumeUsage{static_cast<int64_t>(size), 4096};
  }
  Result<std::set<std::string>> ListOwners() override {
    std::set<std::string> owners;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir, ec)) {
      owners.insert(e.path().filename().string());
    }
    return owners;
  }
  Result<void> RemoveAll(std::string_view vm_id) override {
    fs::remove_all(dir / vm_id);
    return Ok();
  }

  fs::path dir;
  bool fail = false;
  std::mutex mu;
  std::set<std::string> prepared;
  std::vector<std::string> grown;

 private:
  Result<vmm::DiskSpec> Make(std::string_view vm_id, const char* file, int64_t size_mib) {
    fs::create_directories(dir / vm_id);
    fs::path path = dir / vm_id / file;
    VMCTL_TRY(WriteFileAtomic(path, ""));
    fs::resize_file(path, static_cast<uintmax_t>(size_mib) << 20);
    return vmm::DiskSpec{path, vmm::DiskSpec::Format::kRaw, false};
  }
};

class VmServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path("/tmp") / ("svc-" + std::to_string(::getpid()) + "-" +
                               ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "vms");
    fs::create_directories(dir_ / "guest/etc");
    backend_.guest_root = dir_ / "guest";
    volumes_.dir = dir_ / "disks";
    store_ = std::move(OpenSqliteStore(dir_ / "vmctl.db")).value();
    ASSERT_TRUE(store_->CreateUser(User{"admin", "admin", "", 1}).ok());
    for (auto f : {"vmlinux", "initramfs", "rootfs"})
      ASSERT_TRUE(WriteFileAtomic(dir_ / f, "x").ok());
    ASSERT_TRUE(
        store_
            ->PutImage(ImageRecord{"default", "h", dir_.string(), dir_ / "vmlinux",
                                   dir_ / "initramfs", dir_ / "rootfs", "6.1", "test", 1, 1})
            .ok());
    service_ = NewService();
  }
  void TearDown() override {
    service_.reset();
    auto vms = store_->ListVms(std::nullopt);
    for (const auto& vm : *vms) {
      ProcessRef{static_cast<pid_t>(vm.pid), vm.pid_start_time}.Signal(SIGKILL).ok();
    }
    fs::remove_all(dir_);
  }
  std::unique_ptr<VmService> NewService(int host_cpus = 0, int64_t host_memory_mib = 0) {
    VmServiceOptions o;
    o.host_cpus = host_cpus;
    o.host_memory_mib = host_memory_mib;
    o.state_dir = dir_;
    o.boot_timeout = seconds(10);
    o.stop_timeout = seconds(5);
    o.monitor_interval = milliseconds(50);
    return std::make_unique<VmService>(*store_, backend_, volumes_, network_, locks_, o);
  }
  // A stand-in `systemctl is-system-running --wait`: blocks until the test creates dir_/booted.
  fs::path BlockingSystemctl() {
    fs::path script = dir_ / "systemctl";
    EXPECT_TRUE(WriteFileAtomic(script,
                                "#!/bin/sh\n"
                                "while [ ! -e \"$(dirname \"$0\")/booted\" ]; do sleep 0.05; done\n"
                                "echo running\n",
                                0755)
                    .ok());
    return script;
  }
  bool HasEvent(const std::string& vm_id, const std::string& text) {
    for (const auto& e : *store_->ListEvents(vm_id, 100)) {
      if (e.detail.find(text) != std::string::npos) return true;
    }
    return false;
  }
  std::string WaitForState(const std::string& name, VmState want) {
    for (int i = 0; i < 200; ++i) {
      auto vm = service_->Get("admin", name);
      if (vm.ok() && vm->state == want) break;
      std::this_thread::sleep_for(milliseconds(25));
    }
    return std::string(VmStateName(service_->Get("admin", name)->state));
  }

  fs::path dir_;
  std::unique_ptr<Store> store_;
  FakeBackend backend_;
  FakeVolumes volumes_;
  FakeNetwork network_{"10.9.0.1/29"};  // five addresses for VMs
  VmLocks locks_;
  std::unique_ptr<VmService> service_;
};

TEST_F(VmServiceTest, CreateRunsAndExecs) {
  std::vector<std::string> progress;
  auto vm = service_->Create("admin", {.name = "web", .data_disk_mib = 0},
                             [&](const std::string& l) { progress.push_back(l); });
  ASSERT_TRUE(vm.ok()) << vm.error().message();
  EXPECT_EQ(vm->state, VmState::kRunning);
  EXPECT_GE(progress.size(), 4u);
  auto session = service_->Exec("admin", "web", {.argv = {"echo", "hi"}});
  ASSERT_TRUE(session.ok()) << session.error().message();
  auto out = (*session)->Next();
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->data, "hi\n");
  auto kinds = *store_->ListEvents(vm->id, 100);
  EXPECT_GE(kinds.size(), 4u);

  // Networking: identity from the id, first pool address, the NIC handed to the VMM, and the
  // guest configured through the agent (address, route, DNS, hostname).
  EXPECT_EQ(vm->tap, "vt" + vm->id);
  EXPECT_EQ(vm->mac, network::MacForVm(vm->id));
  EXPECT_EQ(vm->address, "10.9.0.2");
  EXPECT_EQ(backend_.last_net.tap, vm->tap);
  EXPECT_EQ(backend_.last_net.mac, vm->mac);
  EXPECT_NE(LinkAddresses(vm->tap).find("10.9.0.2/29"), std::string::npos)
      << LinkAddresses(vm->tap);
  EXPECT_EQ(*ReadFile(dir_ / "guest/etc/hostname"), "web\n");
  EXPECT_NE(ReadFile(dir_ / "guest/etc/hosts")->find("127.0.1.1\tweb"), std::string::npos);
  EXPECT_EQ(*ReadFile(dir_ / "guest/etc/resolv.conf"), "nameserver 192.0.2.53\n");
  char host[64] = {};
  ::gethostname(host, sizeof(host) - 1);
  EXPECT_STREQ(host, "web");
}

TEST_F(VmServiceTest, CreateReportsRunningOnlyOnceTheGuestHasBooted) {
  backend_.systemctl = BlockingSystemctl();
  std::mutex mu;
  std::vector<std::string> progress;
  Result<VmRecord> created = Unavailable("not yet");
  std::thread create([&] {
    created =
        service_->Create("admin", {.name = "web", .data_disk_mib = 0}, [&](const std::string& l) {
          std::lock_guard lock(mu);
          progress.push_back(l);
        });
  });
  auto waiting = [&] {
    std::lock_guard lock(mu);
    return !progress.empty() &&
           progress.back().find("Waiting for the guest to finish booting") != std::string::npos;
  };
  for (int i = 0; i < 400 && !waiting(); ++i) std::this_thread::sleep_for(milliseconds(25));
  ASSERT_TRUE(waiting()) << "the boot's progress is reported";
  EXPECT_NE(progress.back().find("systemd: starting"), std::string::npos) << progress.back();
  std::this_thread::sleep_for(milliseconds(500));
  auto vm = store_->GetVmByName("admin", "web");
  EXPECT_EQ(vm->state, VmState::kStarting) << "the agent answers, but the guest still boots";
  EXPECT_NE(LinkAddresses(vm->tap).find("10.9.0.2/29"), std::string::npos)
      << "the network is configured meanwhile";
  ASSERT_TRUE(WriteFileAtomic(dir_ / "booted", "").ok());
  create.join();
  ASSERT_TRUE(created.ok()) << created.error().message();
  EXPECT_EQ(created->state, VmState::kRunning);
  bool reported = false;
  for (const auto& line : progress) {
    reported |= line.find("finished booting (systemd: running)") != std::string::npos;
  }
  EXPECT_TRUE(reported);
  EXPECT_TRUE(HasEvent(created->id, "finished booting"));
}

TEST_F(VmServiceTest, AVmAdoptedWhileStartingIsFinishedLikeANormalBoot) {
  auto web = service_->Create("admin", {.name = "web", .data_disk_mib = 0}, nullptr);
  ASSERT_TRUE(web.ok()) << web.error().message();
  ASSERT_TRUE(service_->Stop("admin", "web", true).ok());
  // What a daemon killed mid-boot leaves: a VM starting, its VMM up, the guest neither
  // configured nor done booting.
  auto socket = fs::path(web->runtime_dir) / "agent.sock";
  auto vmm = SpawnDetached(
      {AgentBinary(), "--listen-unix", socket.string(), "--simulate-poweroff", "--root",
       backend_.guest_root.string(), "--systemctl", BlockingSystemctl().string()},
      {.log_file = dir_ / "adopted.log"});
  ASSERT_TRUE(vmm.ok());
  while (!fs::exists(socket)) std::this_thread::sleep_for(milliseconds(5));
  auto starting = store_->TransitionVm(web->id, VmState::kStopped, VmState::kStarting);
  ASSERT_TRUE(starting.ok());
  starting->pid = vmm->pid;
  starting->pid_start_time = vmm->start_time;
  starting->agent_socket = socket.string();
  ASSERT_TRUE(store_->UpdateVm(*starting).ok());

  service_ = NewService();  // the restarted daemon
  ASSERT_TRUE(service_->Reconcile().ok());
  service_->StartMonitor();
  for (int i = 0; i < 400 && LinkAddresses(web->tap).find("10.9.0.2/29") == std::string::npos;
       ++i) {
    std::this_thread::sleep_for(milliseconds(25));
  }
  EXPECT_NE(LinkAddresses(web->tap).find("10.9.0.2/29"), std::string::npos)
      << "the adopted guest's network is configured";
  std::this_thread::sleep_for(milliseconds(500));
  EXPECT_EQ(service_->Get("admin", "web")->state, VmState::kStarting) << "not booted yet";
  ASSERT_TRUE(WriteFileAtomic(dir_ / "booted", "").ok());
  EXPECT_EQ(WaitForState("web", VmState::kRunning), "running");
  EXPECT_TRUE(HasEvent(web->id, "adopted while starting"));
  EXPECT_TRUE(HasEvent(web->id, "finished booting"));
  EXPECT_EQ(service_->Get("admin", "web")->pid, vmm->pid);
  auto session = service_->Exec("admin", "web", {.argv = {"true"}});
  ASSERT_TRUE(session.ok()) << session.error().message();
  EXPECT_EQ((*session)->Next()->exit_code, 0);
}

TEST_F(VmServiceTest, ASharedVmIsVisibleToTheUserItIsSharedWith) {
  ASSERT_TRUE(store_->CreateUser(User{"u-bob", "bob", "bob@example.com", 1}).ok());
  ASSERT_TRUE(store_->CreateUser(User{"u-me", "me", "me@example.com", 1}).ok());
  auto web = service_->Create("u-me", {.name = "web", .data_disk_mib = 0}, nullptr);
  ASSERT_TRUE(web.ok()) << web.error().message();
  // Not yet shared, bob sees no such VM; then he sees the owner's.
  EXPECT_EQ(service_->FindVisible("u-bob", "web").error().message(), "no VM named 'web'");
  ASSERT_TRUE(store_->AddShare(Share{web->id, "u-bob", 1}).ok());
  EXPECT_EQ(service_->FindVisible("u-bob", "web")->owner, "u-me");
  EXPECT_EQ(service_->FindVisible("u-me", "web")->owner, "u-me");
  // Sharing is not ownership: to bob, "web" is still not his.
  EXPECT_EQ(service_->Get("u-bob", "web").error().message(), "no VM named 'web'");
  ASSERT_TRUE(service_->Remove("u-me", "web").ok());
}

TEST_F(VmServiceTest, AVmNameIsTakenForEveryUserOnceAnyoneHasIt) {
  ASSERT_TRUE(store_->CreateUser(User{"u-bob", "bob", "bob@example.com", 1}).ok());
  ASSERT_TRUE(service_->Create("admin", {.name = "web", .data_disk_mib = 0}, nullptr).ok());
  for (const char* who : {"u-bob", "admin"}) {
    auto taken = service_->Create(who, {.name = "web", .data_disk_mib = 0}, nullptr);
    ASSERT_FALSE(taken.ok());
    EXPECT_EQ(taken.error().code(), ErrorCode::kAlreadyExists);
    EXPECT_EQ(taken.error().message(), "VM name 'web' is taken");
  }
  EXPECT_TRUE(service_->List("u-bob")->empty());
  ASSERT_TRUE(service_->Remove("admin", "web").ok());
  // Free again once removed.
  auto bobs = service_->Create("u-bob", {.name = "web", .data_disk_mib = 0}, nullptr);
  ASSERT_TRUE(bobs.ok()) << bobs.error().message();
  ASSERT_TRUE(service_->Remove("u-bob", "web").ok());
}

TEST_F(VmServiceTest, AddressPoolExhaustsCleanlyAndReusesFreedAddresses) {
  ASSERT_TRUE(store_->SetQuota(Quota{"admin", 20, 64, 65536, 1 << 20}).ok());
  std::vector<std::string> addresses;
  for (int i = 0; i < 5; ++i) {
    auto vm =
        service_->Create("admin", {.name = "vm" + std::to_string(i), .data_disk_mib = 0}, nullptr);
    ASSERT_TRUE(vm.ok()) << vm.error().message();
    addresses.push_back(vm->address);
  }
  EXPECT_EQ(addresses,
            (std::vector<std::string>{"10.9.0.2", "10.9.0.3", "10.9.0.4", "10.9.0.5", "10.9.0.6"}));
  auto full = service_->Create("admin", {.name = "extra", .data_disk_mib = 0}, nullptr);
  ASSERT_FALSE(full.ok());
  EXPECT_EQ(full.error().code(), ErrorCode::kResourceExhausted);
  EXPECT_NE(full.error().message().find("no free address"), std::string::npos)
      << full.error().message();
  EXPECT_EQ(store_->ListVms(std::nullopt)->size(), 5u) << "the refused VM left no row";
  EXPECT_EQ(network_.attached.size(), 5u);
  EXPECT_EQ(backend_.launches, 5);

  ASSERT_TRUE(service_->Remove("admin", "vm2").ok());
  EXPECT_EQ(network_.attached.size(), 4u);
  auto again = service_->Create("admin", {.name = "extra", .data_disk_mib = 0}, nullptr);
  ASSERT_TRUE(again.ok()) << again.error().message();
  EXPECT_EQ(again->address, "10.9.0.4") << "the freed address is reused";
  // Stop detaches, start re-attaches with the same address.
  ASSERT_TRUE(service_->Stop("admin", "extra", true).ok());
  EXPECT_EQ(network_.attached.count(again->id), 0u);
  auto started = service_->Start("admin", "extra", nullptr);
  ASSERT_TRUE(started.ok()) << started.error().message();
  EXPECT_EQ(started->address, "10.9.0.4");
  EXPECT_EQ(network_.attached.count(again->id), 1u);
}

TEST_F(VmServiceTest, DuplicateNamesAndQuotaChangeNothing) {
  ASSERT_TRUE(service_->Create("admin", {.name = "web", .data_disk_mib = 0}, nullptr).ok());
  auto dup = service_->Create("admin", {.name = "web", .data_disk_mib = 0}, nullptr);
  EXPECT_EQ(dup.error().code(), ErrorCode::kAlreadyExists);
  ASSERT_TRUE(store_->SetQuota(Quota{"admin", 1, 8, 8192, 65536}).ok());
  auto over = service_->Create("admin", {.name = "db", .data_disk_mib = 0}, nullptr);
  EXPECT_EQ(over.error().code(), ErrorCode::kResourceExhausted);
  EXPECT_EQ(store_->ListVms(std::nullopt)->size(), 1u);
  EXPECT_EQ(backend_.launches, 1);
  size_t dirs = 0;
  for ([[maybe_unused]] const auto& d : fs::directory_iterator(dir_ / "vms")) ++dirs;
  EXPECT_EQ(dirs, 1u);
}

TEST_F(VmServiceTest, HostCapacityRefusesCreatesWhoeverAsks) {
  service_ = NewService(3, 1536);
  ASSERT_TRUE(store_->CreateUser(User{"u-a", "a", "a@example.com", 1}).ok());
  ASSERT_TRUE(store_->CreateUser(User{"u-b", "b", "b@example.com", 1}).ok());
  ASSERT_TRUE(service_->Create("u-a", {.name = "one", .data_disk_mib = 0}, nullptr).ok());
  ASSERT_TRUE(
      service_->Create("u-b", {.name = "two", .cpus = 2, .data_disk_mib = 0}, nullptr).ok());
  for (const std::string owner : {"admin", "u-a", "u-b"}) {
    auto over = service_->Create(owner, {.name = "three", .data_disk_mib = 0}, nullptr);
    ASSERT_FALSE(over.ok()) << owner;
    EXPECT_EQ(over.error().code(), ErrorCode::kResourceExhausted);
    EXPECT_EQ(over.error().message(),
              "host capacity reached: 3 of 3 CPUs are given to VMs, 0 left, 1 requested");
  }
  ASSERT_TRUE(service_->Remove("u-b", "two").ok());
  auto memory = service_->Create(
      "u-b", {.name = "big", .cpus = 1, .memory_mib = 1025, .data_disk_mib = 0}, nullptr);
  ASSERT_FALSE(memory.ok());
  EXPECT_EQ(memory.error().message(),
            "host capacity reached: 512 of 1536 MiB memory are given to VMs, 1024 MiB left, 1025 "
            "MiB requested");
  EXPECT_EQ(store_->ListVms(std::nullopt)->size(), 1u) << "refused creates leave no row";
  EXPECT_EQ(backend_.launches, 2);
  ASSERT_TRUE(service_
                  ->Create("u-b",
                           {.name = "fits", .cpus = 2, .memory_mib = 1024, .data_disk_mib = 0},
                           nullptr)
                  .ok());
}

TEST_F(VmServiceTest, DiskFailureRollsTheCreateBack) {
  volumes_.fail = true;
  auto vm = service_->Create("admin", {.name = "web", .data_disk_mib = 0}, nullptr);
  ASSERT_FALSE(vm.ok());
  EXPECT_NE(vm.error().message().find("disk full"), std::string::npos);
  EXPECT_TRUE(store_->ListVms(std::nullopt)->empty());
  EXPECT_TRUE(fs::is_empty(dir_ / "vms"));
  EXPECT_TRUE(volumes_.ListOwners()->empty()) << "no volume left behind";
}

TEST_F(VmServiceTest, VolumesComeFromTheImageBuildAndGoWithTheVm) {
  auto vm = service_->Create("admin", {.name = "web", .root_disk_mib = 1024, .data_disk_mib = 0},
                             nullptr);
  ASSERT_TRUE(vm.ok()) << vm.error().message();
  EXPECT_EQ(vm->storage, "fake");
  EXPECT_EQ(vm->image_dir, dir_.string());
  EXPECT_EQ(volumes_.prepared, std::set<std::string>{dir_.filename().string()});
  auto disks = service_->Disks("admin", "web");
  ASSERT_TRUE(disks.ok());
  ASSERT_EQ(disks->size(), 1u);
  EXPECT_EQ((*disks)[0].role, "root");
  EXPECT_EQ((*disks)[0].usage.size_bytes, int64_t{1024} << 20);
  EXPECT_EQ(*volumes_.ListOwners(), std::set<std::string>{vm->id});
  ASSERT_TRUE(service_->Remove("admin", "web").ok());
  EXPECT_TRUE(volumes_.ListOwners()->empty());
}

TEST_F(VmServiceTest, ResizeGrowsOnlyAndWaitsForTheNextStartWithoutOnlineSupport) {
  ASSERT_TRUE(service_->Create("admin", {.name = "web", .data_disk_mib = 0}, nullptr).ok());
  auto shrink = service_->Resize("admin", "web", 1024, 0, nullptr);
  ASSERT_FALSE(shrink.ok());
  EXPECT_EQ(shrink.error().code(), ErrorCode::kInvalidArgument);
  auto no_data = service_->Resize("admin", "web", 0, 4096, nullptr);
  ASSERT_FALSE(no_data.ok());
  EXPECT_EQ(no_data.error().code(), ErrorCode::kFailedPrecondition);

  // The fake VMM cannot tell a running guest: the wanted size is recorded for the next start.
  std::vector<std::string> progress;
  auto later = service_->Resize("admin", "web", 3072, 0,
                                [&](const std::string& l) { progress.push_back(l); });
  ASSERT_TRUE(later.ok()) << later.error().message();
  EXPECT_EQ(later->root_disk_mib, 3072);
  ASSERT_EQ(progress.size(), 1u);
  EXPECT_NE(progress[0].find("grow at the next start"), std::string::npos) << progress[0];
  EXPECT_TRUE(volumes_.grown.empty());
  ASSERT_TRUE(service_->Restart("admin", "web", nullptr).ok());
  EXPECT_EQ(volumes_.grown, std::vector<std::string>{"root.img=3072"});

  // A stopped VM's volume grows at once.
  ASSERT_TRUE(service_->Stop("admin", "web", true).ok());
  ASSERT_TRUE(service_->Resize("admin", "web", 4096, 0, nullptr).ok());
  EXPECT_EQ(volumes_.grown.back(), "root.img=4096");
  EXPECT_EQ((*service_->Disks("admin", "web"))[0].usage.size_bytes, int64_t{4096} << 20);
}

TEST_F(VmServiceTest, LaunchFailureMarksFailedAndStartRetries) {
  backend_.fail_launch = true;
  auto vm = service_->Create("admin", {.name = "web", .data_disk_mib = 0}, nullptr);
  ASSERT_FALSE(vm.ok());
  EXPECT_NE(vm.error().message().find("fake VMM refused"), std::string::npos);
  auto failed = service_->Get("admin", "web");
  EXPECT_EQ(failed->state, VmState::kFailed);
  EXPECT_EQ(failed->pid, 0);
  EXPECT_EQ(service_->Exec("admin", "web", {.argv = {"true"}}).error().code(),
            ErrorCode::kFailedPrecondition);
  backend_.fail_launch = false;
  auto started = service_->Start("admin", "web", nullptr);
  ASSERT_TRUE(started.ok()) << started.error().message();
  EXPECT_EQ(started->state, VmState::kRunning);
}

TEST_F(VmServiceTest, MonitorNoticesADeadVmm) {
  service_->StartMonitor();
  auto vm = service_->Create("admin", {.name = "web", .data_disk_mib = 0}, nullptr);
  ASSERT_TRUE(vm.ok());
  ::kill(static_cast<pid_t>(vm->pid), SIGKILL);
  EXPECT_EQ(WaitForState("web", VmState::kStopped), "stopped");
  EXPECT_EQ(service_->Get("admin", "web")->pid, 0);
}

TEST_F(VmServiceTest, StopStartRestartAndRemove) {
  ASSERT_TRUE(service_->Create("admin", {.name = "web", .data_disk_mib = 0}, nullptr).ok());
  auto stopped = service_->Stop("admin", "web", false);
  ASSERT_TRUE(stopped.ok()) << stopped.error().message();
  EXPECT_EQ(stopped->state, VmState::kStopped);
  auto events = *store_->ListEvents(stopped->id, 100);
  EXPECT_NE(events.back().detail.find("stopping -> stopped"), std::string::npos);
  ASSERT_TRUE(service_->Start("admin", "web", nullptr).ok());
  ASSERT_TRUE(service_->Restart("admin", "web", nullptr).ok());
  auto runtime = service_->Get("admin", "web")->runtime_dir;
  ASSERT_TRUE(service_->Remove("admin", "web").ok());
  EXPECT_FALSE(fs::exists(runtime));
  EXPECT_EQ(service_->Get("admin", "web").error().code(), ErrorCode::kNotFound);
}

TEST_F(VmServiceTest, ReconcileAdoptsRollsBackAndRemovesOrphans) {
  auto web = service_->Create("admin", {.name = "web", .data_disk_mib = 0}, nullptr);
  ASSERT_TRUE(web.ok());
  // An interrupted create, an orphan VMM process and an orphan directory.
  VmRecord half = *web;
  half.id = "0000deadbeef";
  half.name = "half";
  half.state = VmState::kCreating;
  half.pid = 0;
  half.address.clear();
  half.tap = "vt" + half.id;
  half.runtime_dir = (dir_ / "vms" / half.id).string();
  ASSERT_TRUE(store_->InsertVm(half).ok());
  fs::create_directories(half.runtime_dir);
  fs::create_directories(dir_ / "vms/0000000orphn");
  auto orphan = SpawnDetached(
      {AgentBinary(), "--listen-unix", (dir_ / "vms/0000000orphn/agent.sock").string()},
      {.log_file = "/dev/null"});
  ASSERT_TRUE(orphan.ok());

  service_ = NewService();  // a restarted daemon
  auto actions = service_->Reconcile();
  ASSERT_TRUE(actions.ok()) << actions.error().message();
  EXPECT_TRUE(orphan->WaitExit(seconds(5)).ok()) << "orphan VMM killed";
  EXPECT_FALSE(fs::exists(dir_ / "vms/0000000orphn"));
  EXPECT_FALSE(fs::exists(half.runtime_dir));
  EXPECT_EQ(service_->Get("admin", "half").error().code(), ErrorCode::kNotFound);
  auto adopted = service_->Get("admin", "web");
  EXPECT_EQ(adopted->state, VmState::kRunning);
  EXPECT_EQ(adopted->pid, web->pid);
  EXPECT_EQ(adopted->address, web->address);
  EXPECT_EQ(network_.attached.count(web->id), 1u) << "the adopted VM's network is re-attached";
  auto session = service_->Exec("admin", "web", {.argv = {"true"}});
  ASSERT_TRUE(session.ok()) << session.error().message();
  EXPECT_EQ((*session)->Next()->exit_code, 0);
}

}  // namespace
}  // namespace vmctl::controller
