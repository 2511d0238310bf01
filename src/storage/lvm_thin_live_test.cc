// The lvm-thin backend against real LVM. Hosts without device-mapper cannot run it, so the
// end-to-end suite runs this binary inside a VM whose spare disk is VMCTL_LVM_TEST_DEVICE; it
// skips everywhere else.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <sstream>

#include "base/io.h"
#include "base/process.h"
#include "storage/backends.h"

namespace vmctl::storage {
namespace {

namespace fs = std::filesystem;
constexpr int64_t kMib = int64_t{1} << 20;
constexpr char kVg[] = "vmctltest";

class LvmThinLiveTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* device = std::getenv("VMCTL_LVM_TEST_DEVICE");
    if (device == nullptr || *device == '\0') {
      GTEST_SKIP() << "set VMCTL_LVM_TEST_DEVICE to a spare block device (the e2e suite runs "
                      "this inside a VM)";
    }
    device_ = device;
    for (const auto& argv : std::vector<std::vector<std::string>>{
             {"pvcreate", "-q", "-ff", "-y", device_},
             {"vgcreate", "-q", kVg, device_},
             {"lvcreate", "-q", "--type", "thin-pool", "-L", "900m", "-n", "pool", kVg}}) {
      auto out = RunCommandChecked(argv);
      ASSERT_TRUE(out.ok()) << out.error().message();
    }
    dir_ = fs::temp_directory_path() / "lvm-live";
    fs::create_directories(dir_ / "tree");
    ASSERT_TRUE(WriteFileAtomic(dir_ / "tree/hello", "hello from the base\n").ok());
    base_ = {"c0ffee", dir_ / "base.ext4"};
    ASSERT_TRUE(RunCommandChecked({"mkfs.ext4", "-q", "-F", "-d", (dir_ / "tree").string(),
                                   base_.rootfs.string(), "64M"})
                    .ok());
  }
  void TearDown() override {
    if (device_.empty()) return;
    (void)RunCommand({"vgremove", "-q", "-f", kVg});
    (void)RunCommand({"pvremove", "-q", "-ff", "-y", device_});
    fs::remove_all(dir_);
  }
  std::string device_;
  fs::path dir_;
  BaseImage base_;
};

TEST_F(LvmThinLiveTest, ThinSnapshotsOfABaseAndThinDataVolumes) {
  std::string why;
  auto chosen = ChooseBackend({.requested = "auto", .dir = dir_, .lvm = {kVg, "pool"}}, &why);
  ASSERT_TRUE(chosen.ok()) << chosen.error().message();
  ASSERT_EQ((*chosen)->name(), "lvm-thin") << why;
  VolumeBackend& lvm = **chosen;
  ASSERT_TRUE(lvm.PrepareBase(base_).ok());
  ASSERT_TRUE(lvm.PrepareBase(base_).ok()) << "idempotent";

  std::vector<vmm::DiskSpec> roots;
  for (int i = 0; i < 3; ++i) {
    auto root = lvm.CreateRootDisk(base_, fmt::format("00000000000{}", i), 256);
    ASSERT_TRUE(root.ok()) << root.error().message();
    roots.push_back(*root);
  }
  EXPECT_EQ(roots[1].path, "/dev/vmctltest/vmctl-000000000001-root");
  for (const auto& root : roots) {
    auto same = RunCommand(
        {"cmp", "-n", std::to_string(64 * kMib), base_.rootfs.string(), root.path.string()});
    EXPECT_EQ(same->exit_code, 0) << same->out;
    auto usage = lvm.Usage(root);
    ASSERT_TRUE(usage.ok()) << usage.error().message();
    EXPECT_EQ(usage->size_bytes, 256 * kMib);
  }
  auto fsck = RunCommand({"e2fsck", "-n", "-f", roots[0].path.string()});
  EXPECT_EQ(fsck->exit_code, 0) << fsck->out << fsck->err;

  auto data = lvm.CreateDataDisk("000000000000", 128);
  ASSERT_TRUE(data.ok()) << data.error().message();
  auto zeros =
      RunCommand({"cmp", "-n", std::to_string(128 * kMib), data->path.string(), "/dev/zero"});
  EXPECT_EQ(zeros->exit_code, 0) << zeros->out;
  EXPECT_LT(lvm.Usage(*data)->allocated_bytes, 8 * kMib) << "thin: nothing written yet";
  // Grown under a mounted filesystem, which then grows online, as a VM's data disk does.
  fs::path mnt = dir_ / "mnt";
  fs::create_directories(mnt);
  ASSERT_TRUE(RunCommandChecked({"mkfs.ext4", "-q", data->path.string()}).ok());
  ASSERT_TRUE(RunCommandChecked({"mount", data->path.string(), mnt.string()}).ok());
  ASSERT_TRUE(lvm.Grow(*data, 192).ok());
  EXPECT_EQ(lvm.Usage(*data)->size_bytes, 192 * kMib);
  auto grown = RunCommand({"resize2fs", data->path.string()});
  EXPECT_EQ(grown->exit_code, 0) << grown->err;
  auto df = RunCommandChecked({"df", "-P", "-m", mnt.string()});
  ASSERT_TRUE(df.ok());
  std::istringstream lines(df->out);
  std::string header, device;
  int64_t size_mib = 0;
  std::getline(lines, header);
  lines >> device >> size_mib;
  EXPECT_GT(size_mib, 170) << df->out;
  ASSERT_TRUE(RunCommandChecked({"umount", mnt.string()}).ok());
  EXPECT_EQ(lvm.Grow(*data, 64).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(lvm.CreateDataDisk("000000000000", 128).error().code(), ErrorCode::kAlreadyExists);
  EXPECT_EQ(lvm.CreateRootDisk(base_, "000000000009", 32).error().code(),
            ErrorCode::kInvalidArgument);

  EXPECT_EQ(lvm.ListOwners()->size(), 3u);
  ASSERT_TRUE(lvm.Remove(*data).ok());
  ASSERT_TRUE(lvm.RemoveAll("000000000000").ok());
  EXPECT_EQ(lvm.ListOwners()->size(), 2u);
  // Snapshots outlive their origin in a thin pool.
  ASSERT_TRUE(lvm.RemoveBase(base_).ok());
  auto still = RunCommand(
      {"cmp", "-n", std::to_string(64 * kMib), base_.rootfs.string(), roots[2].path.string()});
  EXPECT_EQ(still->exit_code, 0);
  ASSERT_TRUE(lvm.RemoveAll("000000000001").ok());
  ASSERT_TRUE(lvm.RemoveAll("000000000002").ok());
  EXPECT_TRUE(lvm.ListOwners()->empty());
}

}  // namespace
}  // namespace vmctl::storage
