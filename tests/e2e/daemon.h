#ifndef VMCTL_TESTS_E2E_DAEMON_H_
#define VMCTL_TESTS_E2E_DAEMON_H_

#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "base/process.h"

namespace vmctl::e2e {

// A real `vmctl serve` with its own state directory and socket, for end-to-end tests. Uses the
// built binaries ($VMCTL_BUILD_DIR/bin) and the shared image cache ($VMCTL_IMAGE_CACHE).
// Destruction removes every VM, stops the daemon and deletes the directory, then checks nothing
// of it is left running.
class TestDaemon {
 public:
  explicit TestDaemon(std::vector<std::string> extra_args = {});
  ~TestDaemon();

  // Starts the daemon and waits until its API answers. Fails the test on error.
  void Start();
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

  const std::filesystem::path& dir() const { return dir_; }
  std::filesystem::path state_dir() const { return dir_ / "state"; }
  std::filesystem::path socket() const { return dir_ / "api.sock"; }
  std::filesystem::path log() const { return dir_ / "daemon.log"; }
  const ProcessRef& process() const { return process_; }

  // Live processes whose command line mentions this daemon's state directory (its VMMs).
  std::vector<pid_t> ProcessesUsingStateDir() const;

  static std::filesystem::path Binary();

 private:
  std::filesystem::path dir_;
  std::vector<std::string> extra_args_;
  ProcessRef process_;
};

// Runs `sqlite3 DB SQL` and returns its trimmed output.
std::string Sql(const std::filesystem::path& db, const std::string& sql);

}  // namespace vmctl::e2e

#endif  // VMCTL_TESTS_E2E_DAEMON_H_
