// Attacks on the SSH gateway with the real OpenSSH client against a real daemon (no VM needed):
// command lines that are not UTF-8 or steer the terminal, and a flood of idle connections from
// many source addresses that never authenticate. The attacker's connections fail; the daemon
// (the same process) keeps serving everyone else, during the attack and after, and leaks
// nothing.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "base/io.h"
#include "base/unique_fd.h"
#include "tests/e2e/daemon.h"

namespace vmctl::e2e {
namespace {

using std::chrono::seconds;
using Clock = std::chrono::steady_clock;

class GatewayAttackTest : public ::testing::Test {
 protected:
  void SetUp() override { d_.Start(); }

  RunOutput Ssh(const std::string& key, const std::string& command, const std::string& user = "") {
    std::vector<std::string> argv = {"ssh",
                                     "-p",
                                     "2222",
                                     "-o",
                                     "StrictHostKeyChecking=accept-new",
                                     "-o",
                                     "UserKnownHostsFile=" + (d_.dir() / "known_hosts").string(),
                                     "-o",
                                     "IdentitiesOnly=yes",
                                     "-o",
                                     "ConnectTimeout=10",
                                     "-i",
                                     d_.UserKey(key).string()};
    if (!user.empty()) argv.insert(argv.end(), {"-l", user});
    argv.push_back("127.0.0.1");
    argv.push_back(command);
    return d_.netns().Run(argv, seconds(60));
  }

  void Register(const std::string& name) {
    auto r = Ssh(name, "register " + name + "@example.com");
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }

  void ExpectServed(const std::string& name) {
    auto r = Ssh(name, "whoami");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(Trim(r.out), name + " <" + name + "@example.com>");
  }

  void ExpectSameDaemon(pid_t pid) {
    EXPECT_EQ(d_.process().pid, pid);
    EXPECT_EQ(::kill(pid, 0), 0) << "the daemon died";
  }

  TestDaemon d_;
};

TEST_F(GatewayAttackTest, CommandsThatAreNotUtf8FailAndTheDaemonServesOn) {
  Register("alice");
  Register("bob");
  const pid_t daemon = d_.process().pid;

  auto name = Ssh("alice", "new --name a\xff");
  EXPECT_EQ(name.exit_code, 2) << name.err;
  EXPECT_NE(name.err.find("the command is not valid UTF-8 (byte 0xFF at offset 12)"),
            std::string::npos)
      << name.err;
  auto share = Ssh("alice", "share add x \xff");
  EXPECT_EQ(share.exit_code, 2) << share.err;
  EXPECT_NE(share.err.find("not valid UTF-8"), std::string::npos) << share.err;
  // The registration lobby parses the same way.
  auto lobby = Ssh("stranger", "register \xff@example.com");
  EXPECT_EQ(lobby.exit_code, 2) << lobby.err;
  EXPECT_NE(lobby.err.find("not valid UTF-8"), std::string::npos) << lobby.err;

  // Input echoed in an error cannot steer the terminal: the escape arrives escaped.
  auto echoed = Ssh("alice",
                    "reboot\xc2\x9b"
                    "31m");
  EXPECT_EQ(echoed.exit_code, 2) << echoed.err;
  auto quoted = Ssh("alice", "show 'web\xe2\x80\xae'");
  EXPECT_NE(quoted.exit_code, 0);
  for (const auto* r : {&echoed, &quoted}) {
    EXPECT_EQ(r->err.find('\x1b'), std::string::npos) << r->err;
    EXPECT_EQ(r->err.find("\xc2\x9b"), std::string::npos) << r->err;
    EXPECT_EQ(r->err.find("\xe2\x80\xae"), std::string::npos) << r->err;
  }
  EXPECT_NE(echoed.err.find("control character (U+009B at offset 6)"), std::string::npos)
      << echoed.err;

  // A user name that is not text routes nowhere: a clear error, not a request to the VM's agent.
  // (OpenSSH itself refuses to send control characters in one.)
  auto user = Ssh("alice", "whoami", "web\xff");
  EXPECT_EQ(user.exit_code, 2);
  EXPECT_NE(user.err.find("the SSH user name is not valid UTF-8 (byte 0xFF at offset 3)"),
            std::string::npos)
      << user.err;

  // The host's CLI says so too, before it sends anything.
  auto cli = d_.Vmctl({"share", "add", "x", "\xff"});
  EXPECT_EQ(cli.exit_code, 2) << cli.err;
  EXPECT_NE(cli.err.find("an argument is not valid UTF-8 text"), std::string::npos) << cli.err;

  ExpectSameDaemon(daemon);
  ExpectServed("alice");
  ExpectServed("bob");
  auto listed = Ssh("alice", "ls --json");
  EXPECT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_EQ(Trim(listed.out), "[]") << "nothing was created";
}

// Holds `count` idle TCP connections to 127.0.0.1:2222 inside the daemon's network namespace,
// `per_source` from each of 127.0.0.FIRST, 127.0.0.FIRST+1, ...; opens a new one from the same
// address whenever the gateway hangs up on one (at most `max_per_second`), as an attacker renewing
// the flood would, until stopped or `limit` has passed.
class Flood {
 public:
  Flood(const std::string& netns, int first, int count, int per_source, int max_per_second,
        seconds limit)
      : thread_([=, this] { Run(netns, first, count, per_source, max_per_second, limit); }) {}
  ~Flood() {
    stop_ = true;
    thread_.join();
  }
  // Connections open now, and made so far.
  int open() const { return open_; }
  int made() const { return made_; }

