#include <gtest/gtest.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "agent/guest/spawn.h"
#include "agent/guest/system.h"
#include "agent/guest/virtio_port.h"
#include "base/io.h"

namespace vmctl::agent::guest {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "agent-guest-test-XXXXXX").string();
    path_ = ::mkdtemp(pattern.data());
  }
  ~TempDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

void WriteText(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream(path) << text;
}

TEST(PasswdTest, FindsUserFields) {
  std::string passwd =
      "root:x:0:0:root:/root:/bin/bash\n"
      "# comment\n"
      "dev:x:1000:1001:Dev User,,,:/home/dev:/bin/sh\n";
  auto dev = FindPasswdEntry(passwd, "dev");
  ASSERT_TRUE(dev.has_value());
  EXPECT_EQ(dev->uid, 1000u);
  EXPECT_EQ(dev->gid, 1001u);
  EXPECT_EQ(dev->home, "/home/dev");
  EXPECT_FALSE(FindPasswdEntry(passwd, "de").has_value());
  EXPECT_FALSE(FindPasswdEntry("bad:x:zero:0:::/bin/sh\n", "bad").has_value());
}

TEST(ProcParseTest, CpuTotals) {
  auto cpu = ParseCpuTotals("cpu  10 2 30 400 5 6 7 8 0 0\ncpu0 1 1 1 1 1 1 1 1 0 0\n");
  ASSERT_TRUE(cpu.ok());
  EXPECT_EQ((*cpu)["user"], 10);
  EXPECT_EQ((*cpu)["idle"], 400);
  EXPECT_EQ((*cpu)["steal"], 8);
  EXPECT_FALSE(ParseCpuTotals("intr 1 2 3\n").ok());
}

TEST(ProcParseTest, Meminfo) {
  auto mem = ParseMeminfo("MemTotal:        2048 kB\nMemFree: 1 kB\nMemAvailable:    1024 kB\n");
  ASSERT_TRUE(mem.ok());
  EXPECT_EQ((*mem)["total_bytes"], 2048 * 1024);
  EXPECT_EQ((*mem)["available_bytes"], 1024 * 1024);
  EXPECT_FALSE(ParseMeminfo("MemTotal: 1 kB\n").ok());
}

TEST(ValidationTest, AddressesAndNames) {
  EXPECT_TRUE(IsValidCidr("10.0.0.2/24"));
  EXPECT_TRUE(IsValidCidr("fd00::2/64"));
  EXPECT_FALSE(IsValidCidr("10.0.0.2"));
  EXPECT_FALSE(IsValidCidr("10.0.0.2/33"));
  EXPECT_FALSE(IsValidCidr("10.0.0/24"));
  EXPECT_FALSE(IsValidCidr("10.0.0.2/-1"));
  EXPECT_TRUE(IsValidIp("1.1.1.1"));
  EXPECT_FALSE(IsValidIp("1.1.1.1; reboot"));
  EXPECT_TRUE(IsValidHostname("demo-1.example"));
  EXPECT_FALSE(IsValidHostname("-demo"));
  EXPECT_FALSE(IsValidHostname("a..b"));
  EXPECT_FALSE(IsValidHostname("a b"));
}

TEST(HostsTest, ReplacesOrAddsTheHostnameLine) {
  EXPECT_EQ(HostsWithHostname("127.0.0.1\tlocalhost\n127.0.1.1\told\n::1 localhost\n", "new"),
            "127.0.0.1\tlocalhost\n127.0.1.1\tnew\n::1 localhost\n");
  EXPECT_EQ(HostsWithHostname("127.0.0.1 localhost\n", "new"),
            "127.0.0.1 localhost\n127.0.1.1\tnew\n");
}

TEST(SpawnTest, PathSearchAndEnv) {
  EXPECT_EQ(ExecCandidates("/bin/sh", "/x"), std::vector<std::string>{"/bin/sh"});
  EXPECT_EQ(ExecCandidates("ls", "/a::/b"), (std::vector<std::string>{"/a/ls", "./ls", "/b/ls"}));
  std::vector<std::string> env = {"PATHX=1", "PATH=/p"};
  EXPECT_EQ(EnvValue(env, "PATH", "d"), "/p");
  EXPECT_EQ(EnvValue(env, "HOME", "d"), "d");
}

std::string ReadToEnd(int fd) {
  std::string out;
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    ::poll(&p, 1, -1);
    char buf[4096];
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EAGAIN) continue;
    if (n <= 0) return out;
    out.append(buf, static_cast<size_t>(n));
  }
}

int WaitStatus(pid_t pid) {
  int status = 0;
  ::waitpid(pid, &status, 0);
  return status;
}

TEST(SpawnTest, RunsInItsOwnSessionWithPipes) {
  SpawnRequest request;
  request.argv = {"sh", "-c", "echo $FOO; pwd; echo err >&2; test $(ps -o sid= $$) -eq $$"};
  request.env = {"PATH=/usr/bin:/bin", "FOO=bar"};
  request.cwd = "/tmp";
  auto child = Spawn(request);
  ASSERT_TRUE(child.ok()) << child.error().message();
  child->in.reset();
  EXPECT_EQ(ReadToEnd(child->out.get()), "bar\n/tmp\n");
  EXPECT_EQ(ReadToEnd(child->err.get()), "err\n");
  EXPECT_EQ(WaitStatus(child->pid), 0);
}

TEST(SpawnTest, MissingProgramOrCwdIsNotFound) {
  SpawnRequest request;
  request.argv = {"no-such-program-vmctl"};
  auto missing = Spawn(request);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code(), ErrorCode::kNotFound);
  request.argv = {"true"};
  request.cwd = "/no/such/dir";
  auto bad_cwd = Spawn(request);
  ASSERT_FALSE(bad_cwd.ok());
  EXPECT_EQ(bad_cwd.error().code(), ErrorCode::kNotFound);
}

