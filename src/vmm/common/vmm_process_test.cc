#include "vmm/common/vmm_process.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include "base/io.h"

namespace vmctl::vmm {
namespace {

using std::chrono::milliseconds;

// /bin/sh scripts stand in for VMMs; every process a test starts is killed by PID before it ends.
class VmmProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/vmctl-proc-XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    dir_ = dir;
  }
  void TearDown() override {
    for (const auto& p : started_) (void)p.Kill();
    std::filesystem::remove_all(dir_);
  }

  VmmStart Script(const std::string& script) {
    return {.argv = {"/bin/sh", "-c", "cd " + dir_.string() + " && " + script},
            .log = dir_ / "vmm.log",
            .owned_files = {dir_ / "api.sock", dir_ / "api.sock.lock"},
            .ready = [this]() -> Result<void> {
              if (std::filesystem::exists(dir_ / "api.sock")) return Ok();
              return Unavailable("no socket yet");
            }};
  }

  std::filesystem::path dir_;
  std::vector<ProcessRef> started_;
};

TEST_F(VmmProcessTest, ReturnsOnceReadyAndStopRemovesTheFiles) {
  auto process = StartVmmProcess(Script("touch api.sock.lock api.sock; exec sleep 60"));
  ASSERT_TRUE(process.ok()) << process.error().message();
  started_.push_back(*process);
  EXPECT_TRUE(process->Alive());
  ASSERT_TRUE(StopVmmProcess(*process, {}, {dir_ / "api.sock", dir_ / "api.sock.lock"}).ok());
  EXPECT_FALSE(process->Alive());
  EXPECT_FALSE(std::filesystem::exists(dir_ / "api.sock"));
  EXPECT_FALSE(std::filesystem::exists(dir_ / "api.sock.lock"));
}

TEST_F(VmmProcessTest, StopAsksFirstAndKillsWhenAskingFails) {
  auto process = StartVmmProcess(Script("touch api.sock; exec sleep 60"));
  ASSERT_TRUE(process.ok()) << process.error().message();
  started_.push_back(*process);
  bool asked = false;
  auto quit = [&]() -> Result<void> {
    asked = true;
    return Unavailable("API gone");
  };
  ASSERT_TRUE(StopVmmProcess(*process, quit, {}).ok());
  EXPECT_TRUE(asked);
  EXPECT_FALSE(process->Alive());
  EXPECT_TRUE(StopVmmProcess(*process, quit, {}).ok()) << "already gone is fine";
}

TEST_F(VmmProcessTest, ExitDuringStartReportsOnlyThisRunsOutputAndLeavesNothing) {
  ASSERT_TRUE(WriteFileAtomic(dir_ / "vmm.log", "complaint of an older run\n").ok());
  auto process = StartVmmProcess(Script("touch api.sock.lock && echo 'no /dev/kvm' >&2; exit 1"));
  ASSERT_FALSE(process.ok());
  EXPECT_EQ(process.error().code(), ErrorCode::kUnavailable);
  EXPECT_EQ(process.error().message(), "/bin/sh exited during start: no /dev/kvm");
  EXPECT_FALSE(std::filesystem::exists(dir_ / "api.sock.lock"));
}

TEST_F(VmmProcessTest, NeverReadyIsDeadlineExceededAndKilled) {
  VmmStart start = Script("echo starting; exec sleep 60");
  start.timeout = milliseconds(300);
  auto process = StartVmmProcess(start);
  ASSERT_FALSE(process.ok());
  EXPECT_EQ(process.error().code(), ErrorCode::kDeadlineExceeded);
  EXPECT_NE(process.error().message().find("(no socket yet): starting"), std::string::npos)
      << process.error().message();
}

TEST_F(VmmProcessTest, StaleFilesAreRemovedBeforeTheStart) {
  ASSERT_TRUE(WriteFileAtomic(dir_ / "api.sock", "stale").ok());
  VmmStart start = Script("exec sleep 60");
  start.timeout = milliseconds(200);
  EXPECT_FALSE(StartVmmProcess(start).ok()) << "the stale file must not count as ready";
}

TEST_F(VmmProcessTest, MissingBinaryIsNotFound) {
  VmmStart start = Script("");
  start.argv = {"/nonexistent/vmm"};
  auto process = StartVmmProcess(start);
  ASSERT_FALSE(process.ok());
  EXPECT_EQ(process.error().code(), ErrorCode::kNotFound) << process.error().message();
}

TEST_F(VmmProcessTest, SocketPathsMustFitSockaddrUn) {
  EXPECT_TRUE(CheckSocketPaths({"/run/vmctl/vms/0123456789ab/api.sock"}).ok());
  auto long_path = CheckSocketPaths({"/ok.sock", "/" + std::string(107, 'x')});
  ASSERT_FALSE(long_path.ok());
  EXPECT_EQ(long_path.error().code(), ErrorCode::kInvalidArgument);
}

TEST(OutputSinceTest, TakesTheTailOfWhatWasAppended) {
  char dir[] = "/tmp/vmctl-out-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  std::filesystem::path log = std::filesystem::path(dir) / "log";
  EXPECT_EQ(OutputSince(log, 0), "(no output)");
  ASSERT_TRUE(WriteFileAtomic(log, "old\nnew line\n\n").ok());
  EXPECT_EQ(OutputSince(log, 4), "new line");
  EXPECT_EQ(OutputSince(log, 100), "(no output)");
  ASSERT_TRUE(WriteFileAtomic(log, std::string(5000, 'a') + "end").ok());
  EXPECT_EQ(OutputSince(log, 0).size(), 2000u);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace vmctl::vmm
