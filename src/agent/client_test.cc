// Drives the real vmctl-agent binary (serving a Unix socket on the host) with the real
// AgentClient: the same code paths the daemon uses against agents in VMs.
#include "agent/client.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>

#include <filesystem>
#include <future>
#include <mutex>
#include <thread>

#include "agent/protocol.h"
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
    // The socket's file appears at bind(), a moment before the agent listens on it.
    auto fd = ConnectUnix(dir_ / "agent.sock");
    for (int i = 0; i < 500 && !fd.ok(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      fd = ConnectUnix(dir_ / "agent.sock");
    }
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

// A hand-driven guest on the far end of a socketpair: the host's view of a hostile agent.
class FakeGuestTest : public ::testing::Test {
 protected:
  void Connect(ClientOptions options = {}) {
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    guest_ = UniqueFd(sv[1]);
    options.on_violation = [this](const Error& e) {
      std::lock_guard lock(mu_);
      violations_.push_back(e.message());
    };
    client_ = NewAgentClient(UniqueFd(sv[0]), std::move(options));
    Send({{"type", "hello"}, {"agent_version", "t"}, {"kernel", "k"}});
    ASSERT_TRUE(client_->WaitHello(seconds(5)).ok());
  }
  void Send(const nlohmann::json& frame) { ASSERT_TRUE(WriteFrame(guest_.get(), frame).ok()); }
  void SendRaw(std::string_view bytes) { ASSERT_TRUE(WriteAll(guest_.get(), bytes).ok()); }
  // Reads host frames until one with an "op" comes; its id.
  int64_t NextRequest(const std::string& op) {
    for (;;) {
      auto f = ReadFrame(guest_.get());
      if (!f.ok()) return -1;
      if ((*f).value("op", "") == op) return (*f)["id"].get<int64_t>();
    }
  }
  bool WaitClosed() {
    for (int i = 0; i < 500 && !client_->closed(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return client_->closed();
  }
  std::vector<std::string> violations() {
    std::lock_guard lock(mu_);
    return violations_;
  }
  // The report comes just after the client marked itself closed.
  std::vector<std::string> WaitViolations() {
    for (int i = 0; i < 500 && violations().empty(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return violations();
  }

  UniqueFd guest_;
  std::unique_ptr<AgentClient> client_;
  std::mutex mu_;
  std::vector<std::string> violations_;
};

TEST_F(FakeGuestTest, EveryMalformedFrameDropsTheConnectionAndIsReported) {
  std::string huge_length("\x00\x20\x00\x00", 4);  // 2 MiB, above kMaxGuestFrameSize
  std::vector<std::pair<std::string, std::string>> cases = {
      {EncodeFrame({{"type", 5}}), "'type' is not a string"},
      {EncodeFrame({{"type", "stdout"}, {"stream", "7"}, {"data", ""}}), "'stream'"},
      {EncodeFrame({{"type", "stdout"}, {"stream", 7}, {"data", 1}}), "'data'"},
      {EncodeFrame({{"type", "stderr"}, {"stream", 7}, {"data", "!!!!"}}), "base64"},
      {EncodeFrame({{"type", "exit"}, {"stream", 7}, {"code", 1e300}}), "'code'"},
      {EncodeFrame({{"type", "exit"}, {"stream", 7}, {"code", int64_t{1} << 40}}), "out of range"},
      {EncodeFrame({{"type", "hello"}, {"kernel", {1, 2}}}), "'kernel'"},
      {EncodeFrame({{"id", "1"}, {"ok", true}}), "'id'"},
      {EncodeFrame({{"id", uint64_t{1} << 63}, {"ok", true}}), "'id'"},
      {EncodeFrame({{"id", 1}, {"ok", "yes"}}), "'ok'"},
      {EncodeFrame({{"id", 1}, {"ok", false}, {"error", "bad"}}), "'error'"},
      {EncodeFrame({{"id", 1}, {"ok", false}, {"error", {{"code", 3}}}}), "'code'"},
      {EncodeFrame(nlohmann::json::object()), "neither"},
      {std::string("\0\0\0\x02[]", 6), "not a JSON object"},
      {std::string("\0\0\0\x03{x}", 7), "not a JSON object"},
      {std::string("\0\0\0\0", 4), "bad frame length 0"},
      {huge_length, "bad frame length 2097152"},
  };
  for (const auto& [bytes, message] : cases) {
    SCOPED_TRACE(message);
    Connect();
    auto call =
        std::async(std::launch::async, [&] { return client_->Call("ping", {}, seconds(30)); });
    ASSERT_GT(NextRequest("ping"), 0);
    SendRaw(bytes);
    auto result = call.get();
    ASSERT_FALSE(result.ok());
    EXPECT_EQ(result.error().code(), ErrorCode::kUnavailable);
    EXPECT_TRUE(WaitClosed());
    // The host hung up on the guest.
    char c;
    EXPECT_EQ(::read(guest_.get(), &c, 1), 0);
    auto seen = WaitViolations();
    ASSERT_EQ(seen.size(), 1u);
    EXPECT_NE(seen[0].find(message), std::string::npos) << seen[0];
    client_.reset();
    violations_.clear();
  }
}

TEST_F(FakeGuestTest, WellFormedButUnknownFramesAreIgnored) {
  Connect();
  Send({{"type", "from-the-future"}, {"x", {1, 2}}});
  Send({{"type", "stdout"}, {"stream", 999}, {"data", "aGk="}});  // nobody's stream
  Send({{"id", 12345}, {"ok", true}});                            // nobody's request
  auto call =
      std::async(std::launch::async, [&] { return client_->Call("stats", {}, seconds(30)); });
  int64_t id = NextRequest("stats");
  Send({{"id", id}, {"ok", true}, {"load", {1, 2, 3}}});
  auto result = call.get();
  ASSERT_TRUE(result.ok()) << result.error().message();
  EXPECT_EQ((*result)["load"].size(), 3u);
  EXPECT_FALSE(client_->closed());
  EXPECT_TRUE(violations().empty());
}

TEST_F(FakeGuestTest, AgentErrorsComeBackAsErrors) {
  Connect();
  auto call = std::async(std::launch::async,
                         [&] { return client_->Call("prepare_disk", {}, seconds(30)); });
  Send({{"id", NextRequest("prepare_disk")},
        {"ok", false},
        {"error", {{"code", "failed_precondition"}, {"message", "disk holds data"}}}});
  auto result = call.get();
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_EQ(result.error().message(), "disk holds data");
}

// A guest writing output faster than the host reads it is slowed down, not buffered without end:
// what the host accepted stays within the stream's limit (plus the socket's buffers), and nothing
// is lost once the reader catches up.
TEST_F(FakeGuestTest, UnreadOutputIsBoundedByBackPressure) {
  constexpr size_t kLimit = 256 << 10;
  Connect({.max_stream_buffer = kLimit});
  auto exec = std::async(std::launch::async, [&] { return client_->Exec({.argv = {"yes"}}); });
  int64_t id = NextRequest("exec");
  Send({{"id", id}, {"ok", true}, {"stream", id}});
  auto session = exec.get();
  ASSERT_TRUE(session.ok()) << session.error().message();
  int sndbuf = 0;
  socklen_t len = sizeof(sndbuf);
  ASSERT_EQ(::getsockopt(guest_.get(), SOL_SOCKET, SO_SNDBUF, &sndbuf, &len), 0);
  ASSERT_EQ(::fcntl(guest_.get(), F_SETFL, O_NONBLOCK), 0);
  const std::string piece(16 << 10, 'y');
  const std::string frame =
      EncodeFrame({{"type", "stdout"}, {"stream", id}, {"data", Base64Encode(piece)}});
  size_t written = 0, frames = 0;
  auto until = std::chrono::steady_clock::now() + seconds(2);
  while (std::chrono::steady_clock::now() < until) {
    ssize_t n = ::write(guest_.get(), frame.data(), frame.size());
    if (n == static_cast<ssize_t>(frame.size())) {
      written += frame.size();
      ++frames;
      continue;
    }
    ASSERT_TRUE(n < 0 && errno == EAGAIN) << "a partial write would split the frame";
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  // Buffered: the stream's limit, one frame in the decoder, and both ends' socket buffers.
  EXPECT_LT(written, kLimit + 2 * frame.size() + 4 * static_cast<size_t>(sndbuf) + (1 << 20));
  ASSERT_EQ(::fcntl(guest_.get(), F_SETFL, 0), 0);
  // The exit waits behind the output, so it is sent while the host reads.
  std::thread exit([&] {
    (void)WriteFrame(guest_.get(), {{"type", "exit"}, {"stream", id}, {"code", 0}});
  });
  size_t received = 0;
  for (;;) {
    auto e = (*session)->Next();
    if (!e.ok()) ADD_FAILURE() << e.error().message();
    if (!e.ok() || e->kind == ExecEvent::Kind::kExit) break;
    received += e->data.size();
  }
  exit.join();
  EXPECT_EQ(received, frames * piece.size());
  EXPECT_TRUE(violations().empty());
}

TEST_F(FakeGuestTest, ClientShutsDownWhileItsReaderWaitsForRoom) {
  Connect({.max_stream_buffer = 1024});
  auto exec = std::async(std::launch::async, [&] { return client_->Exec({.argv = {"yes"}}); });
  int64_t id = NextRequest("exec");
  Send({{"id", id}, {"ok", true}, {"stream", id}});
  auto session = exec.get();
  ASSERT_TRUE(session.ok());
  for (int i = 0; i < 4; ++i) {
    Send({{"type", "stdout"}, {"stream", id}, {"data", Base64Encode(std::string(4096, 'y'))}});
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  client_.reset();  // must not hang
  auto e = (*session)->Next();
  EXPECT_TRUE(e.ok());  // what was queued is still there
  session->reset();
}

TEST_F(FakeGuestTest, FrameFloodsAreSlowedToTheRateLimit) {
  Connect({.max_frames_per_second = 1000});
  std::string flood;
  // Several reads' worth, so the limit applies before the reply is read.
  for (int i = 0; i < 8000; ++i) flood += EncodeFrame({{"type", "noise"}});
  auto start = std::chrono::steady_clock::now();
  auto call =
      std::async(std::launch::async, [&] { return client_->Call("ping", {}, seconds(30)); });
  int64_t id = NextRequest("ping");
  SendRaw(flood);
  Send({{"id", id}, {"ok", true}, {"pong", true}});
  ASSERT_TRUE(call.get().ok());
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
}

TEST(GuestMessageTest, DecodesAStreamOfFrames) {
  std::string bytes = EncodeFrame({{"type", "hello"}, {"kernel", "6.1\x1b[2J"}}) +
                      EncodeFrame({{"id", 3}, {"ok", true}, {"pong", true}}) +
                      EncodeFrame({{"type", "stderr"}, {"stream", 3}, {"data", "aGk="}}) +
                      EncodeFrame({{"type", "exit"}, {"stream", 3}, {"code", 137}});
  auto messages = DecodeGuestMessages(bytes);
  ASSERT_TRUE(messages.ok()) << messages.error().message();
  ASSERT_EQ(messages->size(), 4u);
  EXPECT_EQ((*messages)[0].hello.kernel, "6.1?[2J") << "no terminal control from the guest";
  EXPECT_EQ((*messages)[1].id, 3);
  EXPECT_EQ((*messages)[1].result, (nlohmann::json{{"pong", true}}));
  EXPECT_TRUE((*messages)[2].is_stderr);
  EXPECT_EQ((*messages)[2].data, "hi");
  EXPECT_EQ((*messages)[3].exit_code, 137);
  EXPECT_EQ(ParseHello({{"hostname", std::string(1000, 'h')}})->hostname.size(), 256u);
  EXPECT_FALSE(DecodeGuestMessages(bytes + EncodeFrame({{"type", nullptr}})).ok());
  EXPECT_TRUE(DecodeGuestMessages(bytes.substr(0, bytes.size() - 1)).ok()) << "partial is fine";
}

TEST(GuestMessageTest, ReplyMembersAreTypeChecked) {
  nlohmann::json reply = {{"formatted", "yes"}, {"size_bytes", 12}, {"keys", {"a", 2}}};
  EXPECT_FALSE(ReplyBool(reply, "formatted", false).ok());
  EXPECT_EQ(*ReplyInt(reply, "size_bytes", 0), 12);
  EXPECT_EQ(*ReplyInt(reply, "missing", 5), 5);
  EXPECT_FALSE(ReplyStrings(reply, "keys").ok());
  EXPECT_FALSE(ReplyStrings({{"keys", "a"}}, "keys").ok());
  EXPECT_EQ(ReplyStrings({{"keys", {"a", "b"}}}, "keys")->size(), 2u);
}

}  // namespace
}  // namespace vmctl::agent
