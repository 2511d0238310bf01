// Hostile input (issue 11, attacks 2 and 3): a guest that breaks the agent protocol and API
// clients that break HTTP or exec-stream framing each lose only their own connection; the daemon
// keeps serving everyone else, and the VM stays manageable.
#include <gtest/gtest.h>

#include <thread>

#include "base/frame.h"
#include "base/io.h"
#include "tests/e2e/daemon.h"

namespace vmctl::e2e {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

// Writes `request` to the API socket and returns everything the daemon sends until it closes the
// connection (or `wait` passes).
std::string RawExchange(const TestDaemon& d, std::string_view request,
                        std::chrono::milliseconds wait = 15s) {
  auto fd = ConnectUnix(d.socket());
  EXPECT_TRUE(fd.ok());
  if (!fd.ok()) return "";
  EXPECT_TRUE(WriteAll(fd->get(), request).ok());
  std::string got;
  auto deadline = std::chrono::steady_clock::now() + wait;
  while (std::chrono::steady_clock::now() < deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (!WaitReadable(fd->get(), left).ok()) break;
    auto data = ReadSome(fd->get(), 65536);
    if (!data.ok() || data->empty()) return got;
    got += *data;
  }
  ADD_FAILURE() << "the daemon kept the connection open; got: " << got;
  return got;
}

class HostileInputTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    daemon_ = new TestDaemon();
    daemon_->Start();
  }
  static void TearDownTestSuite() {
    delete daemon_;
    daemon_ = nullptr;
  }
  // The daemon still answers, and is the same process.
  static void ExpectServing() {
    EXPECT_TRUE(daemon_->process().Alive());
    auto ls = daemon_->Vmctl({"ls"}, "", 60s);
    EXPECT_EQ(ls.exit_code, 0) << ls.err;
  }
  static TestDaemon* daemon_;
};
TestDaemon* HostileInputTest::daemon_ = nullptr;

