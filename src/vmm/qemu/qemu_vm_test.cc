// Boots real guests under QEMU. Boot tests need VMCTL_TEST_IMAGE_DIR pointing at a directory with
// a PVH `vmlinux`, optionally `initramfs.cpio.gz` and `rootfs.ext4`. With a root filesystem the
// guest boots from a qcow2 overlay of it; without one it must idle after its initramfs starts.
// Either way, a guest whose root= device is missing must power itself off (the vmctl initramfs
// does).
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>

#include <cstdlib>
#include <nlohmann/json.hpp>
#include <thread>

#include "base/io.h"
#include "base/process.h"
#include "testing/netns/netns.h"
#include "vmm/qemu/qemu_backend.h"

// The TAP test's device lives in the test's own network namespace, never the host's.
VMCTL_TEST_IN_PRIVATE_NETWORK_NAMESPACE();

namespace vmctl::vmm::qemu {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using std::chrono::seconds;
using Clock = std::chrono::steady_clock;

// Generous: boots under TCG on a loaded 2-core host.
constexpr seconds kBootWait{180};

// Every process whose command line mentions `needle` (how the daemon finds orphaned VMMs).
std::vector<pid_t> ProcessesMentioning(const std::string& needle) {
  std::vector<pid_t> out;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    pid_t pid = static_cast<pid_t>(std::atoi(entry.path().filename().c_str()));
    if (pid <= 0 || pid == ::getpid()) continue;
    auto ref = ProcessRef::Of(pid);
    if (!ref.ok() || !ref->Alive()) continue;
    for (const auto& arg : ref->Cmdline()) {
      if (arg.find(needle) != std::string::npos) {
        out.push_back(pid);
        break;
      }
    }
  }
  return out;
}

bool SocketAnswers(const fs::path& socket) { return ConnectUnix(socket).ok(); }

// Polls the console log for `marker`; false once `timeout` passes.
bool WaitForConsole(const fs::path& log, const std::string& marker, milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    auto text = ReadFile(log);
    if (text.ok() && text->find(marker) != std::string::npos) return true;
    std::this_thread::sleep_for(milliseconds(100));
  }
  return false;
}

class QemuVmTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!FindProgram("qemu-system-x86_64")) GTEST_SKIP() << "qemu-system-x86_64 is not installed";
    // Short: socket paths must fit in 107 bytes.
    char dir_template[] = "/tmp/vq-XXXXXX";
    ASSERT_NE(::mkdtemp(dir_template), nullptr);
    dir_ = dir_template;
  }

  void TearDown() override {
    for (const auto& process : launched_) {
      (void)process.Signal(SIGKILL);
      (void)process.WaitExit(seconds(10));
    }
    if (!tap_.empty()) (void)RunCommand({"ip", "link", "del", tap_});
    std::error_code ec;
    if (!dir_.empty()) fs::remove_all(dir_, ec);
  }

  // A spec whose runtime files live in dir_/name, booting `image`.
  LaunchSpec Spec(const std::string& name, const fs::path& image) {
    fs::path runtime = dir_ / name;
    fs::create_directories(runtime);
    fs::permissions(runtime, fs::perms::owner_all);
    LaunchSpec spec;
    spec.vm_id = "test-" + name;
    spec.vm_name = name;
    spec.cpus = 1;
    spec.memory_mib = 512;
    spec.kernel = image / "vmlinux";
    if (fs::exists(image / "initramfs.cpio.gz")) spec.initramfs = image / "initramfs.cpio.gz";
    spec.runtime_dir = runtime;
    spec.console_log = runtime / "console.log";
    spec.vmm_log = runtime / "vmm.log";
    return spec;
  }

  // Launches and remembers the process so TearDown kills it whatever the test did.
  Result<std::unique_ptr<Instance>> Launch(Backend& backend, const LaunchSpec& spec) {
    auto instance = backend.Launch(spec);
    if (instance.ok()) launched_.push_back((*instance)->handle().process);
    return instance;
  }

  fs::path dir_;
  std::vector<ProcessRef> launched_;
  std::string tap_;
};

// Boot tests additionally need a guest image.
class QemuBootTest : public QemuVmTest {
 protected:
  void SetUp() override {
    QemuVmTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    const char* image = std::getenv("VMCTL_TEST_IMAGE_DIR");
    if (image == nullptr || *image == '\0') {
      GTEST_SKIP() << "set VMCTL_TEST_IMAGE_DIR to a directory with vmlinux, initramfs.cpio.gz "
                      "and optionally rootfs.ext4 to boot real guests";
    }
    image_ = fs::absolute(image);
    ASSERT_TRUE(fs::exists(image_ / "vmlinux")) << image_ << " has no vmlinux";
  }

