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

TEST(VmRequestTest, RangeChecks) {
  VmRequest r{.name = "ok"};
  EXPECT_TRUE(ValidateVmRequest(r).ok());
  r.cpus = 0;
  EXPECT_FALSE(ValidateVmRequest(r).ok());
  r.cpus = 1;
  r.memory_mib = 64;
  EXPECT_NE(ValidateVmRequest(r).error().message().find("memory"), std::string::npos);
  r.memory_mib = 512;
  r.disk_mib = 10;
  EXPECT_NE(ValidateVmRequest(r).error().message().find("disk"), std::string::npos);
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
