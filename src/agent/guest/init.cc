#include "agent/guest/init.h"

#include <fcntl.h>
#include <grp.h>
#include <linux/fs.h>
#include <net/if.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <thread>

#include "base/io.h"
#include "base/unique_fd.h"

extern char** environ;

namespace vmctl::agent::guest {
namespace {

using Clock = std::chrono::steady_clock;

// Not in every libc's headers; the value is the kernel ABI.
constexpr unsigned long kExt4IocResizeFs = _IOW('f', 16, uint64_t);
constexpr char kBasePath[] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

void Say(const std::string& message) { std::fprintf(stderr, "vmctl-init: %s\n", message.c_str()); }

void MountOne(const char* source, const char* target, const char* type, unsigned long flags,
              const char* data) {
  ::mkdir(target, 0755);
  if (::mount(source, target, type, flags, data) != 0 && errno != EBUSY) {
    Say(std::string("cannot mount ") + type + " on " + target + ": " + std::strerror(errno));
  }
}

void BringUpLoopback() {
  UniqueFd s(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  ifreq req{};
  std::strncpy(req.ifr_name, "lo", IFNAMSIZ - 1);
  if (!s.valid() || ::ioctl(s.get(), SIOCGIFFLAGS, &req) != 0) return;
  req.ifr_flags = static_cast<short>(req.ifr_flags | IFF_UP);
  if (::ioctl(s.get(), SIOCSIFFLAGS, &req) != 0) {
    Say(std::string("cannot bring up lo: ") + std::strerror(errno));
  }
}

std::string RootDevice() {
  auto cmdline = ReadFile("/proc/cmdline");
  if (cmdline.ok()) {
    for (size_t at = cmdline->find("root="); at != std::string::npos;
         at = cmdline->find("root=", at + 1)) {
      if (at == 0 || (*cmdline)[at - 1] == ' ') {
        size_t end = cmdline->find_first_of(" \n", at);
        return cmdline->substr(at + 5, end == std::string::npos ? end : end - at - 5);
      }
    }
  }
  return "/dev/vda";
}

// In the child, before exec: the service's user, directory, environment and console.
[[noreturn]] void ExecService(const Service& s) {
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  ::signal(SIGPIPE, SIG_DFL);
  ::setsid();
  int null = ::open("/dev/null", O_RDONLY);
  int console = ::open("/dev/console", O_WRONLY | O_NOCTTY);
  if (null >= 0) ::dup2(null, 0);
  if (console >= 0) {
    ::dup2(console, 1);
    ::dup2(console, 2);
  }
  auto fail = [&](const std::string& what) {
    Say(s.name + ": " + what);
    _exit(127);
  };
  auto passwd = ReadFile("/etc/passwd");
  auto group = ReadFile("/etc/group");
  auto user = ResolveUser(s.user, passwd.ok() ? *passwd : "", group.ok() ? *group : "");
  if (!user.ok()) fail(user.error().message());
  std::map<std::string, std::string> env = {
      {"PATH", kBasePath}, {"HOME", user->home}, {"TERM", "linux"}};
  for (const auto& kv : s.env) {
    auto eq = kv.find('=');
    if (eq != std::string::npos) env[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  std::vector<std::string> env_strings;
  for (const auto& [k, v] : env) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::string cwd = s.cwd.empty() ? user->home : s.cwd;
  if (::chdir(cwd.c_str()) != 0 && ::chdir("/") != 0) fail("cannot chdir to " + cwd);
  if (::setgroups(0, nullptr) != 0 || ::setgid(user->gid) != 0 || ::setuid(user->uid) != 0) {
    fail(std::string("cannot switch user: ") + std::strerror(errno));
  }
  std::vector<char*> argv;
  for (const auto& a : s.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  // execvpe searches the PATH of the service's environment, not the agent's.
  environ = envp.data();
  ::execvp(argv[0], argv.data());
  Say(s.name + ": cannot run " + s.argv[0] + ": " + std::strerror(errno));
  _exit(127);
}

}  // namespace

void SetUpAsInit() {
  MountOne("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr);
  MountOne("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr);
  // The initramfs moved its devtmpfs here; mount one if it did not.
  MountOne("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755");
  MountOne("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "gid=5,mode=620,ptmxmode=666");
  MountOne("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
  MountOne("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755");
  MountOne("cgroup2", "/sys/fs/cgroup", "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr);
  // The bundled sshd's privilege separation directory, compiled in as Debian's.
  ::mkdir("/run/sshd", 0755);
  ::mkdir("/tmp", 01777);
  ::chmod("/tmp", 01777);
  BringUpLoopback();
  // The agent's own commands (ip, mkfs.ext4, resize2fs) fall back to the bundled tools.
  ::setenv("PATH", (std::string(kBasePath) + ":" + kBundleDir + "/bin").c_str(), 1);
}

Result<void> GrowRootFilesystem() {
  std::string device = RootDevice();
  UniqueFd dev(::open(device.c_str(), O_RDONLY | O_CLOEXEC));
  if (!dev.valid()) return ErrnoError("open " + device, errno);
  uint64_t bytes = 0;
  if (::ioctl(dev.get(), BLKGETSIZE64, &bytes) != 0) return ErrnoError("size of " + device, errno);
  struct statvfs fs {};
  if (::statvfs("/", &fs) != 0) return ErrnoError("statvfs /", errno);
  uint64_t blocks = bytes / fs.f_bsize;
  // statvfs leaves out the filesystem's own overhead, so "already full size" is approximate.
  if (blocks <= fs.f_blocks) return Ok();
  UniqueFd root(::open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (::ioctl(root.get(), kExt4IocResizeFs, &blocks) != 0 && errno != EINVAL) {
    return ErrnoError("grow the root filesystem", errno);
  }
  return Ok();
}

Supervisor::Supervisor(InitPlan plan) {
  for (auto& s : plan.services) services_.push_back({std::move(s)});
}

void Supervisor::Start() { Continue(); }

void Supervisor::StartAt(size_t index) {
  Running& r = services_[index];
  r.pending_restart = false;
  pid_t pid = ::fork();
  if (pid < 0) {
    Say("cannot start " + r.service.name + ": " + std::strerror(errno));
    r.pending_restart = r.service.restart;
    r.restart_at = Clock::now() + std::chrono::seconds(1);
    return;
  }
  if (pid == 0) ExecService(r.service);
  r.pid = pid;
  Say("started " + r.service.name + " (pid " + std::to_string(pid) + ")");
}

void Supervisor::Continue() {
  while (!waiting_ && next_ < services_.size()) {
    size_t index = next_++;
    StartAt(index);
    if (services_[index].service.wait && services_[index].pid != 0) waiting_ = true;
  }
}

bool Supervisor::OnExit(pid_t pid, int status) {
  for (auto& r : services_) {
    if (r.pid != pid) continue;
    r.pid = 0;
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    Say(r.service.name + " exited with status " + std::to_string(code));
    if (r.service.wait) {
      waiting_ = false;
      Continue();
    } else if (r.service.restart) {
      r.pending_restart = true;
      r.restart_at = Clock::now() + std::chrono::seconds(1);
    }
    return true;
  }
  return false;
}

int Supervisor::Tick() {
  auto now = Clock::now();
  int next = -1;
  for (size_t i = 0; i < services_.size(); ++i) {
    Running& r = services_[i];
    if (!r.pending_restart) continue;
    if (r.restart_at <= now) {
      StartAt(i);
    } else {
      auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(r.restart_at - now).count();
      next = next < 0 ? static_cast<int>(ms) : std::min(next, static_cast<int>(ms));
    }
  }
  return next;
}

nlohmann::json Supervisor::Status() const {
  bool finished = !waiting_ && next_ >= services_.size();
  std::string detail =
      std::to_string(next_) + " of " + std::to_string(services_.size()) + " services started";
  if (waiting_ && next_ > 0) detail += ", waiting for " + services_[next_ - 1].service.name;
  return {{"finished", finished},
          {"state", finished ? "running" : "starting"},
          {"init", "vmctl-agent"},
          {"detail", detail}};
}

void PowerOffAsInit(bool reboot) {
  ::sync();
  if (::fork() != 0) return;
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  // kill(-1) spares PID 1 (the agent, still reaping and answering) and this process.
  ::kill(-1, SIGTERM);
  auto deadline = Clock::now() + std::chrono::seconds(5);
  while (Clock::now() < deadline && ::kill(-1, 0) == 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ::kill(-1, SIGKILL);
  ::sync();
  if (::mount(nullptr, "/", nullptr, MS_REMOUNT | MS_RDONLY, nullptr) != 0) {
    Say(std::string("cannot remount / read-only: ") + std::strerror(errno));
  }
  ::reboot(reboot ? RB_AUTOBOOT : RB_POWER_OFF);
  _exit(1);
}

}  // namespace vmctl::agent::guest
