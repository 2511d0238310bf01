#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <chrono>
#include <nlohmann/json.hpp>

#include "base/io.h"
#include "base/process.h"
#include "storage/backends.h"

namespace vmctl::storage {
namespace {

namespace fs = std::filesystem;
using vmm::DiskSpec;

constexpr int64_t kMib = int64_t{1} << 20;
constexpr int64_t kBaseMib = 16;
constexpr char kVm[] = "0123456789ab";

fs::path TempDir(const std::string& what) {
  std::string tmpl = (fs::temp_directory_path() / (what + ".XXXXXX")).string();
  EXPECT_NE(::mkdtemp(tmpl.data()), nullptr);
  return tmpl;
}

std::string Hash(const fs::path& p) {
  auto out = RunCommandChecked({"sha256sum", p.string()});
  return out.ok() ? out->out.substr(0, 64) : out.error().message();
}

unsigned Mode(const fs::path& p) {
  struct stat st {};
  EXPECT_EQ(::stat(p.c_str(), &st), 0);
  return st.st_mode & 07777;
}

// A real ext4 image with a file in it, so "content" means more than zeros.
fs::path MakeBase(const fs::path& dir, int64_t mib) {
  fs::create_directories(dir / "tree");
  EXPECT_TRUE(WriteFileAtomic(dir / "tree/hello", "hello from the base\n").ok());
  fs::path base = dir / "base.ext4";
  auto mkfs = RunCommand({"mkfs.ext4", "-q", "-F", "-d", (dir / "tree").string(), base.string(),
                          fmt::format("{}M", mib)});
  EXPECT_TRUE(mkfs.ok() && mkfs->exit_code == 0) << (mkfs.ok() ? mkfs->err : "");
  return base;
}

// What the guest would read from `disk`, as a raw file.
fs::path Flatten(const DiskSpec& disk, const fs::path& out) {
  if (disk.format == DiskSpec::Format::kRaw) return disk.path;
  auto flat = RunCommandChecked(
      {"qemu-img", "convert", "-U", "-f", "qcow2", "-O", "raw", disk.path.string(), out.string()});
  EXPECT_TRUE(flat.ok()) << flat.error().message();
  return out;
}

// The base in its first bytes and zeros after, up to size_mib.
void ExpectBaseThenZeros(const fs::path& base, const fs::path& raw, int64_t size_mib) {
  uint64_t base_bytes = fs::file_size(base);
  EXPECT_EQ(fs::file_size(raw), static_cast<uintmax_t>(size_mib * kMib));
  auto head = RunCommand({"cmp", "-n", std::to_string(base_bytes), base.string(), raw.string()});
  EXPECT_EQ(head->exit_code, 0) << head->out;
  auto tail = RunCommand({"cmp", "-n", std::to_string(size_mib * kMib - base_bytes), "-i",
                          fmt::format("{}:0", base_bytes), raw.string(), "/dev/zero"});
  EXPECT_EQ(tail->exit_code, 0) << tail->out;
}

void ExpectZeros(const fs::path& raw, int64_t size_mib) {
  EXPECT_EQ(fs::file_size(raw), static_cast<uintmax_t>(size_mib * kMib));
  auto cmp = RunCommand({"cmp", "-n", std::to_string(size_mib * kMib), raw.string(), "/dev/zero"});
  EXPECT_EQ(cmp->exit_code, 0) << cmp->out;
}

// Every backend that runs on any filesystem behaves the same through the interface.
class FileBackendTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    dir_ = TempDir("storage_test");
    base_ = {"abc123", MakeBase(dir_, kBaseMib)};
    base_hash_ = Hash(base_.rootfs);
    backend_ =
        GetParam() == "qcow2" ? NewQcow2Backend(dir_ / "disks") : NewCopyBackend(dir_ / "disks");
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path dir_;
  BaseImage base_;
  std::string base_hash_;
  std::unique_ptr<VolumeBackend> backend_;
};

TEST_P(FileBackendTest, RootAndDataDisksReadAsTheBaseAndZeros) {
  ASSERT_TRUE(backend_->PrepareBase(base_).ok());
  auto root = backend_->CreateRootDisk(base_, kVm, 64);
  ASSERT_TRUE(root.ok()) << root.error().message();
  EXPECT_EQ(root->format, backend_->format());
  EXPECT_EQ(root->path.parent_path(), dir_ / "disks" / kVm);
  EXPECT_EQ(Mode(root->path), 0600u);
  EXPECT_EQ(Mode(root->path.parent_path()), 0700u);
  ExpectBaseThenZeros(base_.rootfs, Flatten(*root, dir_ / "flat.img"), 64);
  if (GetParam() == "qcow2") {
    auto info = RunCommandChecked({"qemu-img", "info", "--output=json", root->path.string()});
    auto json = nlohmann::json::parse(info->out);
    EXPECT_EQ(json["backing-filename"], base_.rootfs.string());
    EXPECT_EQ(json["backing-filename-format"], "raw");
  }

  auto data = backend_->CreateDataDisk(kVm, 32);
  ASSERT_TRUE(data.ok()) << data.error().message();
  ExpectZeros(Flatten(*data, dir_ / "flat-data.img"), 32);
  auto usage = backend_->Usage(*data);
  ASSERT_TRUE(usage.ok()) << usage.error().message();
  EXPECT_EQ(usage->size_bytes, 32 * kMib);
  EXPECT_LT(usage->allocated_bytes, 2 * kMib) << "a new data disk is sparse";

  ASSERT_TRUE(backend_->Grow(*data, 48).ok());
  EXPECT_EQ(backend_->Usage(*data)->size_bytes, 48 * kMib);
  auto shrink = backend_->Grow(*data, 16);
  ASSERT_FALSE(shrink.ok());
  EXPECT_EQ(shrink.error().code(), ErrorCode::kInvalidArgument);

  EXPECT_EQ(*backend_->ListOwners(), std::set<std::string>{kVm});
  ASSERT_TRUE(backend_->Remove(*data).ok());
  EXPECT_FALSE(fs::exists(data->path));
  ASSERT_TRUE(backend_->RemoveAll(kVm).ok());
  EXPECT_TRUE(backend_->ListOwners()->empty());
  EXPECT_EQ(Hash(base_.rootfs), base_hash_) << "the base is never modified";
}

TEST_P(FileBackendTest, FailuresLeaveNothingBehind) {
  ASSERT_TRUE(backend_->CreateRootDisk(base_, kVm, 64).ok());
  auto again = backend_->CreateRootDisk(base_, kVm, 64);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code(), ErrorCode::kAlreadyExists);
  ASSERT_TRUE(backend_->RemoveAll(kVm).ok());