TEST_F(HostileInputTest, HttpFramingViolationsAreRefusedAndClose) {
  struct Case {
    std::string request;
    std::string status;
    std::string message;
  };
  for (const auto& c : std::vector<Case>{
           {"POST /v1/vms HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
            "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            "400", ""},
           {"POST /v1/vms HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
            "0\r\n\r\n",
            "501", "Transfer-Encoding"},
           {"POST /v1/vms HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\n", "501", ""},
           {"POST /v1/vms HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
            "400", "Content-Length"},
           {"BREW /v1/vms HTTP/1.1\r\nHost: x\r\n\r\n", "501", "unknown HTTP method"},
           {"GET /v1/vms/a%ff HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "400",
            "not valid UTF-8"},
           {"GET /v1/vms/\xff\xfe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "400", ""},
           {"GET /v1/vms/a%zz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "400",
            "percent-encoding"},
       }) {
    std::string got = RawExchange(*daemon_, c.request);
    EXPECT_TRUE(got.starts_with("HTTP/1.1 " + c.status)) << c.request << "\n-> " << got;
    EXPECT_NE(got.find(c.message), std::string::npos) << c.request << "\n-> " << got;
    EXPECT_EQ(got.find("type_error"), std::string::npos) << got;
  }
  std::string body = R"({"name":"big","cpus":18446744073709551615})";
  std::string got = RawExchange(
      *daemon_, "POST /v1/vms HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: " +
                    std::to_string(body.size()) + "\r\n\r\n" + body);
  EXPECT_TRUE(got.starts_with("HTTP/1.1 400")) << got;
  EXPECT_NE(got.find("(got 18446744073709551615)"), std::string::npos) << got;
  ExpectServing();
}

TEST_F(HostileInputTest, HalfSentRequestIsClosedWithinTheHeaderTimeout) {
  auto start = std::chrono::steady_clock::now();
  std::string got = RawExchange(*daemon_, "GET /v1/vms HTTP/1.1\r\nHost: x\r\n", 30s);
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_TRUE(got.starts_with("HTTP/1.1 408")) << got;
  EXPECT_LT(took, 15s);
  ExpectServing();
}

// One VM shared by the cases below: boots are slow.
class HostileGuestTest : public HostileInputTest {
 protected:
  static void SetUpTestSuite() {
    HostileInputTest::SetUpTestSuite();
    auto created = daemon_->Vmctl({"create", "victim", "--disk", "0"});
    ASSERT_EQ(created.exit_code, 0) << created.err;
  }
  // Runs `script` as root in the VM in a transient unit of its own, so stopping the agent (whose
  // cgroup holds what it execs) does not stop the script.
  static void Detached(const std::string& unit, const std::string& script) {
    auto out = daemon_->Vmctl(
        {"exec", "victim", "--", "systemd-run", "--unit=" + unit, "--quiet", "sh", "-c", script});
    ASSERT_EQ(out.exit_code, 0) << out.err;
  }
  static std::string AgentEvents() {
    return Sql(daemon_->state_dir() / "vmctl.db",
               "select group_concat(detail, '|') from events where kind = 'agent' and detail like "
               "'dropped the agent connection%'");
  }
  static bool WaitFor(const std::function<bool()>& done, std::chrono::seconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (done()) return true;
      std::this_thread::sleep_for(500ms);
    }
    return done();
  }
  // The guest breaks the protocol with `bytes` (printf format) written to the agent's port while
  // its agent is stopped, then starts the agent again.
  static void Attack(const std::string& unit, const std::string& bytes,
                     const std::string& expected_event) {
    Detached(unit,
             "sleep 2; systemctl stop vmctl-agent; printf '" + bytes +
                 "' > /dev/virtio-ports/org.vmctl.agent; sleep 10; systemctl start vmctl-agent");
    EXPECT_TRUE(
        WaitFor([&] { return AgentEvents().find(expected_event) != std::string::npos; }, 60s))
        << AgentEvents() << "\n"
        << TailFile(daemon_->log(), 4000);
    // During the attack the daemon serves as usual.
    ExpectServing();
    EXPECT_EQ(daemon_->Show("victim").value_or(json::object()).value("state", ""), "running");
    // Once the agent is back, exec works again.
    EXPECT_TRUE(WaitFor(
        [] {
          return daemon_->Vmctl({"exec", "victim", "--", "true"}, "", 60s).exit_code == 0;
        },
        120s));
    auto echo = daemon_->Vmctl({"exec", "victim", "--", "echo", "back"});
    EXPECT_EQ(echo.exit_code, 0) << echo.err;
    EXPECT_EQ(echo.out, "back\n");
  }
};

TEST_F(HostileGuestTest, FrameWithANumberForItsTypeDropsOnlyTheAgentConnection) {
  // {"type":5} is 10 bytes.
  Attack("vmctl-attack-type", R"(\000\000\000\012{"type":5})", "'type' is not a string");
}

TEST_F(HostileGuestTest, OversizedFrameLengthDropsOnlyTheAgentConnection) {
  // Past the 10 s between two recorded violations of one VM.
  std::this_thread::sleep_for(11s);
  Attack("vmctl-attack-length", R"(\377\377\377\377garbage)", "bad frame length 4294967295");
}

TEST_F(HostileGuestTest, MalformedExecStreamFrameEndsOnlyThatStream) {
  auto fd = ConnectUnix(daemon_->socket());
  ASSERT_TRUE(fd.ok());
  std::string body = R"({"argv":["sleep","60"]})";
  ASSERT_TRUE(WriteAll(fd->get(),
                       "POST /v1/vms/victim/exec HTTP/1.1\r\nHost: x\r\n"
                       "Connection: Upgrade\r\nUpgrade: vmctl-exec\r\n"
                       "Content-Length: " +
                           std::to_string(body.size()) + "\r\n\r\n" + body)
                  .ok());
  std::string head;
  while (head.find("\r\n\r\n") == std::string::npos) {
    ASSERT_TRUE(WaitReadable(fd->get(), 60s).ok());
    auto data = ReadSome(fd->get(), 1);
    ASSERT_TRUE(data.ok() && !data->empty()) << head;
    head += *data;
  }
  ASSERT_TRUE(head.starts_with("HTTP/1.1 101")) << head;
  ASSERT_TRUE(WriteFrame(fd->get(), {{"type", 5}}).ok());
  ASSERT_TRUE(WaitReadable(fd->get(), 30s).ok());
  auto frame = ReadFrame(fd->get());
  ASSERT_TRUE(frame.ok()) << frame.error().message();
  EXPECT_EQ((*frame)["type"], "error");
  EXPECT_EQ((*frame)["code"], "invalid_argument");
  ASSERT_TRUE(WaitReadable(fd->get(), 30s).ok());
  EXPECT_FALSE(ReadFrame(fd->get()).ok()) << "the stream ends after its error";
  ExpectServing();
  auto echo = daemon_->Vmctl({"exec", "victim", "--", "echo", "fine"});
  EXPECT_EQ(echo.exit_code, 0) << echo.err;
  // The killed `sleep 60` is gone from the guest.
  EXPECT_TRUE(WaitFor(
      [] {
        return daemon_->Vmctl({"exec", "victim", "--", "pgrep", "-x", "sleep"}).exit_code != 0;
      },
      30s));
}

TEST_F(HostileGuestTest, VmStaysManageableAfterTheAttacks) {
  auto stopped = daemon_->Vmctl({"stop", "victim"});
  EXPECT_EQ(stopped.exit_code, 0) << stopped.err;
  auto started = daemon_->Vmctl({"start", "victim"});
  EXPECT_EQ(started.exit_code, 0) << started.err;
  auto echo = daemon_->Vmctl({"exec", "victim", "--", "echo", "again"});
  EXPECT_EQ(echo.out, "again\n") << echo.err;
  auto removed = daemon_->Vmctl({"rm", "victim"});
  EXPECT_EQ(removed.exit_code, 0) << removed.err;
  ExpectServing();
}

}  // namespace
}  // namespace vmctl::e2e