  // A guest that keeps running: its root disk is a qcow2 overlay on the image's rootfs (or a
  // blank qcow2 when the image has none), plus a raw read-only data disk.
  LaunchSpec RunningSpec(const std::string& name) {
    LaunchSpec spec = Spec(name, image_);
    fs::path root = spec.runtime_dir / "root.qcow2";
    std::vector<std::string> create = {"qemu-img", "create", "-q", "-f", "qcow2"};
    if (fs::exists(image_ / "rootfs.ext4")) {
      create.insert(create.end(),
                    {"-F", "raw", "-b", (image_ / "rootfs.ext4").string(), root.string()});
    } else {
      create.insert(create.end(), {root.string(), "64M"});
    }
    auto created = RunCommandChecked(create);
    EXPECT_TRUE(created.ok()) << created.error().message();
    fs::path data = spec.runtime_dir / "data.img";
    EXPECT_TRUE(WriteFileAtomic(data, std::string(1 << 20, '\0')).ok());
    spec.disks = {{root, DiskSpec::Format::kQcow2, false}, {data, DiskSpec::Format::kRaw, true}};
    return spec;
  }

  fs::path image_;
};

class QemuMachineTest : public QemuBootTest, public ::testing::WithParamInterface<Machine> {};

TEST_P(QemuMachineTest, LaunchQueryConsoleKill) {
  auto backend = NewQemuBackend({.machine = GetParam()});
  LaunchSpec spec = RunningSpec("boot");
  auto instance = Launch(*backend, spec);
  ASSERT_TRUE(instance.ok()) << instance.error().message();
  Instance& vm = **instance;
  const InstanceHandle handle = vm.handle();

  EXPECT_TRUE(vm.Alive());
  auto status = vm.QueryStatus();
  ASSERT_TRUE(status.ok()) << status.error().message();
  EXPECT_EQ(*status, "running");

  EXPECT_EQ(handle.api_socket, spec.runtime_dir / "qmp.sock");
  EXPECT_EQ(handle.agent_socket, spec.runtime_dir / "agent.sock");
  EXPECT_EQ(ProcessesMentioning(spec.runtime_dir.string() + "/"),
            std::vector<pid_t>{handle.process.pid});
  {
    auto agent = vm.ConnectAgent();
    EXPECT_TRUE(agent.ok()) << agent.error().message();
  }

  EXPECT_TRUE(WaitForConsole(spec.console_log, "Linux version", kBootWait))
      << "console:\n"
      << TailFile(spec.console_log, 4000);

  // Delivery only: whether the guest acts on the ACPI button depends on its userspace.
  EXPECT_TRUE(vm.RequestShutdown().ok());
  ASSERT_TRUE(vm.Kill().ok());
  EXPECT_FALSE(handle.process.Alive());
  EXPECT_FALSE(SocketAnswers(handle.api_socket));
  EXPECT_FALSE(SocketAnswers(handle.agent_socket));
  EXPECT_TRUE(ProcessesMentioning(spec.runtime_dir.string() + "/").empty());
  auto after = vm.QueryStatus();
  ASSERT_FALSE(after.ok());
  EXPECT_EQ(after.error().code(), ErrorCode::kUnavailable);
  EXPECT_TRUE(vm.Kill().ok()) << "Kill of an exited VM is a no-op";
}

INSTANTIATE_TEST_SUITE_P(Machines, QemuMachineTest,
                         ::testing::Values(Machine::kQ35, Machine::kMicrovm), [](const auto& info) {
                           return info.param == Machine::kQ35 ? "q35" : "microvm";
                         });

