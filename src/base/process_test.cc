#include "base/process.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>

#include "base/io.h"

namespace vmctl {
namespace {

TEST(RunTest, CapturesOutputAndExitCode) {
  auto r = RunCommand({"sh", "-c", "cat; echo err >&2; exit 3"}, {.stdin_data = "hello"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->exit_code, 3);
  EXPECT_EQ(r->out, "hello");
  EXPECT_EQ(r->err, "err\n");
}

TEST(RunTest, ChildIgnoringItsInputDoesNotKillTheCaller) {
  auto r = RunCommand({"true"}, {.stdin_data = std::string(8 << 20, 'x')});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->exit_code, 0);
}

TEST(RunTest, MissingProgramIsNotFound) {
  auto r = RunCommand({"/nonexistent/prog"});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kNotFound);
}

TEST(RunTest, TimeoutKills) {
  auto r = RunCommand({"sleep", "10"}, {.timeout = std::chrono::milliseconds(200)});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kDeadlineExceeded);
}

TEST(RunCommandCheckedTest, NonZeroExitIsErrorWithStderr) {
  auto r = RunCommandChecked({"sh", "-c", "echo boom >&2; exit 1"});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("boom"), std::string::npos);
}

TEST(SpawnDetachedTest, OutlivesAndIsIdentified) {
  auto dir = std::filesystem::temp_directory_path() / ("spawn_test_" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  auto ref = SpawnDetached({"sh", "-c", "echo started; exec sleep 30"}, {.log_file = dir / "log"});
  ASSERT_TRUE(ref.ok()) << ref.error().message();
  EXPECT_TRUE(ref->Alive());
  EXPECT_NE(getsid(ref->pid), getsid(0));  // own session: no signals from our terminal
  for (int i = 0; i < 200 && ReadFile(dir / "log").ok() && ReadFile(dir / "log")->empty(); ++i)
    usleep(10000);
  ProcessRef stale{ref->pid, ref->start_time + 1};
  EXPECT_FALSE(stale.Alive());
  ASSERT_TRUE(ref->Signal(SIGKILL).ok());
  ASSERT_TRUE(ref->WaitExit(std::chrono::seconds(5)).ok());
  EXPECT_FALSE(ref->Alive());
  EXPECT_EQ(*ReadFile(dir / "log"), "started\n");
  std::filesystem::remove_all(dir);
}

TEST(SpawnDetachedTest, MissingBinaryFails) {
  auto r = SpawnDetached({"/nonexistent/vmm"}, {.log_file = "/dev/null"});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kNotFound);
}

}  // namespace
}  // namespace vmctl
