#include "testing/sshd/local_sshd.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <thread>

#include "base/io.h"
#include "base/unique_fd.h"

namespace vmctl::testing {
namespace fs = std::filesystem;

namespace {

sockaddr_in Loopback(int port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return addr;
}

bool Accepts(int port) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr = Loopback(port);
  return fd.get() >= 0 &&
         ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
}

}  // namespace

Result<std::unique_ptr<LocalSshd>> LocalSshd::Start(const fs::path& dir, int port,
                                                    const std::string& authorized_keys) {
  fs::path host_key = dir / "sshd_host_ed25519_key";
  std::error_code ec;
  fs::remove(host_key, ec);
  fs::remove(host_key.string() + ".pub", ec);
  VMCTL_TRY(
      RunCommandChecked({"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", host_key.string()}));
  VMCTL_ASSIGN_OR_RETURN(std::string host_key_line, ReadFile(host_key.string() + ".pub"));
  while (!host_key_line.empty() && host_key_line.back() == '\n') host_key_line.pop_back();
  VMCTL_TRY(WriteFileAtomic(dir / "sshd_authorized_keys", authorized_keys, 0600));
  // StrictModes no: the files may lie below a world-writable /tmp.
  std::string config = fmt::format(
      "Port {}\nListenAddress 127.0.0.1\nHostKey {}\nPidFile none\nAuthorizedKeysFile {}\n"
      "PermitRootLogin prohibit-password\nPasswordAuthentication no\n"
      "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nMaxStartups 100\n"
      "LogLevel VERBOSE\n",
      port, host_key.string(), (dir / "sshd_authorized_keys").string());
  VMCTL_TRY(WriteFileAtomic(dir / "sshd_config", config));
  std::string sshd = fmt::format("/usr/sbin/sshd -D -f {} -E {}", (dir / "sshd_config").string(),
                                 (dir / "sshd.log").string());
  std::vector<std::string> argv;
  if (fs::exists("/run/sshd")) {
    argv = {"sh", "-c", "exec " + sshd};
  } else {
    std::string script = "mount -t tmpfs -o mode=755 tmpfs /run && mkdir -m 755 /run/sshd && exec ";
    argv = {"unshare", "-m", "--propagation", "private", "sh", "-c", script + sshd};
  }
  VMCTL_ASSIGN_OR_RETURN(ProcessRef process, SpawnDetached(argv, {.log_file = dir / "sshd.out"}));
  std::unique_ptr<LocalSshd> started(new LocalSshd(dir, process, host_key_line));
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!Accepts(port)) {
    if (!process.Alive() || std::chrono::steady_clock::now() > deadline) {
      return Unavailable(fmt::format("sshd on 127.0.0.1:{} did not start: {}{}", port,
                                     TailFile(dir / "sshd.out", 2000),
                                     TailFile(dir / "sshd.log", 2000)));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return started;
}

LocalSshd::~LocalSshd() {
  (void)process_.Signal(SIGTERM);
  if (!process_.WaitExit(std::chrono::seconds(5)).ok()) (void)process_.Kill();
}

Result<int> UnusedLoopbackPort() {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr = Loopback(0);
  socklen_t len = sizeof(addr);
  if (fd.get() < 0 || ::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return Internal(fmt::format("cannot find a free loopback port: {}", strerror(errno)));
  }
  return ntohs(addr.sin_port);
}

}  // namespace vmctl::testing
