#include "storage/provisioners.h"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <nlohmann/json.hpp>

#include "base/io.h"
#include "base/process.h"

namespace vmctl::storage {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kMib = int64_t{1} << 20;
constexpr int64_t kBaseMib = 16;

class ProvisionerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "storage_test.XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    base_ = dir_ / "base.ext4";
    // A real filesystem with a file in it, so "content" means more than zeros.
    fs::create_directories(dir_ / "tree");
    ASSERT_TRUE(WriteFileAtomic(dir_ / "tree/hello", "hello from the base\n").ok());
    auto mkfs = RunCommand({"mkfs.ext4", "-q", "-F", "-d", (dir_ / "tree").string(), base_.string(),
                            fmt::format("{}M", kBaseMib)});
    ASSERT_TRUE(mkfs.ok() && mkfs->exit_code == 0) << (mkfs.ok() ? mkfs->err : "");
    base_hash_ = Hash(base_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  static std::string Hash(const fs::path& p) {
    auto out = RunCommandChecked({"sha256sum", p.string()});
    return out.ok() ? out->out.substr(0, 64) : out.error().message();
  }
  // Whether `file` holds the base in its first bytes and zeros after, up to size_mib.
  void ExpectBaseThenZeros(const fs::path& raw, int64_t size_mib) {
    EXPECT_EQ(fs::file_size(raw), static_cast<uintmax_t>(size_mib * kMib));
    auto head =
        RunCommand({"cmp", "-n", std::to_string(kBaseMib * kMib), base_.string(), raw.string()});
    EXPECT_EQ(head->exit_code, 0) << head->out;
    auto tail = RunCommand({"cmp", "-n", std::to_string((size_mib - kBaseMib) * kMib), "-i",
                            fmt::format("{}:0", kBaseMib * kMib), raw.string(), "/dev/zero"});
    EXPECT_EQ(tail->exit_code, 0) << tail->out;
  }
  static unsigned Mode(const fs::path& p) {
    struct stat st {};
    EXPECT_EQ(::stat(p.c_str(), &st), 0);
    return st.st_mode & 07777;
  }

  fs::path dir_, base_;
  std::string base_hash_;
};

TEST_F(ProvisionerTest, Qcow2OverlayIsBackedByTheBaseWithTheRequestedSize) {
  auto disk = NewQcow2Provisioner()->CreateRootDisk(base_, dir_ / "root.qcow2", 64);
  ASSERT_TRUE(disk.ok()) << disk.error().message();
  EXPECT_EQ(disk->path, dir_ / "root.qcow2");
  EXPECT_EQ(disk->format, vmm::DiskSpec::Format::kQcow2);
  EXPECT_FALSE(disk->read_only);
  EXPECT_EQ(Mode(disk->path), 0600u);

  auto info = RunCommandChecked({"qemu-img", "info", "--output=json", disk->path.string()});
  ASSERT_TRUE(info.ok()) << info.error().message();
  auto json = nlohmann::json::parse(info->out);
  EXPECT_EQ(json["format"], "qcow2");
  EXPECT_EQ(json["virtual-size"], 64 * kMib);
  EXPECT_EQ(json["backing-filename"], base_.string());
  EXPECT_EQ(json["backing-filename-format"], "raw");

  // What the guest would read: the base, then zeros up to the new size.
  auto flat = RunCommandChecked({"qemu-img", "convert", "-f", "qcow2", "-O", "raw",
                                 disk->path.string(), (dir_ / "flat.img").string()});
  ASSERT_TRUE(flat.ok()) << flat.error().message();
  ExpectBaseThenZeros(dir_ / "flat.img", 64);
  EXPECT_EQ(Hash(base_), base_hash_);
}

TEST_F(ProvisionerTest, CopyIsTheBaseExtendedToTheRequestedSize) {
  auto disk = NewCopyProvisioner()->CreateRootDisk(base_, dir_ / "root.img", 64);
  ASSERT_TRUE(disk.ok()) << disk.error().message();
  EXPECT_EQ(disk->path, dir_ / "root.img");
  EXPECT_EQ(disk->format, vmm::DiskSpec::Format::kRaw);
  EXPECT_EQ(Mode(disk->path), 0600u);
  ExpectBaseThenZeros(disk->path, 64);
  auto fsck = RunCommand({"e2fsck", "-n", "-f", disk->path.string()});
  EXPECT_EQ(fsck->exit_code, 0) << fsck->out << fsck->err;

  // The copy is the guest's own: writing it leaves the base as it was.
  auto scribble = RunCommandChecked(
      {"dd", "if=/dev/urandom", "of=" + disk->path.string(), "bs=1M", "count=1", "conv=notrunc"});
  ASSERT_TRUE(scribble.ok()) << scribble.error().message();
  EXPECT_EQ(Hash(base_), base_hash_);
}

TEST_F(ProvisionerTest, ARelativeTargetComesBackAbsolute) {
  fs::path relative = fs::relative(dir_, fs::current_path());
  ASSERT_TRUE(relative.is_relative());
  for (const auto& p : {NewQcow2Provisioner(), NewCopyProvisioner()}) {
    auto disk = p->CreateRootDisk(base_, relative / ("root." + p->name()), 32);
    ASSERT_TRUE(disk.ok()) << p->name() << ": " << disk.error().message();
    EXPECT_TRUE(disk->path.is_absolute()) << disk->path;
    EXPECT_TRUE(fs::equivalent(disk->path, dir_ / ("root." + p->name())));
  }
}

TEST_F(ProvisionerTest, InvalidRequestsLeaveNothingBehind) {
  fs::path target = dir_ / "root";
  for (const auto& p : {NewQcow2Provisioner(), NewCopyProvisioner()}) {
    SCOPED_TRACE(p->name());
    auto small = p->CreateRootDisk(base_, target, 8);
    ASSERT_FALSE(small.ok());
    EXPECT_EQ(small.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_EQ(small.error().message(), fmt::format("a 8 MiB disk is smaller than its base image "
                                                   "(16 MiB, {})",
                                                   base_.string()));
    EXPECT_EQ(p->CreateRootDisk(base_, target, 0).error().code(), ErrorCode::kInvalidArgument);
    EXPECT_EQ(p->CreateRootDisk(base_, target, -64).error().code(), ErrorCode::kInvalidArgument);
    EXPECT_EQ(p->CreateRootDisk("base.ext4", target, 64).error().code(),
              ErrorCode::kInvalidArgument);
    EXPECT_EQ(p->CreateRootDisk(dir_ / "tree", target, 64).error().code(),
              ErrorCode::kInvalidArgument);
    EXPECT_EQ(p->CreateRootDisk(dir_ / "missing.img", target, 64).error().code(),
              ErrorCode::kNotFound);
    EXPECT_EQ(p->CreateRootDisk(base_, dir_ / "no/such/dir/root", 64).error().code(),
              ErrorCode::kNotFound);
    EXPECT_FALSE(fs::exists(target));
    EXPECT_FALSE(fs::exists(dir_ / "no"));
  }
  EXPECT_EQ(Hash(base_), base_hash_);
}

TEST_F(ProvisionerTest, AnExistingTargetIsNeverTouched) {
  ASSERT_TRUE(WriteFileAtomic(dir_ / "taken", "someone's data").ok());
  for (const auto& p : {NewQcow2Provisioner(), NewCopyProvisioner()}) {
    auto r = p->CreateRootDisk(base_, dir_ / "taken", 64);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code(), ErrorCode::kAlreadyExists) << p->name();
    EXPECT_EQ(*ReadFile(dir_ / "taken"), "someone's data");
  }
}

TEST_F(ProvisionerTest, AFailingToolLeavesNoPartialTarget) {
  // 32 PiB is a valid request but beyond what qcow2 with 64 KiB clusters can address.
  auto huge = NewQcow2Provisioner()->CreateRootDisk(base_, dir_ / "huge.qcow2", int64_t{1} << 35);
  ASSERT_FALSE(huge.ok());
  EXPECT_NE(huge.error().message().find("qemu-img"), std::string::npos) << huge.error().message();
  EXPECT_FALSE(fs::exists(dir_ / "huge.qcow2"));

  // A regular file of size 0 whose read fails (EIO at offset 0): cp starts, then fails.
  auto unreadable = NewCopyProvisioner()->CreateRootDisk("/proc/self/mem", dir_ / "root.img", 64);
  ASSERT_FALSE(unreadable.ok());
  EXPECT_NE(unreadable.error().message().find("cp"), std::string::npos)
      << unreadable.error().message();
  EXPECT_FALSE(fs::exists(dir_ / "root.img"));
}

}  // namespace
}  // namespace vmctl::storage
