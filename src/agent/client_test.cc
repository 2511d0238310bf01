// Drives the real vmctl-agent binary (serving a Unix socket on the host) with the real
// AgentClient: the same code paths the daemon uses against agents in VMs.
#include "agent/client.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>

#include <filesystem>
#include <mutex>
#include <thread>

#include "base/frame.h"
#include "base/io.h"
#include "base/process.h"

namespace vmctl::agent {
namespace {

using std::chrono::seconds;

class AgentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("agent_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_ / "ssh");
    ASSERT_TRUE(
        WriteFileAtomic(dir_ / "ssh/ssh_host_ed25519_key.pub", "ssh-ed25519 AAAAtest\n").ok());
    std::string binary = std::string(VMCTL_BUILD_DIR) + "/bin/vmctl-agent";
    auto agent = SpawnDetached({binary, "--listen-unix", (dir_ / "agent.sock").string(),
                                "--ssh-dir", (dir_ / "ssh").string()},
                               {.log_file = dir_ / "agent.log"});
    ASSERT_TRUE(agent.ok()) << agent.error().message();
    agent_ = *agent;
    for (int i = 0; i < 500 && !std::filesystem::exists(dir_ / "agent.sock"); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  void TearDown() override {
    (void)agent_.Signal(SIGKILL);
    (void)agent_.WaitExit(seconds(5));
    std::filesystem::remove_all(dir_);
  }
  std::unique_ptr<AgentClient> Connect() {
    auto fd = ConnectUnix(dir_ / "agent.sock");
    EXPECT_TRUE(fd.ok()) << fd.error().message();
    auto client = NewAgentClient(std::move(fd).value());
    EXPECT_TRUE(client->WaitHello(seconds(5)).ok());
    return client;
  }
  struct Output {
    std::string out, err;
    int code = -1;
  };
  static Output Collect(ExecSession& s) {
    Output o;
    for (;;) {
      auto e = s.Next();
      if (!e.ok()) {
        ADD_FAILURE() << e.error().message();
        return o;
      }
      if (e->kind == ExecEvent::Kind::kExit) {
        o.code = e->exit_code;
        return o;
      }
      (e->kind == ExecEvent::Kind::kStdout ? o.out : o.err) += e->data;
    }
  }
  Output Run(AgentClient& c, ExecRequest r, const std::string& input = "") {
    auto s = c.Exec(r);
    EXPECT_TRUE(s.ok()) << s.error().message();
    if (!s.ok()) return {};
    if (!input.empty()) {
      EXPECT_TRUE((*s)->WriteStdin(input).ok());
    }
    EXPECT_TRUE((*s)->CloseStdin().ok());
    return Collect(**s);
  }

  std::filesystem::path dir_;
  ProcessRef agent_;
};

TEST_F(AgentTest, HelloAndPing) {
  auto c = Connect();
  auto hello = c->WaitHello(seconds(1));
  ASSERT_TRUE(hello.ok());
  EXPECT_EQ(hello->agent_version, "0.1.0");
  EXPECT_FALSE(hello->kernel.empty());
  auto pong = c->Call("ping", nlohmann::json::object(), seconds(5));
  ASSERT_TRUE(pong.ok());
  EXPECT_EQ((*pong)["pong"], true);
  auto unknown = c->Call("fly", nlohmann::json::object(), seconds(5));
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.error().code(), ErrorCode::kUnimplemented);
}

TEST_F(AgentTest, ExecOutputsExitCodesAndStderr) {
  auto c = Connect();
  auto uname = Run(*c, {.argv = {"uname", "-r"}});
  EXPECT_EQ(uname.code, 0);
  EXPECT_FALSE(uname.out.empty());
  EXPECT_EQ(Run(*c, {.argv = {"sh", "-c", "exit 7"}}).code, 7);
  auto both = Run(*c, {.argv = {"sh", "-c", "echo out; echo err >&2; exit 3"}});
  EXPECT_EQ(both.out, "out\n");
  EXPECT_EQ(both.err, "err\n");
  EXPECT_EQ(both.code, 3);
  auto env = Run(
      *c,
      {.argv = {"sh", "-c", "echo $GREETING; pwd"}, .env = {{"GREETING", "hi"}}, .cwd = "/tmp"});
  EXPECT_EQ(env.out, "hi\n/tmp\n");
}

TEST_F(AgentTest, StdinPassesThroughIncludingLargeBinaryData) {
  auto c = Connect();
  EXPECT_EQ(Run(*c, {.argv = {"cat"}}, "hi\n").out, "hi\n");
  std::string big;
  for (int i = 0; i < 3 << 20; ++i) big.push_back(static_cast<char>(i * 7 % 251));
  auto echoed = Run(*c, {.argv = {"cat"}}, big);
  EXPECT_EQ(echoed.code, 0);
  EXPECT_TRUE(echoed.out == big) << "got " << echoed.out.size() << " of " << big.size() << " bytes";
}

TEST_F(AgentTest, LargeOutputArrivesIntactAndInOrder) {
  auto c = Connect();
  auto out = Run(*c, {.argv = {"sh", "-c", "seq 1 2000000"}});
  EXPECT_EQ(out.code, 0);
  ASSERT_GT(out.out.size(), 14000000u);
  EXPECT_TRUE(out.out.starts_with("1\n2\n3\n"));
  EXPECT_TRUE(out.out.ends_with("1999999\n2000000\n"));
}

TEST_F(AgentTest, TtyModeHonoursSizeAndResize) {
  auto c = Connect();
  auto s = c->Exec(
      {.argv = {"sh", "-c", "stty size; read x; stty size"}, .tty = true, .rows = 33, .cols = 101});
  ASSERT_TRUE(s.ok()) << s.error().message();
  std::string seen;
  while (seen.find("33 101") == std::string::npos) {
    auto e = (*s)->Next();
    ASSERT_TRUE(e.ok());
    ASSERT_NE(e->kind, ExecEvent::Kind::kExit) << seen;
    seen += e->data;
  }
  ASSERT_TRUE((*s)->Resize(40, 120).ok());
  ASSERT_TRUE((*s)->WriteStdin("go\n").ok());
  auto rest = Collect(**s);
  EXPECT_EQ(rest.code, 0);
  EXPECT_NE(rest.out.find("40 120"), std::string::npos) << rest.out;
}

TEST_F(AgentTest, TtyProcessClosingItsOutputStillExitsCleanly) {
  auto c = Connect();
  for (int i = 0; i < 5; ++i) {
    auto s = c->Exec({.argv = {"cat"}, .tty = true});
    ASSERT_TRUE(s.ok()) << s.error().message();
    ASSERT_TRUE((*s)->WriteStdin("x\n").ok());
    ASSERT_TRUE((*s)->CloseStdin().ok());
    EXPECT_EQ(Collect(**s).code, 0) << "no SIGHUP from a hung-up terminal";
  }
}

TEST_F(AgentTest, SignalsReachTheProcess) {
  auto c = Connect();
  auto s = c->Exec({.argv = {"sleep", "100"}});
  ASSERT_TRUE(s.ok());
  ASSERT_TRUE((*s)->Signal(SIGTERM).ok());
  EXPECT_EQ(Collect(**s).code, 128 + SIGTERM);
}

TEST_F(AgentTest, MissingCommandIsNotFound) {
  auto c = Connect();
  auto s = c->Exec({.argv = {"no-such-command-here"}});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), ErrorCode::kNotFound);
  EXPECT_NE(s.error().message().find("no-such-command-here"), std::string::npos);
}

