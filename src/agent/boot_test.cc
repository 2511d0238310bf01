// When a guest has finished booting: systemctl's answer judged in the agent, the real agent
// asking a stand-in systemctl, and the host's check of the agent's reply.
#include "agent/guest/boot.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <thread>

#include "agent/boot_status.h"
#include "agent/client.h"
#include "base/io.h"
#include "base/process.h"

namespace vmctl::agent {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;

TEST(ParseSystemStateTest, FinishedStatesEndTheWaitOthersAskAgain) {
  for (const char* state : {"running", "degraded", "maintenance", "stopping", "offline"}) {
    auto s = guest::ParseSystemState(std::string(state) + "\n");
    EXPECT_TRUE(s.finished) << state;
    EXPECT_EQ(s.state, state);
  }
  for (const char* output : {"starting\n", "initializing", "unknown\n", "", " \n", "runningx"}) {
    EXPECT_FALSE(guest::ParseSystemState(output).finished) << output;
  }
  // The last word counts (systemctl may warn first).
  EXPECT_EQ(guest::ParseSystemState("Failed to something\r\ndegraded \n").state, "degraded");
}

TEST(ParseBootStatusTest, TypesAreChecked) {
  auto ok = ParseBootStatus(
      json{{"finished", true}, {"state", "degraded"}, {"init", "systemd"}, {"detail", ""}});
  ASSERT_TRUE(ok.ok()) << ok.error().message();
  EXPECT_TRUE(ok->finished);
  EXPECT_EQ(ok->state, "degraded");
  EXPECT_EQ(ok->init, "systemd");
  auto minimal = ParseBootStatus(json{{"finished", false}, {"state", "starting"}});
  ASSERT_TRUE(minimal.ok());
  EXPECT_FALSE(minimal->finished);
  EXPECT_EQ(minimal->init, "");

  for (const json& bad :
       {json::array(), json("running"), json{{"state", "running"}},
        json{{"finished", 1}, {"state", "running"}}, json{{"finished", true}},
        json{{"finished", true}, {"state", 5}}, json{{"finished", true}, {"state", nullptr}},
        json{{"finished", true}, {"state", "x"}, {"detail", json::object()}},
        json{{"finished", true}, {"state", "run\x1b[2Jning"}},
        json{{"finished", true}, {"state", "x"}, {"init", std::string(300, 'a')}}}) {
    auto parsed = ParseBootStatus(bad);
    ASSERT_FALSE(parsed.ok()) << bad.dump();
    EXPECT_EQ(parsed.error().code(), ErrorCode::kInternal);
    EXPECT_NE(parsed.error().message().find("boot_status"), std::string::npos);
  }
}

// The agent asks a stand-in systemctl that blocks, as `is-system-running --wait` does, until the
// test says the boot is done.
class BootWatchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("boot_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override {
    if (agent_.pid) {
      (void)agent_.Signal(SIGKILL);
      (void)agent_.WaitExit(seconds(5));
    }
    std::filesystem::remove_all(dir_);
  }
  std::unique_ptr<AgentClient> StartAgent(const std::string& systemctl) {
    std::string binary = std::string(VMCTL_BUILD_DIR) + "/bin/vmctl-agent";
    auto agent = SpawnDetached(
        {binary, "--systemctl", systemctl, "--listen-unix", (dir_ / "agent.sock").string()},
        {.log_file = dir_ / "agent.log"});
    EXPECT_TRUE(agent.ok());
    agent_ = *agent;
    for (int i = 0; i < 500 && !std::filesystem::exists(dir_ / "agent.sock"); ++i) {
      std::this_thread::sleep_for(milliseconds(10));
    }
    auto fd = ConnectUnix(dir_ / "agent.sock");
    EXPECT_TRUE(fd.ok());
    auto client = NewAgentClient(std::move(fd).value());
    EXPECT_TRUE(client->WaitHello(seconds(5)).ok());
    return client;
  }
  BootStatus Status(AgentClient& client) {
    auto reply = client.Call("boot_status", {}, seconds(5));
    EXPECT_TRUE(reply.ok()) << reply.error().message();
    auto status = ParseBootStatus(reply.ok() ? *reply : json());
    EXPECT_TRUE(status.ok()) << status.error().message();
    return status.ok() ? *status : BootStatus{};
  }
  std::filesystem::path dir_;
  ProcessRef agent_;
};

TEST_F(BootWatchTest, StartingUntilSystemdSaysTheJobQueueIsDone) {
  auto script = dir_ / "systemctl";
  // The first call ends early, as systemctl does while systemd cannot answer yet: asked again.
  ASSERT_TRUE(WriteFileAtomic(script,
                              "#!/bin/sh\n"
                              "[ \"$*\" = 'is-system-running --wait' ] || exit 3\n"
                              "d=$(dirname \"$0\")\n"
                              "echo call >> \"$d/calls\"\n"
                              "if [ ! -e \"$d/asked\" ]; then touch \"$d/asked\"; echo unknown; "
                              "exit 1; fi\n"
                              "while [ ! -e \"$d/booted\" ]; do sleep 0.05; done\n"
                              "echo degraded; exit 1\n",
                              0755)
                  .ok());
  auto client = StartAgent(script.string());
  auto starting = Status(*client);
  EXPECT_FALSE(starting.finished);
  EXPECT_EQ(starting.init, "systemd");
  std::this_thread::sleep_for(milliseconds(1500));
  EXPECT_FALSE(Status(*client).finished);
  ASSERT_TRUE(WriteFileAtomic(dir_ / "booted", "").ok());
  BootStatus done;
  for (int i = 0; i < 100 && !done.finished; ++i) {
    std::this_thread::sleep_for(milliseconds(50));
    done = Status(*client);
  }
  EXPECT_TRUE(done.finished);
  EXPECT_EQ(done.state, "degraded");
  EXPECT_EQ(*ReadFile(dir_ / "calls"), "call\ncall\n") << "asked again after the early end";
}

TEST_F(BootWatchTest, NoSystemctlToAskDoesNotHoldTheHostUp) {
  auto client = StartAgent((dir_ / "no-such-systemctl").string());
  BootStatus status;
  for (int i = 0; i < 100 && !status.finished; ++i) {
    status = Status(*client);
    if (!status.finished) std::this_thread::sleep_for(milliseconds(20));
  }
  EXPECT_TRUE(status.finished);
  EXPECT_EQ(status.state, "unknown");
  EXPECT_NE(status.detail.find("no-such-systemctl"), std::string::npos) << status.detail;
}

}  // namespace
}  // namespace vmctl::agent