  auto small = backend_->CreateRootDisk(base_, kVm, kBaseMib - 1);
  ASSERT_FALSE(small.ok());
  EXPECT_EQ(small.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(small.error().message().find("smaller than its base"), std::string::npos);
  auto missing = backend_->CreateRootDisk({"ab", dir_ / "nope.ext4"}, kVm, 64);
  EXPECT_EQ(missing.error().code(), ErrorCode::kNotFound);
  auto relative = backend_->CreateRootDisk({"ab", "base.ext4"}, kVm, 64);
  EXPECT_EQ(relative.error().code(), ErrorCode::kInvalidArgument);
  auto bad_id = backend_->CreateDataDisk("../../etc", 64);
  EXPECT_EQ(bad_id.error().code(), ErrorCode::kInvalidArgument);
  auto outside = backend_->Remove({dir_ / "base.ext4", DiskSpec::Format::kRaw, false});
  EXPECT_EQ(outside.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_TRUE(fs::exists(dir_ / "base.ext4"));
  for (const auto& e : fs::recursive_directory_iterator(dir_ / "disks")) {
    ADD_FAILURE() << "left behind: " << e.path();
  }
}

INSTANTIATE_TEST_SUITE_P(Backends, FileBackendTest, ::testing::Values("qcow2", "copy"),
                         [](const auto& info) { return info.param; });

TEST(CopyBackendTest, DescribesItsCost) {
  auto dir = TempDir("storage_copy");
  EXPECT_NE(NewCopyBackend(dir)->Describe().find("WARNING"), std::string::npos);
  fs::remove_all(dir);
}

TEST(ReflinkBackendTest, RefusedWhereTheFilesystemCannotClone) {
  auto dir = TempDir("storage_noreflink");
  auto reflink = NewReflinkBackend(dir / "disks");
  if (reflink.ok()) GTEST_SKIP() << fs::temp_directory_path() << " can reflink";
  EXPECT_EQ(reflink.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(reflink.error().message().find("needs XFS"), std::string::npos)
      << reflink.error().message();
  std::vector<fs::path> left;
  for (const auto& e : fs::directory_iterator(dir / "disks")) left.push_back(e.path());
  EXPECT_TRUE(left.empty()) << "the probe files are gone";

  std::string why;
  auto chosen = ChooseBackend({.requested = "auto", .dir = dir / "disks"}, &why);
  ASSERT_TRUE(chosen.ok());
  EXPECT_EQ((*chosen)->name(), "qcow2");
  EXPECT_NE(why.find("no reflink"), std::string::npos) << why;
  chosen =
      ChooseBackend({.requested = "auto", .dir = dir / "disks", .vmm_takes_qcow2 = false}, &why);
  ASSERT_TRUE(chosen.ok());
  EXPECT_EQ((*chosen)->name(), "copy");
  EXPECT_NE(why.find("WARNING"), std::string::npos) << why;
  EXPECT_EQ(ChooseBackend({.requested = "reflink", .dir = dir / "disks"}, &why).error().code(),
            ErrorCode::kFailedPrecondition);
  EXPECT_EQ(ChooseBackend({.requested = "zfs", .dir = dir / "disks"}, &why).error().code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(
      ChooseBackend({.requested = "qcow2", .dir = dir / "disks", .vmm_takes_qcow2 = false}, &why)
          .error()
          .code(),
      ErrorCode::kFailedPrecondition);
  auto lvm = ChooseBackend({.requested = "lvm-thin", .lvm = {"vg0", "pool"}}, &why);
  ASSERT_FALSE(lvm.ok());
  EXPECT_EQ(lvm.error().code(), ErrorCode::kFailedPrecondition) << lvm.error().message();
  fs::remove_all(dir);
}

// An XFS filesystem in a sparse file, loop-mounted in this process's private mount namespace:
// the mount vanishes with the process even if a test crashes.
class ReflinkXfsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (::geteuid() != 0) return;
    ASSERT_EQ(::unshare(CLONE_NEWNS), 0);
    ASSERT_EQ(::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr), 0);
  }
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root for a loop mount";
    ASSERT_TRUE(FindProgram("mkfs.xfs"))
        << "mkfs.xfs is missing: scripts/setup.sh installs xfsprogs";
    dir_ = TempDir("storage_xfs");
    image_ = dir_ / "xfs.img";
    ASSERT_TRUE(WriteFileAtomic(image_, "").ok());
    fs::resize_file(image_, 2048 * kMib);
    ASSERT_TRUE(RunCommandChecked({"mkfs.xfs", "-q", image_.string()}).ok());
    fs::create_directories(dir_ / "mnt");
    auto mounted = RunCommandChecked({"mount", "-o", "loop", image_.string(), mnt().string()});
    ASSERT_TRUE(mounted.ok()) << mounted.error().message();
  }
  void TearDown() override {
    if (dir_.empty()) return;
    (void)RunCommand({"umount", mnt().string()});
    // Detach exactly this file's loop device (autoclear usually did already).
    auto loops = RunCommand({"losetup", "-j", image_.string()});
    std::istringstream lines(loops.ok() ? loops->out : "");
    for (std::string line; std::getline(lines, line);) {
      (void)RunCommand({"losetup", "-d", line.substr(0, line.find(':'))});
    }
    fs::remove_all(dir_);
  }
  fs::path mnt() const { return dir_ / "mnt"; }
  int64_t FreeBytes() const {
    struct statvfs st {};
    ::statvfs(mnt().c_str(), &st);
    return static_cast<int64_t>(st.f_bavail) * static_cast<int64_t>(st.f_frsize);
  }

