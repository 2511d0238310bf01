// The SSH gateway's proxy mode with the real OpenSSH ssh, scp and sftp against real VMs: routing
// by username (VM@host, VM+USER@host), by the address dialled (a pool of 127.0.1.x addresses) and
// by ProxyJump; exec with exit status and separate stderr, a shell on a PTY with window changes,
// scp both ways (SFTP and legacy protocol) of 64 MiB with matching hashes, sftp, -L forwarding,
// access for the owner and shares only, a stopped VM, and a VM restarting under a session.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <thread>

#include "base/io.h"
#include "tests/e2e/daemon.h"

namespace vmctl::e2e {
namespace {

namespace fs = std::filesystem;
using std::chrono::seconds;

class SshProxyTest : public ::testing::Test {
 protected:
  void SetUp() override { d_.Start(); }

  // An ssh_config for `user`'s key: the options apply to ProxyJump's jump connection too.
  fs::path Config(const std::string& user) {
    fs::path config = d_.dir() / ("ssh_config_" + user);
    if (!fs::exists(config)) {
      fs::path key = d_.UserKey(user);
      EXPECT_TRUE(WriteFileAtomic(config,
                                  "Host *\n"
                                  "  StrictHostKeyChecking accept-new\n"
                                  "  UserKnownHostsFile " +
                                      (d_.dir() / "known_hosts").string() +
                                      "\n"
                                      "  IdentitiesOnly yes\n"
                                      "  IdentityFile " +
                                      key.string() +
                                      "\n"
                                      "  ConnectTimeout 20\n"
                                      "  LogLevel ERROR\n")
                      .ok());
    }
    return config;
  }
  // `ssh -F CONFIG [extra...] -p 2222 TARGET COMMAND` in the daemon's namespace.
  RunOutput Ssh(const std::string& user, const std::string& target, const std::string& command,
                std::vector<std::string> extra = {}, const std::string& stdin_data = "") {
    std::vector<std::string> argv = d_.netns().Prefix();
    for (const char* a : {"ssh", "-F"}) argv.push_back(a);
    argv.push_back(Config(user).string());
    argv.insert(argv.end(), extra.begin(), extra.end());
    for (const char* a : {"-p", "2222"}) argv.push_back(a);
    argv.push_back(target);
    if (!command.empty()) argv.push_back(command);
    RunOptions options;
    options.stdin_data = stdin_data;
    options.timeout = seconds(600);
    return RunCommand(argv, options).value();
  }
  RunOutput InNs(const std::vector<std::string>& argv) const {
    return d_.netns().Run(argv, seconds(600));
  }

