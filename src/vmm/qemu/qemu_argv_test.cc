#include "vmm/qemu/qemu_argv.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

namespace vmctl::vmm::qemu {
namespace {

// Compares argv (one argument per line) with testdata/NAME.golden; UPDATE_GOLDEN=1 rewrites it.
void ExpectGolden(const std::vector<std::string>& argv, const std::string& name) {
  std::string actual;
  for (const auto& a : argv) actual += a + "\n";
  std::filesystem::path path = std::filesystem::path(VMCTL_SOURCE_DIR) /
                               "src/vmm/qemu/testdata" / (name + ".golden");
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

TEST(QemuArgvTest, Q35Tcg) {
  ExpectGolden(BuildArgv(Spec(), {.kvm = false, .machine = Machine::kQ35, .tsc_khz = 2096028}),
               "q35_tcg");
}

TEST(QemuArgvTest, MicrovmTcgWithNetAndSecondDisk) {
  auto spec = Spec();
  spec.disks.push_back({"/data/extra.img", DiskSpec::Format::kRaw, true});
  spec.net = NetSpec{"vm0123456789ab", "02:00:01:23:45:67"};
  ExpectGolden(BuildArgv(spec, {.kvm = false, .machine = Machine::kMicrovm, .tsc_khz = 2096028}),
               "microvm_tcg_net");
}

TEST(QemuArgvTest, KvmWithoutInitramfs) {
  auto spec = Spec();
  spec.initramfs.clear();
  spec.kernel_cmdline.clear();
  ExpectGolden(BuildArgv(spec, {.kvm = true, .machine = Machine::kQ35, .tsc_khz = 2096028}),
               "q35_kvm_no_initramfs");
}

TEST(QemuArgvTest, RuntimeDirAppearsSoOrphansCanBeFound) {
  auto argv = BuildArgv(Spec(), {});
  bool found = false;
  for (const auto& a : argv) found = found || a.find("/state/vms/0123456789ab/") != std::string::npos;
  EXPECT_TRUE(found);
  for (const auto& a : argv) EXPECT_EQ(a.find("vhost=on"), std::string::npos);
}

}  // namespace
}  // namespace vmctl::vmm::qemu