  fs::path dir_, image_;
};

TEST_F(ReflinkXfsTest, FiftyRootDisksCostNeitherTimeNorSpaceInTheImageSize) {
  constexpr int64_t kImageMib = 256;
  // Random content: nothing for sparseness to hide.
  fs::path base = dir_ / "base.img";
  ASSERT_TRUE(RunCommandChecked({"dd", "if=/dev/urandom", "of=" + base.string(), "bs=1M",
                                 fmt::format("count={}", kImageMib), "status=none"})
                  .ok());
  auto backend = NewReflinkBackend(mnt() / "disks");
  ASSERT_TRUE(backend.ok()) << backend.error().message();
  std::string why;
  EXPECT_EQ((*ChooseBackend({.requested = "auto", .dir = mnt() / "disks"}, &why))->name(),
            "reflink");
  BaseImage image{"feedface", base};
  ASSERT_TRUE((*backend)->PrepareBase(image).ok());  // copied once onto XFS
  ASSERT_TRUE((*backend)->PrepareBase(image).ok()) << "idempotent";

  const int64_t before = FreeBytes();
  auto start = std::chrono::steady_clock::now();
  std::vector<DiskSpec> disks;
  for (int i = 0; i < 50; ++i) {
    auto disk = (*backend)->CreateRootDisk(image, fmt::format("{:012x}", i), 1024);
    ASSERT_TRUE(disk.ok()) << disk.error().message();
    disks.push_back(*disk);
  }
  auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - start);
  const int64_t used = before - FreeBytes();
  std::cout << fmt::format("50 reflink root disks of a {} MiB image: {} ms, {:.1f} MiB used\n",
                           kImageMib, elapsed.count(), static_cast<double>(used) / kMib);
  // A copy each would need 50 x 256 MiB (more than the filesystem has); clones share it.
  EXPECT_LT(used, kImageMib * kMib);
  ExpectBaseThenZeros(base, disks.front().path, 1024);
  ExpectBaseThenZeros(base, disks.back().path, 1024);
  auto usage = (*backend)->Usage(disks[7]);
  ASSERT_TRUE(usage.ok());
  EXPECT_EQ(usage->size_bytes, 1024 * kMib);

  // Writing to one clone never shows in another or in the base.
  ASSERT_TRUE(RunCommandChecked({"dd", "if=/dev/zero", "of=" + disks[3].path.string(), "bs=1M",
                                 "count=8", "conv=notrunc,fsync", "status=none"})
                  .ok());
  ExpectBaseThenZeros(base, disks[4].path, 1024);
  EXPECT_EQ(*(*backend)->ListOwners(), [&] {
    std::set<std::string> ids;
    for (int i = 0; i < 50; ++i) ids.insert(fmt::format("{:012x}", i));
    return ids;
  }());
  for (int i = 0; i < 50; ++i) ASSERT_TRUE((*backend)->RemoveAll(fmt::format("{:012x}", i)).ok());
  ASSERT_TRUE((*backend)->RemoveBase(image).ok());
  EXPECT_TRUE((*backend)->ListOwners()->empty());
}

