#ifndef VMCTL_TESTS_E2E_DAEMON_H_
#define VMCTL_TESTS_E2E_DAEMON_H_

#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "base/process.h"

namespace vmctl::e2e {

// A named network namespace the test owns (`ip netns add`), deleted on destruction. The daemon
// under test runs in one, so the bridge, TAPs and nftables tables it makes never touch the host;
// further ones play the outside world.
class NetNs {
 public:
  explicit NetNs(const std::string& prefix);
  ~NetNs();
  NetNs(const NetNs&) = delete;
  NetNs& operator=(const NetNs&) = delete;

  const std::string& name() const { return name_; }
  // Runs argv inside the namespace.
  RunOutput Run(const std::vector<std::string>& argv,
                std::chrono::seconds timeout = std::chrono::seconds(60)) const;
  // Runs `sh -c script` inside the namespace and fails the test if it exits non-zero.
  void Sh(const std::string& script) const;
  // Starts argv in the background inside the namespace; killed (by PID) on destruction.
  ProcessRef Spawn(const std::vector<std::string>& argv, const std::filesystem::path& log);
  // The argv prefix that enters the namespace.
  std::vector<std::string> Prefix() const { return {"ip", "netns", "exec", name_}; }

 private:
  std::string name_;
  std::vector<ProcessRef> spawned_;
};

// A real `vmctl serve` with its own state directory, socket and network namespace, for
// end-to-end tests. Uses the
// built binaries ($VMCTL_BUILD_DIR/bin) and the shared image cache ($VMCTL_IMAGE_CACHE).
// Destruction removes every VM, stops the daemon and deletes the directory, then checks nothing
// of it is left running.
class TestDaemon {
 public:
  explicit TestDaemon(std::vector<std::string> extra_args = {});
  ~TestDaemon();

  // More `vmctl serve` flags, before Start: for servers the test starts in netns() first, whose
  // ports are known only then.
  void AddArgs(const std::vector<std::string>& args) {
    extra_args_.insert(extra_args_.end(), args.begin(), args.end());
  }
  // Starts the daemon and waits until its API answers. Fails the test on error.
  void Start();
  // Runs `vmctl serve` in the foreground expecting it to fail; returns its output.
  RunOutput StartExpectingFailure();
  // The `serve` flags of the next Start() (after the test's own defaults), e.g. for a restart
  // with another configuration over the same state.
  void set_extra_args(std::vector<std::string> args) { extra_args_ = std::move(args); }
  // Stops the daemon with SIGTERM (VMs keep running).
  void Stop();
  // SIGKILL, as a crash would.
  void Kill9();

  // Runs `vmctl <args>` against this daemon.
  RunOutput Vmctl(const std::vector<std::string>& args, const std::string& stdin_data = "",
                  std::chrono::seconds timeout = std::chrono::seconds(300)) const;
  // `vmctl show NAME --json`, or nullopt if it fails.
  std::optional<nlohmann::json> Show(const std::string& name) const;
  // Polls until the VM reaches `state` or the timeout passes; returns the last state seen.
  std::string WaitForState(const std::string& name, const std::string& state,
                           std::chrono::seconds timeout) const;

  // An SSH user's Ed25519 key pair in dir() ("id_NAME" and ".pub", comment "NAME@test"), made
  // on first use.
  std::filesystem::path UserKey(const std::string& name) const;

  const std::filesystem::path& dir() const { return dir_; }
  std::filesystem::path state_dir() const { return dir_ / "state"; }
  std::filesystem::path socket() const { return dir_ / "api.sock"; }
  std::filesystem::path log() const { return dir_ / "daemon.log"; }
  const ProcessRef& process() const { return process_; }
  // The network namespace the daemon (and so its VMs' host side) lives in.
  const NetNs& netns() const { return netns_; }
  // For helpers the daemon needs in its namespace (e.g. a mail server), killed with it.
  NetNs& netns() { return netns_; }

  // Live processes whose command line mentions this daemon's state directory (its VMMs).
  std::vector<pid_t> ProcessesUsingStateDir() const;

  static std::filesystem::path Binary();

 private:
  std::vector<std::string> ServeArgv() const;

  std::filesystem::path dir_;
  std::vector<std::string> extra_args_;
  NetNs netns_{"vmctl-e2e"};
  ProcessRef process_;
};

// How many file descriptors process `pid` has open.
size_t OpenFdCount(pid_t pid);

// `s` without trailing newlines, carriage returns and spaces.
std::string Trim(std::string s);

// Runs `sqlite3 DB SQL` and returns its trimmed output.
std::string Sql(const std::filesystem::path& db, const std::string& sql);

}  // namespace vmctl::e2e

#endif  // VMCTL_TESTS_E2E_DAEMON_H_
