#include "storage/provisioners.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "base/io.h"
#include "base/process.h"

namespace vmctl::storage {
namespace {

namespace fs = std::filesystem;

class ProvisionerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("storage_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    base_ = dir_ / "base.ext4";
    ASSERT_EQ(RunCommand({"mkfs.ext4", "-q", "-F", base_.string(), "16M"})->exit_code, 0);
    base_hash_ = Hash(base_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  static std::string Hash(const fs::path& p) {
    return RunCommand({"sha256sum", p.string()})->out.substr(0, 64);
  }

  fs::path dir_, base_;
  std::string base_hash_;
};

TEST_F(ProvisionerTest, Qcow2OverlayHasSizeAndBackingAndLeavesBaseAlone) {
  auto p = NewQcow2Provisioner();
  auto disk = p->CreateRootDisk(base_, dir_ / "root.qcow2", 64);
  ASSERT_TRUE(disk.ok()) << disk.error().message();
  EXPECT_EQ(disk->format, vmm::DiskSpec::Format::kQcow2);
  auto info = nlohmann::json::parse(
      RunCommand({"qemu-img", "info", "--output=json", (dir_ / "root.qcow2").string()})->out);
  EXPECT_EQ(info["virtual-size"], 64 << 20);
  EXPECT_EQ(info["backing-filename"], base_.string());
  EXPECT_EQ(info["backing-filename-format"], "raw");
  EXPECT_EQ(Hash(base_), base_hash_);
}

TEST_F(ProvisionerTest, CopyHasSizeAndContent) {
  auto p = NewCopyProvisioner();
  auto disk = p->CreateRootDisk(base_, dir_ / "root.img", 64);
  ASSERT_TRUE(disk.ok()) << disk.error().message();
  EXPECT_EQ(fs::file_size(dir_ / "root.img"), 64u << 20);
  auto head = RunCommand(
      {"cmp", "-n", std::to_string(16 << 20), base_.string(), (dir_ / "root.img").string()});
  EXPECT_EQ(head->exit_code, 0);
  EXPECT_EQ(Hash(base_), base_hash_);
}

TEST_F(ProvisionerTest, ErrorsLeaveNothingBehind) {
  for (auto& p : {NewQcow2Provisioner(), NewCopyProvisioner()}) {
    auto small = p->CreateRootDisk(base_, dir_ / "small", 8);
    ASSERT_FALSE(small.ok());
    EXPECT_EQ(small.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(small.error().message().find("smaller than its 16 MiB image"), std::string::npos);
    EXPECT_FALSE(fs::exists(dir_ / "small"));
    EXPECT_EQ(p->CreateRootDisk("relative.img", dir_ / "x", 64).error().code(),
              ErrorCode::kInvalidArgument);
    EXPECT_EQ(p->CreateRootDisk(dir_ / "missing.img", dir_ / "x", 64).error().code(),
              ErrorCode::kNotFound);
    ASSERT_TRUE(WriteFileAtomic(dir_ / "taken", "x").ok());
    EXPECT_EQ(p->CreateRootDisk(base_, dir_ / "taken", 64).error().code(),
              ErrorCode::kAlreadyExists);
    fs::remove(dir_ / "taken");
  }
}

}  // namespace
}  // namespace vmctl::storage