TEST_F(ReflinkXfsTest, DataDisksAndGrowth) {
  auto backend = NewReflinkBackend(mnt() / "disks");
  ASSERT_TRUE(backend.ok()) << backend.error().message();
  EXPECT_TRUE((*backend)->CanGrowOnline());
  auto data = (*backend)->CreateDataDisk(kVm, 64);
  ASSERT_TRUE(data.ok());
  ExpectZeros(data->path, 64);
  ASSERT_TRUE((*backend)->Grow(*data, 128).ok());
  ExpectZeros(data->path, 128);
  auto fresh = (*backend)->Usage(*data);
  ASSERT_TRUE(RunCommandChecked({"dd", "if=/dev/urandom", "of=" + data->path.string(), "bs=1M",
                                 "count=8", "conv=notrunc,fsync", "status=none"})
                  .ok());
  auto written = (*backend)->Usage(*data);
  EXPECT_GE(written->allocated_bytes - fresh->allocated_bytes, 8 * kMib);
  auto unprepared = (*backend)->CreateRootDisk({"beef", dir_ / "xfs.img"}, kVm, 4096);
  EXPECT_EQ(unprepared.error().code(), ErrorCode::kNotFound);
  ASSERT_TRUE((*backend)->RemoveAll(kVm).ok());
}

}  // namespace
}  // namespace vmctl::storage
