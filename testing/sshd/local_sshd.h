#ifndef VMCTL_TESTING_SSHD_LOCAL_SSHD_H_
#define VMCTL_TESTING_SSHD_LOCAL_SSHD_H_

#include <filesystem>
#include <memory>
#include <string>

#include "base/process.h"
#include "base/result.h"

namespace vmctl::testing {

// The host's OpenSSH sshd on a loopback port, as a real peer for tests and benchmarks of SSH
// clients. Owns the process, which it stops by PID when destroyed; its files (config, host key,
// authorized_keys, log) stay in the directory given. Not thread-safe; needs root.
class LocalSshd {
 public:
  // Starts /usr/sbin/sshd on 127.0.0.1:`port` with a fresh Ed25519 host key in `dir`, letting in
  // root by public key for the lines of `authorized_keys` only, and returns once it accepts TCP
  // connections. Without /run/sshd (sshd's privilege-separation directory) it runs in a private
  // mount namespace that has one, leaving the host untouched. kUnavailable with the tail of its
  // log if it exits or does not listen within 20 s; kInternal if its files cannot be made.
  static Result<std::unique_ptr<LocalSshd>> Start(const std::filesystem::path& dir, int port,
                                                  const std::string& authorized_keys);
  ~LocalSshd();
  LocalSshd(const LocalSshd&) = delete;
  LocalSshd& operator=(const LocalSshd&) = delete;

  // "ssh-ed25519 BASE64 comment", as in a known_hosts line after the host pattern.
  const std::string& host_key() const { return host_key_; }
  const ProcessRef& process() const { return process_; }
  std::filesystem::path log() const { return dir_ / "sshd.log"; }

 private:
  LocalSshd(std::filesystem::path dir, ProcessRef process, std::string host_key)
      : dir_(std::move(dir)), process_(process), host_key_(std::move(host_key)) {}

  std::filesystem::path dir_;
  ProcessRef process_;
  std::string host_key_;
};

// A TCP port on 127.0.0.1 that nothing listens on at the time of the call.
Result<int> UnusedLoopbackPort();

}  // namespace vmctl::testing

#endif  // VMCTL_TESTING_SSHD_LOCAL_SSHD_H_
