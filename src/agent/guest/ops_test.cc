#include "agent/guest/ops.h"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/mount.h>
#include <unistd.h>

#include <filesystem>

#include "base/io.h"
#include "base/process.h"

namespace vmctl::agent::guest {
namespace {

TEST(TimeSyncTest, RejectsMissingTime) {
  EXPECT_EQ(TimeSync(nlohmann::json::object()).error().code(), ErrorCode::kInvalidArgument);
}

TEST(AuthorizedKeysTest, ATagReplacesOnlyItsOwnLines) {
  auto dir = std::filesystem::temp_directory_path() / ("keys-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir / "home/.ssh");
  OpsConfig config;
  config.passwd = dir / "passwd";
  ASSERT_TRUE(WriteFileAtomic(config.passwd, fmt::format("me:x:{}:{}::{}:/bin/sh\n", ::getuid(),
                                                         ::getgid(), (dir / "home").string()))
                  .ok());
  auto keys = dir / "home/.ssh/authorized_keys";
  ASSERT_TRUE(WriteFileAtomic(keys, "ssh-ed25519 MINE me@laptop\nssh-ed25519 OLD vmctl-gw\n").ok());
  nlohmann::json args = {
      {"user", "me"}, {"keys", {"ssh-ed25519 NEW vmctl-gw"}}, {"tag", "vmctl-gw"}};
  ASSERT_TRUE(SetAuthorizedKeys(args, config).ok());
  EXPECT_EQ(*ReadFile(keys), "ssh-ed25519 MINE me@laptop\nssh-ed25519 NEW vmctl-gw\n");
  ASSERT_TRUE(SetAuthorizedKeys(args, config).ok());  // idempotent
  EXPECT_EQ(*ReadFile(keys), "ssh-ed25519 MINE me@laptop\nssh-ed25519 NEW vmctl-gw\n");

  args.erase("tag");  // without one the file is the given keys
  ASSERT_TRUE(SetAuthorizedKeys(args, config).ok());
  EXPECT_EQ(*ReadFile(keys), "ssh-ed25519 NEW vmctl-gw\n");
  EXPECT_EQ(SetAuthorizedKeys({{"user", "nobody-here"}, {"keys", nlohmann::json::array()}}, config)
                .error()
                .code(),
            ErrorCode::kNotFound);
  std::filesystem::remove_all(dir);
}

// A real block device (a loop device over a file) mounted in a private mount namespace, so a
// crashed test leaves no mount behind.
class DiskOpsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root for loop devices and mounts";
    static bool unshared = [] {
      return ::unshare(CLONE_NEWNS) == 0 &&
             ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) == 0;
    }();
    ASSERT_TRUE(unshared) << "cannot make a private mount namespace";
    dir_ = std::filesystem::temp_directory_path() / ("disk-ops-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    file_ = dir_ / "disk.img";
    ASSERT_TRUE(WriteFileAtomic(file_, "").ok());
    std::filesystem::resize_file(file_, 64 << 20);
    auto loop = RunCommandChecked({"losetup", "--find", "--show", file_.string()});
    ASSERT_TRUE(loop.ok()) << loop.error().message();
    device_ = loop->out.substr(0, loop->out.find('\n'));
  }
  void TearDown() override {
    if (device_.empty()) return;
    ::umount2((dir_ / "data").c_str(), MNT_DETACH);
    (void)RunCommand({"losetup", "-d", device_});
    std::filesystem::remove_all(dir_);
  }
  nlohmann::json Args() const {
    return {{"device", device_}, {"mountpoint", (dir_ / "data").string()}};
  }

  std::filesystem::path dir_, file_;
  std::string device_;
};

TEST_F(DiskOpsTest, ABlankDiskIsFormattedOnceAndKeepsItsData) {
  auto first = PrepareDisk(Args());
  ASSERT_TRUE(first.ok()) << first.error().message();
  EXPECT_TRUE((*first)["formatted"]);
  EXPECT_GT((*first)["size_bytes"].get<int64_t>(), 50 << 20);
  ASSERT_TRUE(WriteFileAtomic(dir_ / "data/kept", "precious").ok());
  auto again = PrepareDisk(Args());
  ASSERT_TRUE(again.ok()) << again.error().message();
  EXPECT_FALSE((*again)["formatted"]) << "already mounted";
  ASSERT_EQ(::umount((dir_ / "data").c_str()), 0);

  auto remount = PrepareDisk(Args());
  ASSERT_TRUE(remount.ok()) << remount.error().message();
  EXPECT_FALSE((*remount)["formatted"]) << "an ext4 disk is never formatted again";
  EXPECT_EQ(*ReadFile(dir_ / "data/kept"), "precious");
}

// Online ext4 growth needs CAP_SYS_RESOURCE, which some sandboxes withhold even from root; the
// end-to-end tests grow a disk inside a real guest too.
bool HasSysResource() {
  auto status = ReadFile("/proc/self/status");
  auto at = status.ok() ? status->find("CapEff:\t") : std::string::npos;
  if (at == std::string::npos) return false;
  return (std::stoull(status->substr(at + 8, 16), nullptr, 16) >> 24) & 1;
}

TEST_F(DiskOpsTest, AMountedDiskGrowsOnline) {
  if (!HasSysResource()) GTEST_SKIP() << "no CAP_SYS_RESOURCE: the kernel refuses online resize";
  ASSERT_TRUE(PrepareDisk(Args()).ok());
  ASSERT_TRUE(WriteFileAtomic(dir_ / "data/kept", "precious").ok());
  // The host grows the volume; the filesystem follows online.
  std::filesystem::resize_file(file_, 128 << 20);
  ASSERT_TRUE(RunCommandChecked({"losetup", "-c", device_}).ok());
  auto grown = GrowFilesystem({{"device", device_}, {"size_bytes", 128 << 20}});
  ASSERT_TRUE(grown.ok()) << grown.error().message();
  EXPECT_GT((*grown)["size_bytes"].get<int64_t>(), 110 << 20);
  EXPECT_EQ(*ReadFile(dir_ / "data/kept"), "precious");
}

TEST_F(DiskOpsTest, ADiskHoldingSomethingElseIsLeftAlone) {
  ASSERT_TRUE(RunCommandChecked({"dd", "if=/dev/urandom", "of=" + device_, "bs=1M", "count=1",
                                 "conv=fsync", "status=none"})
                  .ok());
  auto before = RunCommandChecked({"sha256sum", device_});
  auto r = PrepareDisk(Args());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(r.error().message().find("left untouched"), std::string::npos);
  EXPECT_EQ(RunCommandChecked({"sha256sum", device_})->out, before->out);
}

TEST(DiskOpsArgsTest, BadArgumentsAreRefused) {
  EXPECT_EQ(
      PrepareDisk({{"device", "/dev/nonexistent-disk"}, {"mountpoint", "/data"}}).error().code(),
      ErrorCode::kNotFound);
  EXPECT_EQ(PrepareDisk({{"device", "/etc/passwd"}, {"mountpoint", "/data"}}).error().code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(PrepareDisk({{"device", "/dev/null"}, {"mountpoint", "data"}}).error().code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(GrowFilesystem({{"device", ""}}).error().code(), ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace vmctl::agent::guest