TEST(SpawnTest, TtyHasTheRequestedSize) {
  SpawnRequest request;
  request.argv = {"stty", "size"};
  request.tty = true;
  request.rows = 33;
  request.cols = 101;
  auto child = Spawn(request);
  ASSERT_TRUE(child.ok()) << child.error().message();
  EXPECT_FALSE(child->err.valid());
  EXPECT_EQ(ReadToEnd(child->out.get()), "33 101\r\n");
  EXPECT_EQ(WaitStatus(child->pid), 0);
}

TEST(RunHelperTest, ReportsFailureOutput) {
  EXPECT_TRUE(RunHelper({"true"}).ok());
  auto failed = RunHelper({"sh", "-c", "echo broken >&2; exit 3"});
  ASSERT_FALSE(failed.ok());
  EXPECT_NE(failed.error().message().find("broken"), std::string::npos);
  EXPECT_FALSE(RunHelper({"no-such-program-vmctl"}).ok());
}

TEST(VirtioPortTest, PrefersUdevLinkThenScansSysfs) {
  TempDir dir;
  fs::path dev = dir.path() / "dev", sys = dir.path() / "sys";
  EXPECT_FALSE(FindVirtioPort(dev, sys, "org.vmctl.agent").has_value());
  WriteText(sys / "vport0p1" / "name", "org.qemu.guest_agent.0\n");
  WriteText(sys / "vport1p2" / "name", "org.vmctl.agent\n");
  // The sysfs entry alone is not enough: the device node must exist.
  EXPECT_FALSE(FindVirtioPort(dev, sys, "org.vmctl.agent").has_value());
  WriteText(dev / "vport1p2", "");
  EXPECT_EQ(FindVirtioPort(dev, sys, "org.vmctl.agent"), dev / "vport1p2");
  WriteText(dev / "virtio-ports" / "org.vmctl.agent", "");
  EXPECT_EQ(FindVirtioPort(dev, sys, "org.vmctl.agent"), dev / "virtio-ports" / "org.vmctl.agent");
}

TEST(SystemTest, HostKeysListsPublicKeysInOrder) {
  TempDir dir;
  auto empty = HostKeys(dir.path());
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE((*empty)["keys"].empty());
  WriteText(dir.path() / "ssh" / "ssh_host_rsa_key.pub", "ssh-rsa BBB root@x\n");
  WriteText(dir.path() / "ssh" / "ssh_host_ed25519_key.pub", "ssh-ed25519 AAA root@x\n");
  WriteText(dir.path() / "ssh" / "ssh_host_ed25519_key", "PRIVATE\n");
  auto keys = HostKeys(dir.path());
  ASSERT_TRUE(keys.ok());
  EXPECT_EQ((*keys)["keys"], nlohmann::json({"ssh-ed25519 AAA root@x", "ssh-rsa BBB root@x"}));
}

TEST(SystemTest, SetAuthorizedKeysWritesPrivateFile) {
  TempDir dir;
  fs::path home = dir.path() / "home" / "dev";
  fs::create_directories(home);
  WriteText(dir.path() / "passwd", "dev:x:" + std::to_string(::getuid()) + ":" +
                                       std::to_string(::getgid()) + "::" + home.string() +
                                       ":/bin/sh\n");
  auto r = SetAuthorizedKeys({{"user", "dev"}, {"keys", {"ssh-ed25519 AAA a", "ssh-rsa BBB b"}}},
                             dir.path());
  ASSERT_TRUE(r.ok()) << r.error().message();
  auto text = ReadFile(home / ".ssh" / "authorized_keys");
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(*text, "ssh-ed25519 AAA a\nssh-rsa BBB b\n");
  struct stat st {};
  ASSERT_EQ(::stat((home / ".ssh").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  ASSERT_EQ(::stat((home / ".ssh" / "authorized_keys").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(st.st_uid, ::getuid());

  auto unknown =
      SetAuthorizedKeys({{"user", "nobody-here"}, {"keys", nlohmann::json::array()}}, dir.path());
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.error().code(), ErrorCode::kNotFound);
  auto bad = SetAuthorizedKeys({{"user", "dev"}, {"keys", {"a\nb"}}}, dir.path());
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code(), ErrorCode::kInvalidArgument);
}

TEST(SystemTest, ConfigureNetworkValidatesBeforeChangingAnything) {
  TempDir dir;
  auto r = ConfigureNetwork({{"address", "10.0.0.2"}, {"hostname", "x"}}, dir.path());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_FALSE(fs::exists(dir.path() / "hostname"));
  auto dns = ConfigureNetwork({{"dns", {"1.1.1.1", "evil\nnameserver 6.6.6.6"}}}, dir.path());
  ASSERT_FALSE(dns.ok());
  EXPECT_FALSE(fs::exists(dir.path() / "resolv.conf"));
}

TEST(SystemTest, StatsReadsThisMachine) {
  auto stats = Stats();
  ASSERT_TRUE(stats.ok()) << stats.error().message();
  EXPECT_GE((*stats)["cpu"]["count"].get<int>(), 1);
  EXPECT_GT((*stats)["memory"]["total_bytes"].get<uint64_t>(), 0u);
  EXPECT_GT((*stats)["disk"]["total_bytes"].get<uint64_t>(), 0u);
  EXPECT_EQ((*stats)["load"].size(), 3u);
  EXPECT_GT((*stats)["uptime_seconds"].get<double>(), 0.0);
}

}  // namespace
}  // namespace vmctl::agent::guest
