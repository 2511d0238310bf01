#include "vmm/qemu/qemu_argv.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace vmctl::vmm::qemu {
namespace {

// Compares argv (one argument per line) with testdata/NAME.golden; UPDATE_GOLDEN=1 rewrites it.
void ExpectGolden(const std::vector<std::string>& argv, const std::string& name) {
  std::string actual;
  for (const auto& a : argv) actual += a + "\n";
  std::filesystem::path path =
      std::filesystem::path(VMCTL_SOURCE_DIR) / "src/vmm/qemu/testdata" / (name + ".golden");
  if (std::getenv("UPDATE_GOLDEN")) {
    std::ofstream(path) << actual;
    return;
  }
  std::ifstream in(path);
  ASSERT_TRUE(in) << "missing " << path << " (run with UPDATE_GOLDEN=1)";
  std::stringstream expected;
  expected << in.rdbuf();
  EXPECT_EQ(actual, expected.str()) << "golden " << name;
}

LaunchSpec Spec() {
  LaunchSpec spec;
  spec.vm_id = "0123456789ab";
  spec.vm_name = "demo";
  spec.cpus = 2;
  spec.memory_mib = 1024;
  spec.kernel = "/images/h/vmlinux";
  spec.initramfs = "/images/h/initramfs.cpio.gz";
  spec.kernel_cmdline = "root=/dev/vda rw panic=-1";
  spec.disks = {{"/state/vms/0123456789ab/root.qcow2", DiskSpec::Format::kQcow2, false}};
  spec.runtime_dir = "/state/vms/0123456789ab";
  spec.console_log = "/state/vms/0123456789ab/console.log";
  spec.vmm_log = "/state/vms/0123456789ab/vmm.log";
  return spec;
}

// The full-featured VM: qcow2 root disk, raw read-only data disk, a TAP NIC.
LaunchSpec FullSpec() {
  LaunchSpec spec = Spec();
  spec.disks.push_back({"/data/extra.img", DiskSpec::Format::kRaw, true});
  spec.net = NetSpec{"vm0123456789ab", "02:00:01:23:45:67"};
  return spec;
}

TEST(QemuArgvTest, Q35Tcg) {
  ExpectGolden(
      BuildArgv(FullSpec(), {.accel = Accel::kTcg, .machine = Machine::kQ35, .tsc_khz = 2096028}),
      "q35_tcg");
}

TEST(QemuArgvTest, MicrovmTcg) {
  ExpectGolden(BuildArgv(FullSpec(),
                         {.accel = Accel::kTcg, .machine = Machine::kMicrovm, .tsc_khz = 2096028}),
               "microvm_tcg_net");
}

TEST(QemuArgvTest, KvmWithoutInitramfs) {
  LaunchSpec spec = Spec();
  spec.initramfs.clear();
  spec.kernel_cmdline.clear();
  // Under KVM the guest reads the real TSC: no tsc_early_khz even when the host value is known.
  ExpectGolden(BuildArgv(spec, {.binary = "/opt/qemu/bin/qemu-system-x86_64",
                                .accel = Accel::kKvm,
                                .machine = Machine::kQ35,
                                .tsc_khz = 2096028}),
               "q35_kvm_no_initramfs");
}

TEST(QemuArgvTest, RuntimeDirAppearsSoOrphansCanBeFound) {
  bool found = false;
  for (const auto& a : BuildArgv(FullSpec(), {})) {
    found = found || a.find("/state/vms/0123456789ab/") != std::string::npos;
  }
  EXPECT_TRUE(found);
}

TEST(QemuArgvTest, NeverRequestsVhostOrSuppressesGuestPowerEvents) {
  for (const auto& a : BuildArgv(FullSpec(), {})) {
    EXPECT_EQ(a.find("vhost"), std::string::npos) << a;
    // Guest reboot must reset the VM and guest poweroff must end the process.
    EXPECT_NE(a, "-no-reboot");
    EXPECT_NE(a, "-no-shutdown");
  }
}

TEST(QemuArgvTest, CommasInPathsAreEscapedForQemuOptionParser) {
  EXPECT_EQ(EscapeOptionValue("/a,b/c,,d"), "/a,,b/c,,,,d");
  LaunchSpec spec = Spec();
  spec.disks[0].path = "/state/a,b/root.qcow2";
  auto argv = BuildArgv(spec, {});
  EXPECT_NE(std::find(argv.begin(), argv.end(),
                      "file=/state/a,,b/root.qcow2,if=none,id=disk0,format=qcow2"),
            argv.end());
}

}  // namespace
}  // namespace vmctl::vmm::qemu
