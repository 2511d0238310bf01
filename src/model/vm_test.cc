#include "model/vm.h"

#include <gtest/gtest.h>

namespace vmctl {
namespace {

TEST(VmNameTest, AcceptsDnsLabels) {
  for (auto n : {"a", "demo", "web-1", "x2", "abcdefghijklmnopqrstuvwxyz012345"}) {
    EXPECT_TRUE(ValidateVmName(n).ok()) << n;
  }
}

TEST(VmNameTest, RejectsBadNamesWithClearErrors) {
  for (auto n : {"", "../etc", "a b", "Demo", "a;rm -rf", "a$(x)", "-a", "a-", "1abc", "a/b", "a_b",
                 "abcdefghijklmnopqrstuvwxyz0123456"}) {
    auto r = ValidateVmName(n);
    ASSERT_FALSE(r.ok()) << n;
    EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_FALSE(r.error().message().empty());
  }
}

TEST(VmNameTest, RejectsADoubleDashWhichNamesAPort) {
  EXPECT_TRUE(ValidateVmName("a-b-c").ok());
  auto r = ValidateVmName("web--8080");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message(), "invalid VM name 'web--8080': must not contain '--'");
}

TEST(VmRequestTest, RangeChecks) {
  VmRequest r{.name = "ok"};
  EXPECT_TRUE(ValidateVmRequest(r).ok());
  r.cpus = 0;
  EXPECT_FALSE(ValidateVmRequest(r).ok());
  r.cpus = 1;
  r.memory_mib = 64;
  EXPECT_NE(ValidateVmRequest(r).error().message().find("memory"), std::string::npos);
  r.memory_mib = 512;
  r.root_disk_mib = 10;
  EXPECT_NE(ValidateVmRequest(r).error().message().find("root disk"), std::string::npos);
  r.root_disk_mib = 2048;
  r.data_disk_mib = 0;
  EXPECT_TRUE(ValidateVmRequest(r).ok());
  r.data_disk_mib = 10;
  EXPECT_NE(ValidateVmRequest(r).error().message().find("disk must be 0 (none) or between"),
            std::string::npos);
}

TEST(VmRequestTest, DisksOnlyGrow) {
  EXPECT_TRUE(ValidateDiskGrowth(2048, 1024, 0, 2048).ok());
  EXPECT_TRUE(ValidateDiskGrowth(2048, 1024, 4096, 0).ok());
  EXPECT_TRUE(ValidateDiskGrowth(2048, 1024, 2048, 1024).ok());
  EXPECT_EQ(ValidateDiskGrowth(2048, 1024, 0, 0).error().code(), ErrorCode::kInvalidArgument);
  auto shrink = ValidateDiskGrowth(2048, 1024, 0, 512);
  ASSERT_FALSE(shrink.ok());
  EXPECT_NE(shrink.error().message().find("cannot shrink it to 512 MiB"), std::string::npos);
  EXPECT_EQ(ValidateDiskGrowth(2048, 0, 0, 512).error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_FALSE(ValidateDiskGrowth(2048, 1024, 1024, 0).ok());
  EXPECT_FALSE(ValidateDiskGrowth(2048, 1024, 0, int64_t{1} << 40).ok());
}

TEST(VmStateTest, TransitionsFollowStateMachine) {
  EXPECT_TRUE(CheckTransition(VmState::kCreating, VmState::kStarting).ok());
  EXPECT_TRUE(CheckTransition(VmState::kStarting, VmState::kRunning).ok());
  EXPECT_TRUE(CheckTransition(VmState::kRunning, VmState::kStopping).ok());
  EXPECT_TRUE(CheckTransition(VmState::kStopping, VmState::kStopped).ok());
  EXPECT_TRUE(CheckTransition(VmState::kStopped, VmState::kStarting).ok());
  EXPECT_TRUE(CheckTransition(VmState::kFailed, VmState::kDeleting).ok());
  auto bad = CheckTransition(VmState::kStopped, VmState::kRunning);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().message(), "cannot go from stopped to running");
  EXPECT_FALSE(CheckTransition(VmState::kDeleting, VmState::kStarting).ok());
  EXPECT_FALSE(CheckTransition(VmState::kCreating, VmState::kRunning).ok());
}

TEST(VmStateTest, NamesRoundTrip) {
  for (auto s : {VmState::kCreating, VmState::kStarting, VmState::kRunning, VmState::kStopping,
                 VmState::kStopped, VmState::kFailed, VmState::kDeleting}) {
    EXPECT_EQ(*VmStateFromName(VmStateName(s)), s);
  }
  EXPECT_FALSE(VmStateFromName("zombie").ok());
}

}  // namespace
}  // namespace vmctl