 private:
  static UniqueFd Connect(int source) {
    UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    sockaddr_in from{};
    from.sin_family = AF_INET;
    from.sin_addr.s_addr = htonl((127u << 24) | static_cast<uint32_t>(source));
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(2222);
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&from), sizeof(from)) != 0) return {};
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&to), sizeof(to)) != 0 &&
        errno != EINPROGRESS) {
      return {};
    }
    return fd;
  }

  void Run(const std::string& netns, int first, int count, int per_source, int max_per_second,
           seconds limit) {
    // This thread alone enters the namespace: its sockets are the daemon's loopback peers.
    UniqueFd ns(::open(("/run/netns/" + netns).c_str(), O_RDONLY | O_CLOEXEC));
    if (!ns.valid() || ::setns(ns.get(), CLONE_NEWNET) != 0) {
      ADD_FAILURE() << "cannot enter " << netns;
      return;
    }
    std::vector<UniqueFd> fds(count);
    std::vector<int> sources(count);
    for (int i = 0; i < count; ++i) {
      sources[i] = first + i / per_source;
      fds[i] = Connect(sources[i]);
      ++made_;
    }
    auto end = Clock::now() + limit;
    auto second = Clock::now();
    int this_second = 0;
    char sink[4096];
    while (!stop_ && Clock::now() < end) {
      std::vector<pollfd> polled;
      for (const auto& fd : fds) polled.push_back({fd.get(), POLLIN, 0});
      ::poll(polled.data(), polled.size(), 100);
      if (Clock::now() - second > seconds(1)) {
        second = Clock::now();
        this_second = 0;
      }
      int live = 0;
      for (int i = 0; i < count; ++i) {
        bool lost = !fds[i].valid();
        if (!lost && polled[i].revents) {
          // The gateway's version line is read and ignored; a hangup is renewed.
          ssize_t n = ::read(fds[i].get(), sink, sizeof(sink));
          lost = n == 0 || (n < 0 && errno != EAGAIN);
        }
        if (lost && this_second < max_per_second) {
          fds[i] = Connect(sources[i]);
          ++this_second;
          ++made_;
          lost = !fds[i].valid();
        }
        if (!lost) ++live;
      }
      open_ = live;
    }
  }

  std::atomic<bool> stop_{false};
  std::atomic<int> open_{0};
  std::atomic<int> made_{0};
  std::thread thread_;
};

// The number of threads process `pid` runs.
int Threads(pid_t pid) {
  auto status = ReadFile("/proc/" + std::to_string(pid) + "/status");
  if (!status.ok()) return -1;
  auto at = status->find("Threads:");
  return at == std::string::npos ? -1 : std::atoi(status->c_str() + at + 8);
}

TEST_F(GatewayAttackTest, AFloodOfIdleConnectionsLocksNoUserOut) {
  Register("alice");
  const pid_t daemon = d_.process().pid;
  ExpectServed("alice");  // the gateway's threads and sockets of a first session are set up
  size_t fds_before = OpenFdCount(daemon);
  int threads_before = Threads(daemon);
  {
    // 600 from 30 addresses (more than the 256 handshakes the gateway allows at once; before
    // the limits, 520 were enough to refuse everyone for 20 s), plus 100 from one address
    // (more than its 32).
    Flood many(d_.netns().name(), 2, 600, 20, 400, seconds(90));
    Flood one(d_.netns().name(), 40, 100, 100, 100, seconds(90));
    auto deadline = Clock::now() + seconds(20);
    while ((many.made() < 1200 || one.made() < 100) && Clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    EXPECT_GE(many.made(), 1200) << "the gateway keeps 256 handshakes at most, so it renews";
    EXPECT_GE(one.made(), 100);
    // Users get in while the flood goes on, past the gateway's short deadline for handshakes
    // under pressure (5 s) and its renewal.
    for (int i = 0; i < 3; ++i) {
      auto start = Clock::now();
      ExpectServed("alice");
      auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
      EXPECT_LT(took, seconds(10)) << "attempt " << i;
      int threads = Threads(daemon);
      std::cerr << "whoami during the flood: " << took.count() << " ms, " << many.open() << "+"
                << one.open() << " connections open, " << many.made() + one.made()
                << " made so far, the daemon runs " << threads << " threads\n";
      // A thread per handshake (256 at most), none for those waiting their turn.
      EXPECT_LT(threads, threads_before + 256 + 32);
      std::this_thread::sleep_for(seconds(3));
    }
    EXPECT_LE(many.open() + one.open(), 256 + 256 + 10) << "handshakes and waiting ones only";
  }
  ExpectSameDaemon(daemon);
  // Every socket is closed again; waiting ones within the handshake timeout (20 s).
  size_t fds_after = 0;
  for (int i = 0; i < 150; ++i) {
    fds_after = OpenFdCount(daemon);
    if (fds_after <= fds_before) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  EXPECT_LE(fds_after, fds_before);
  ExpectServed("alice");
}

}  // namespace
}  // namespace vmctl::e2e