TEST_F(QemuBootTest, AdoptAfterDaemonRestartThenPauseResume) {
  InstanceHandle handle;
  const LaunchSpec spec = RunningSpec("adopt");
  {
    auto first = NewQemuBackend({});
    auto instance = Launch(*first, spec);
    ASSERT_TRUE(instance.ok()) << instance.error().message();
    handle = (*instance)->handle();
  }  // The first "daemon" goes away; the VM must not.
  ASSERT_TRUE(handle.process.Alive());

  auto second = NewQemuBackend({});
  auto adopted = second->Adopt(handle);
  ASSERT_TRUE(adopted.ok()) << adopted.error().message();
  Instance& vm = **adopted;
  EXPECT_EQ(*vm.QueryStatus(), "running");

  // QEMU serves one QMP client: a second adopter is told the VMM does not answer.
  auto rival = second->Adopt(handle);
  ASSERT_FALSE(rival.ok());
  EXPECT_EQ(rival.error().code(), ErrorCode::kUnavailable) << rival.error().message();

  ASSERT_TRUE(vm.Pause().ok());
  EXPECT_EQ(*vm.QueryStatus(), "paused");
  ASSERT_TRUE(vm.Resume().ok());
  EXPECT_EQ(*vm.QueryStatus(), "running");

  // QEMU grows the open qcow2 itself and tells the guest's virtio-blk.
  constexpr int64_t kGrown = int64_t{3} << 30;
  auto resized = vm.ResizeDisk(0, spec.disks[0], kGrown);
  ASSERT_TRUE(resized.ok()) << resized.error().message();
  auto info =
      RunCommandChecked({"qemu-img", "info", "-U", "--output=json", spec.disks[0].path.string()});
  ASSERT_TRUE(info.ok()) << info.error().message();
  EXPECT_EQ(nlohmann::json::parse(info->out)["virtual-size"], kGrown);
  EXPECT_FALSE(vm.ResizeDisk(5, spec.disks[0], kGrown).ok()) << "no such disk";

  ASSERT_TRUE(vm.Kill().ok());
  auto gone = second->Adopt(handle);
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.error().code(), ErrorCode::kNotFound) << gone.error().message();
}

TEST_F(QemuBootTest, GuestPowerOffEndsTheProcess) {
  auto backend = NewQemuBackend({});
  LaunchSpec spec = Spec("poweroff", image_);
  // No disk and a root= device that cannot exist: the initramfs gives up and powers off.
  spec.kernel_cmdline = "root=/dev/vmctl-test-missing";
  auto instance = Launch(*backend, spec);
  ASSERT_TRUE(instance.ok()) << instance.error().message();
  auto exited = (*instance)->WaitExit(kBootWait);
  ASSERT_TRUE(exited.ok()) << "console:\n" << TailFile(spec.console_log, 4000);
  EXPECT_NE(ReadFile(spec.console_log)->find("Power down"), std::string::npos);
  EXPECT_TRUE((*instance)->Kill().ok());
  EXPECT_FALSE(fs::exists((*instance)->handle().api_socket));
}

TEST_F(QemuBootTest, LaunchWithTapNetwork) {
  if (::geteuid() != 0 || !FindProgram("ip")) GTEST_SKIP() << "creating a TAP needs root and ip";
  std::string tap = "vqt" + std::to_string(::getpid());
  auto created = RunCommandChecked({"ip", "tuntap", "add", "dev", tap, "mode", "tap"});
  if (!created.ok()) GTEST_SKIP() << "cannot create a TAP: " << created.error().message();
  tap_ = tap;
  auto backend = NewQemuBackend({});
  LaunchSpec spec = RunningSpec("net");
  spec.net = NetSpec{tap, "02:00:00:00:00:01"};
  auto instance = Launch(*backend, spec);
  ASSERT_TRUE(instance.ok()) << instance.error().message();
  EXPECT_EQ(*(*instance)->QueryStatus(), "running");
  EXPECT_TRUE((*instance)->Kill().ok());
}

TEST_F(QemuVmTest, MissingKernelFailsWithQemusMessageAndLeavesNothing) {
  auto backend = NewQemuBackend({});
  LaunchSpec spec = Spec("nokernel", dir_);
  ASSERT_FALSE(fs::exists(spec.kernel));
  auto instance = Launch(*backend, spec);
  ASSERT_FALSE(instance.ok());
  const std::string& message = instance.error().message();
  EXPECT_NE(message.find("qemu exited during start"), std::string::npos) << message;
  EXPECT_NE(message.find("could not open kernel file"), std::string::npos) << message;
  EXPECT_NE(message.find(spec.kernel.string()), std::string::npos) << message;
  EXPECT_TRUE(ProcessesMentioning(spec.runtime_dir.string() + "/").empty());
  EXPECT_FALSE(fs::exists(spec.runtime_dir / "qmp.sock"));
  EXPECT_FALSE(fs::exists(spec.runtime_dir / "agent.sock"));
}

TEST_F(QemuVmTest, BogusBinaryIsNotFound) {
  auto backend = NewQemuBackend({.binary = "/nonexistent/qemu-system-x86_64"});
  auto instance = Launch(*backend, Spec("nobinary", dir_));
  ASSERT_FALSE(instance.ok());
  EXPECT_EQ(instance.error().code(), ErrorCode::kNotFound) << instance.error().message();
}

}  // namespace
}  // namespace vmctl::vmm::qemu
