// The lvm-thin volume backend for real: this host has no device-mapper, but the guest kernel has
// dm-thin. The test boots a VM whose data disk is left unmounted as a spare, ships the backend's
// live test binary and the host's LVM tools into it (with the libraries the guest lacks), and
// runs it there against the spare disk.
#include <gtest/gtest.h>

#include <cstdlib>
#include <set>
#include <sstream>

#include "base/io.h"
#include "tests/e2e/daemon.h"

namespace vmctl::e2e {
namespace {

namespace fs = std::filesystem;
using std::chrono::seconds;

// glibc itself stays the guest's (same Debian release); everything else the tools link comes
// along, first on LD_LIBRARY_PATH.
const std::set<std::string> kGuestGlibc = {
    "libc.so.6",  "libm.so.6",      "libpthread.so.0", "libdl.so.2",
    "librt.so.1", "libresolv.so.2", "linux-vdso.so.1", "ld-linux-x86-64.so.2"};

void AddWithLibraries(const fs::path& binary, const fs::path& bundle) {
  fs::copy_file(binary, bundle / "bin" / binary.filename(), fs::copy_options::overwrite_existing);
  auto ldd = RunCommandChecked({"ldd", binary.string()});
  ASSERT_TRUE(ldd.ok()) << ldd.error().message();
  std::istringstream lines(ldd->out);
  for (std::string line; std::getline(lines, line);) {
    auto arrow = line.find(" => /");
    if (arrow == std::string::npos) continue;
    std::string path = line.substr(arrow + 4, line.find(" (", arrow) - arrow - 4);
    std::string name = fs::path(path).filename().string();
    if (kGuestGlibc.count(name)) continue;
    fs::copy_file(fs::canonical(path), bundle / "lib" / name, fs::copy_options::skip_existing);
  }
}

TEST(LvmThinVmTest, TheBackendsLiveTestPassesInsideAGuest) {
  for (const char* tool : {"/usr/sbin/lvm", "/usr/sbin/pdata_tools"}) {
    ASSERT_TRUE(fs::exists(tool)) << tool
                                  << " missing: run scripts/setup.sh (lvm2, "
                                     "thin-provisioning-tools)";
  }
  TestDaemon d;
  d.Start();
  auto created = d.Vmctl({"create", "lvm", "--memory", "1G", "--disk", "1G"});
  ASSERT_EQ(created.exit_code, 0) << created.err;
  auto sh = [&](const std::string& script, const std::string& input = "") {
    return d.Vmctl({"exec", "lvm", "--", "sh", "-c", script}, input, seconds(600));
  };
  // The data disk becomes the spare: unmounted and wiped.
  auto spare = sh("umount /data && wipefs -q -a /dev/vdb && lsmod | grep -c '^dm_' || true");
  ASSERT_EQ(spare.exit_code, 0) << spare.err;

  fs::path bundle = d.dir() / "lvm-bundle";
  fs::create_directories(bundle / "bin");
  fs::create_directories(bundle / "lib");
  fs::create_directories(bundle / "etc");
  const char* build = std::getenv("VMCTL_BUILD_DIR");
  fs::path test_binary =
      fs::path(build && *build ? build : "build") / "src/storage/storage_lvm_live_test";
  AddWithLibraries(test_binary, bundle);
  ASSERT_TRUE(
      RunCommandChecked({"strip", (bundle / "bin" / test_binary.filename()).string()}).ok());
  AddWithLibraries("/usr/sbin/lvm", bundle);
  AddWithLibraries("/usr/sbin/pdata_tools", bundle);
  for (const char* command : {"pvcreate", "pvremove", "vgcreate", "vgremove", "vgs", "lvcreate",
                              "lvremove", "lvrename", "lvextend", "lvchange", "lvs"}) {
    fs::create_symlink("lvm", bundle / "bin" / command);
  }
  fs::create_symlink("pdata_tools", bundle / "bin/thin_check");
  // The guest has no LVM udev rules, so LVM makes its device nodes itself.
  ASSERT_TRUE(WriteFileAtomic(bundle / "etc/lvm.conf",
                              "global { thin_check_executable = \"/opt/lvmtest/bin/thin_check\" }\n"
                              "activation { udev_sync = 0 udev_rules = 0 monitoring = 0 }\n"
                              "devices { obtain_device_list_from_udev = 0 }\n")
                  .ok());
  auto tar = RunCommandChecked({"tar", "-C", bundle.string(), "-czf", "-", "."});
  ASSERT_TRUE(tar.ok()) << tar.error().message();
  auto shipped = sh("mkdir -p /opt/lvmtest && tar -xzf - -C /opt/lvmtest", tar->out);
  ASSERT_EQ(shipped.exit_code, 0) << shipped.err;

  auto run =
      sh("export PATH=/opt/lvmtest/bin:$PATH LD_LIBRARY_PATH=/opt/lvmtest/lib "
         "LVM_SYSTEM_DIR=/opt/lvmtest/etc VMCTL_LVM_TEST_DEVICE=/dev/vdb; "
         "storage_lvm_live_test 2>&1");
  EXPECT_EQ(run.exit_code, 0) << run.out << run.err;
  EXPECT_NE(run.out.find("[  PASSED  ] 1 test"), std::string::npos) << run.out;
  EXPECT_EQ(run.out.find("SKIPPED"), std::string::npos) << run.out;
  ASSERT_EQ(d.Vmctl({"rm", "lvm"}).exit_code, 0);
}

}  // namespace
}  // namespace vmctl::e2e