  TestDaemon d_{{"--ssh-address-pool", "127.0.1.1-127.0.1.4", "--domain", "vm.test"}};
};

TEST_F(SshProxyTest, UsersReachTheirVmsSshdThroughTheGateway) {
  ASSERT_EQ(Ssh("alice", "127.0.0.1", "register alice@example.com").exit_code, 0);
  ASSERT_EQ(Ssh("bob", "127.0.0.1", "register bob@example.com").exit_code, 0);
  auto created = Ssh("alice", "127.0.0.1", "new --name web --disk 0");
  ASSERT_EQ(created.exit_code, 0) << created.err;
  EXPECT_NE(created.out.find("Connect:  ssh -p 2222 web@127.0.0.1"), std::string::npos)
      << created.out;

  // Exec: output, separate stderr, exit status; as the image's default user and as a named one.
  auto exec = Ssh("alice", "web@127.0.0.1", "echo out; echo err >&2; whoami; exit 7");
  EXPECT_EQ(exec.exit_code, 7) << exec.err;
  EXPECT_EQ(exec.out, "out\nroot\n");
  EXPECT_EQ(exec.err, "err\n");
  EXPECT_EQ(Trim(Ssh("alice", "web+root@127.0.0.1", "hostname").out), "web");
  auto no_user = Ssh("alice", "web+nobody2@127.0.0.1", "true");
  EXPECT_NE(no_user.exit_code, 0);
  EXPECT_NE(no_user.err.find("VM 'web' has no user 'nobody2'"), std::string::npos) << no_user.err;
  // Agent forwarding is refused: the user's agent never reaches the VM.
  auto agent = InNs({"sh", "-c",
                     "eval $(ssh-agent -s) > /dev/null; ssh-add -q " +
                         d_.UserKey("alice").string() + "; ssh -A -F " + Config("alice").string() +
                         " -p 2222 web@127.0.0.1 'echo agent:${SSH_AUTH_SOCK:-none}'; "
                         "kill $SSH_AGENT_PID"});
  EXPECT_EQ(Trim(agent.out), "agent:none") << agent.err;
  // A user who rewrites authorized_keys drops the gateway's line: the next login puts it back.
  EXPECT_EQ(Ssh("alice", "web@127.0.0.1", "echo > /root/.ssh/authorized_keys").exit_code, 0);
  EXPECT_EQ(Ssh("alice", "web@127.0.0.1", "grep -c vmctl-gateway /root/.ssh/authorized_keys").out,
            "1\n");
  // stdin reaches the command and its EOF ends it.
  EXPECT_EQ(Ssh("alice", "web@127.0.0.1", "wc -c", {}, std::string(100000, 'x')).out, "100000\n");

  // A shell on a PTY: its size, then a window change while it runs.
  // The window changes only once the first size is out, however long the login takes.
  // script(1) runs the line with $SHELL; a POSIX sh gives a background job /dev/null as stdin,
  // so ssh gets the PTY through fd 3, and SHELL is pinned so every host runs the same shell.
  fs::path sizes = d_.dir() / "sizes";
  auto pty = InNs({"env", "SHELL=/bin/sh", "script", "-qec",
                   "exec 3<&0; stty cols 123 rows 45; ssh -F " + Config("alice").string() +
                       " -tt -p 2222 web@127.0.0.1 'stty size; sleep 4; stty size' <&3 > " +
                       sizes.string() + " & for i in $(seq 300); do grep -q 45 " + sizes.string() +
                       " && break; sleep 0.2; done; stty cols 77 rows 22; kill -WINCH $!; wait",
                   "/dev/null"});
  auto read = ReadFile(sizes);
  std::string seen = read.ok() ? *read : "";
  EXPECT_NE(seen.find("45 123\r\n"), std::string::npos) << seen << pty.err;
  EXPECT_NE(seen.find("22 77\r\n"), std::string::npos) << seen << pty.err;
  // An interactive shell fed through the PTY.
  auto shell = Ssh("alice", "web@127.0.0.1", "", {"-tt"}, "echo shell-$((6*7))\nexit 3\n");
  EXPECT_NE(shell.out.find("shell-42"), std::string::npos) << shell.out;
  EXPECT_EQ(shell.exit_code, 3);

  // scp of 64 MiB each way, by SFTP (the default) and by the legacy protocol, hashes compared.
  fs::path big = d_.dir() / "big";
  ASSERT_TRUE(
      RunCommandChecked({"sh", "-c", "head -c 67108864 /dev/urandom > " + big.string()}).ok());
  std::string sum = RunCommandChecked({"sha256sum", big.string()})->out.substr(0, 64);
  std::vector<std::string> scp = {"scp", "-q", "-F", Config("alice").string(), "-P", "2222"};
  auto up = scp;
  up.insert(up.end(), {big.string(), "web@127.0.0.1:/root/big"});
  ASSERT_EQ(InNs(up).exit_code, 0) << InNs(up).err;
  EXPECT_EQ(Ssh("alice", "web@127.0.0.1", "sha256sum /root/big").out.substr(0, 64), sum);
  auto down = scp;
  down.insert(down.end(), {"-O", "web@127.0.0.1:/root/big", (d_.dir() / "back").string()});
  auto fetched = InNs(down);
  ASSERT_EQ(fetched.exit_code, 0) << fetched.err;
  EXPECT_EQ(RunCommandChecked({"sha256sum", (d_.dir() / "back").string()})->out.substr(0, 64), sum);

  // sftp.
  RunOptions batch;
  batch.stdin_data = "ls -l /root\n";
  auto sftp = RunCommand({"ip", "netns", "exec", d_.netns().name(), "sftp", "-F",
                          Config("alice").string(), "-P", "2222", "-b", "-", "web@127.0.0.1"},
                         batch);
  ASSERT_TRUE(sftp.ok());
  EXPECT_EQ(sftp->exit_code, 0) << sftp->err;
  EXPECT_NE(sftp->out.find("big"), std::string::npos) << sftp->out;

  // -L: a local port forwarded to the VM's own sshd, as the VM sees it (localhost:22).
  auto banner =
      InNs({"bash", "-c",
            "ssh -F " + Config("alice").string() +
                " -p 2222 -L 127.0.0.1:2298:localhost:22 web@127.0.0.1 'sleep 6' & "
                "sleep 3; exec 3<>/dev/tcp/127.0.0.1/2298; head -c 8 <&3; exec 3<&-; wait"});
  EXPECT_EQ(banner.out.substr(0, 8), "SSH-2.0-") << banner.out << banner.err;

  // Bob gets nothing of Alice's VM: the same answers as for a VM that does not exist.
  auto theirs = Ssh("bob", "web+root@127.0.0.1", "true");
  auto ghost = Ssh("bob", "ghost+root@127.0.0.1", "true");
  EXPECT_NE(theirs.exit_code, 0);
  EXPECT_EQ(theirs.err, "vmctl: no VM named 'web'\n");
  EXPECT_EQ(ghost.err, "vmctl: no VM named 'ghost'\n");
  EXPECT_EQ(Ssh("bob", "web@127.0.0.1", "echo hi").err,
            Ssh("bob", "ghost@127.0.0.1", "echo hi").err);
  // Shared with him, he gets in.
  ASSERT_EQ(Ssh("alice", "127.0.0.1", "share add web bob@example.com").exit_code, 0);
  EXPECT_EQ(Trim(Ssh("bob", "web@127.0.0.1", "hostname").out), "web");

  // Routing by the address dialled: each user's VMs get the pool's addresses in order.
  auto web =
      nlohmann::json::parse(Ssh("alice", "127.0.0.1", "show web --json").out, nullptr, false);
  EXPECT_EQ(web.value("ssh_address", ""), "127.0.1.1") << web.dump();
  ASSERT_EQ(Ssh("bob", "127.0.0.1", "new --name db --disk 0").exit_code, 0);
  EXPECT_EQ(Trim(Ssh("alice", "root@127.0.1.1", "hostname").out), "web");
  auto bobs = Ssh("bob", "root@127.0.1.1", "hostname");
  EXPECT_EQ(Trim(bobs.out), "db") << bobs.err;
  EXPECT_EQ(Ssh("bob", "127.0.1.2", "echo hi").err, "vmctl: unknown command 'echo'; try `help`\n");

  // ProxyJump: the VM's name travels in a direct-tcpip request to the gateway.
  auto jump = Ssh("alice", "web.vm.test", "hostname", {"-J", "127.0.0.1:2222"});
  EXPECT_EQ(Trim(jump.out), "web") << jump.err;
  // One known_hosts line from the gateway trusts it under every VM name, strictly checked.
  std::string line = Ssh("alice", "127.0.0.1", "known-hosts").out;
  EXPECT_EQ(line.rfind("[127.0.0.1]:2222,[*.vm.test]:2222 ssh-ed25519 ", 0), 0u) << line;
  ASSERT_TRUE(WriteFileAtomic(d_.dir() / "strict_known_hosts", line).ok());
  std::string strict = *ReadFile(Config("alice"));
  strict.replace(strict.find("accept-new"), 10, "yes");
  strict.replace(strict.find(d_.dir() / "known_hosts"), (d_.dir() / "known_hosts").string().size(),
                 (d_.dir() / "strict_known_hosts").string());
  ASSERT_TRUE(WriteFileAtomic(d_.dir() / "ssh_config_strict", strict).ok());
  auto strict_jump = InNs({"ssh", "-F", (d_.dir() / "ssh_config_strict").string(), "-J",
                           "127.0.0.1:2222", "-p", "2222", "web.vm.test", "hostname"});
  EXPECT_EQ(Trim(strict_jump.out), "web") << strict_jump.err;
  auto jump_denied = Ssh("alice", "db.vm.test", "hostname", {"-J", "127.0.0.1:2222"});
  EXPECT_NE(jump_denied.exit_code, 0);
  EXPECT_NE(jump_denied.err.find("no VM named 'db'"), std::string::npos) << jump_denied.err;

  // A client that vanishes mid-session: its session in the VM ends and the gateway lets go of
  // everything it held for it.
  size_t fds_before = OpenFdCount(d_.process().pid);
  // (On a PTY, as without the gateway: sshd hangs up a terminal session's processes when its
  // client goes, while a plain `ssh host sleep 300` would leave the sleep running.)
  InNs({"timeout", "-s", "KILL", "5", "ssh", "-tt", "-F", Config("alice").string(), "-p", "2222",
        "web@127.0.0.1", "sleep 300"});
  std::string sleeping;
  size_t fds_after = 0;
  for (int i = 0; i < 60; ++i) {
    sleeping = Trim(Ssh("alice", "web@127.0.0.1", "pgrep -x sleep || echo none").out);
    fds_after = OpenFdCount(d_.process().pid);
    if (sleeping == "none" && fds_after <= fds_before) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  EXPECT_EQ(sleeping, "none");
  EXPECT_LE(fds_after, fds_before);

  // A VM restarting under an open session ends it, with a message.
  auto restart = std::thread([&] {
    // Once the session runs (its sleep is the only one in the VM, as checked above).
    for (int i = 0; i < 120; ++i) {
      if (Trim(Ssh("alice", "web@127.0.0.1", "pgrep -x sleep || true").out) != "") break;
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
    EXPECT_EQ(Ssh("alice", "127.0.0.1", "restart web").exit_code, 0);
  });
  auto cut = Ssh("alice", "web@127.0.0.1", "sleep 120; echo not-cut");
  restart.join();
  EXPECT_EQ(cut.exit_code, 255);
  EXPECT_EQ(cut.out.find("not-cut"), std::string::npos);
  EXPECT_NE(cut.err.find("the connection to VM 'web' ended"), std::string::npos) << cut.err;
  EXPECT_EQ(Trim(Ssh("alice", "web@127.0.0.1", "hostname").out), "web");  // and back

  // A stopped VM: what to do about it.
  ASSERT_EQ(Ssh("alice", "127.0.0.1", "stop web").exit_code, 0);
  auto stopped = Ssh("alice", "web@127.0.0.1", "true");
  EXPECT_EQ(stopped.exit_code, 5);
  EXPECT_EQ(stopped.err,
            "vmctl: VM 'web' is stopped; start it with:  ssh -p 2222 127.0.0.1 "
            "start web\n");
  EXPECT_NE(Ssh("bob", "web@127.0.0.1", "true").err.find("ask its owner"), std::string::npos);

  EXPECT_EQ(Ssh("alice", "127.0.0.1", "rm web").exit_code, 0);
  EXPECT_EQ(Ssh("bob", "127.0.0.1", "rm db").exit_code, 0);
}

}  // namespace
}  // namespace vmctl::e2e