TEST_F(AgentTest, ConcurrentExecsAreMultiplexed) {
  auto c = Connect();
  std::vector<std::thread> threads;
  std::atomic<int> good{0};
  for (int i = 0; i < 16; ++i) {
    threads.emplace_back([&, i] {
      auto out =
          Run(*c, {.argv = {"sh", "-c", "sleep 0.$((RANDOM % 3)); echo " + std::to_string(i)}});
      if (out.out == std::to_string(i) + "\n" && out.code == 0) ++good;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(good, 16);
}

TEST_F(AgentTest, ClosingTheConnectionKillsItsProcesses) {
  pid_t pid = 0;
  {
    auto c = Connect();
    auto s = c->Exec({.argv = {"sh", "-c", "echo $$; exec sleep 1000"}});
    ASSERT_TRUE(s.ok());
    auto first = (*s)->Next();
    ASSERT_TRUE(first.ok());
    pid = std::stoi(first->data);
    ASSERT_EQ(::kill(pid, 0), 0);
  }
  auto ref = ProcessRef::Of(pid);
  if (ref.ok()) {
    EXPECT_TRUE(ref->WaitExit(seconds(5)).ok());
  }
}

TEST_F(AgentTest, HostKeysAndStats) {
  auto c = Connect();
  auto keys = c->Call("host_keys", nlohmann::json::object(), seconds(5));
  ASSERT_TRUE(keys.ok());
  ASSERT_EQ((*keys)["keys"].size(), 1u);
  EXPECT_EQ((*keys)["keys"][0], "ssh-ed25519 AAAAtest");
  auto stats = c->Call("stats", nlohmann::json::object(), seconds(5));
  ASSERT_TRUE(stats.ok());
  EXPECT_GT((*stats)["memory"]["total_bytes"].get<uint64_t>(), 0u);
  EXPECT_GT((*stats)["disk"]["total_bytes"].get<uint64_t>(), 0u);
  EXPECT_GE((*stats)["cpu"]["count"].get<int>(), 1);
}

TEST_F(AgentTest, SessionsSeeTheConnectionClose) {
  auto c = Connect();
  auto s = c->Exec({.argv = {"sleep", "100"}});
  ASSERT_TRUE(s.ok());
  (void)agent_.Signal(SIGKILL);
  auto e = (*s)->Next();
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.error().code(), ErrorCode::kUnavailable);
  EXPECT_TRUE(c->closed());
}

// A second hello on the same stream means the agent began a new session (it restarted): streams of
// the old session end with kUnavailable instead of waiting forever.
TEST(AgentClientTest, SecondHelloEndsStreamsOfTheOldSession) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  UniqueFd agent_end(sv[1]);
  auto client = NewAgentClient(UniqueFd(sv[0]));
  nlohmann::json hello = {{"type", "hello"}, {"agent_version", "t"}, {"kernel", "k"}};
  std::mutex write_mu;
  auto send = [&](const nlohmann::json& frame) {
    std::lock_guard lock(write_mu);
    (void)WriteFrame(agent_end.get(), frame);
  };
  send(hello);
  // A scripted agent: answers hello and exec requests, nothing else.
  std::thread agent([&] {
    for (;;) {
      auto f = ReadFrame(agent_end.get());
      if (!f.ok()) return;
      std::string op = (*f).value("op", "");
      if (op == "exec") send({{"id", (*f)["id"]}, {"ok", true}, {"stream", (*f)["id"]}});
      if (op == "hello") send({{"id", (*f)["id"]}, {"ok", true}, {"agent_version", "t"}});
    }
  });
  struct Join {
    std::thread& t;
    int fd;
    ~Join() {
      ::shutdown(fd, SHUT_RDWR);
      t.join();
    }
  } join{agent, agent_end.get()};
  ASSERT_TRUE(client->WaitHello(seconds(5)).ok());
  auto s = client->Exec({.argv = {"sleep", "100"}});
  ASSERT_TRUE(s.ok()) << s.error().message();
  send(hello);  // the agent restarted: a new session on the same stream
  auto e = (*s)->Next();
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.error().code(), ErrorCode::kUnavailable);
}

}  // namespace
}  // namespace vmctl::agent
