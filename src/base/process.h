#ifndef VMCTL_BASE_PROCESS_H_
#define VMCTL_BASE_PROCESS_H_

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"

namespace vmctl {

// Identifies one process across daemon restarts: a pid alone can be reused, (pid, start time in
// clock ticks since boot, from /proc/PID/stat) cannot. Thread-compatible value type.
struct ProcessRef {
  pid_t pid = 0;
  uint64_t start_time = 0;

  // Reads the start time of a live pid. kNotFound if there is no such process.
  static Result<ProcessRef> Of(pid_t pid);

  // True while this exact process exists and has not exited (a zombie counts as exited).
  bool Alive() const;
  // Sends a signal if the process is still this one; ok if it is already gone.
  Result<void> Signal(int sig) const;
  // Waits until the process has exited or the timeout passes (kDeadlineExceeded). Works for
  // processes that are not our children (uses pidfd_open + poll).
  Result<void> WaitExit(std::chrono::milliseconds timeout) const;
  // SIGKILL, then waits for the exit. Ok if the process is already gone.
  Result<void> Kill(std::chrono::milliseconds timeout = std::chrono::seconds(10)) const;
  // Command line arguments of the live process ("" elements if unreadable).
  std::vector<std::string> Cmdline() const;
};

struct DetachedOptions {
  // stdout and stderr are appended here; stdin is /dev/null.
  std::filesystem::path log_file;
  std::filesystem::path cwd = "/";
};

// Starts argv[0] (searched in PATH) as a daemon: double fork + setsid, so it is never our child
// and outlives us. Returns once the program has been exec'd; an exec failure (missing binary)
// comes back as kNotFound/kInternal with the reason. The returned ref identifies the process.
Result<ProcessRef> SpawnDetached(const std::vector<std::string>& argv,
                                 const DetachedOptions& options);

struct RunOptions {
  std::optional<std::string> stdin_data;
  std::chrono::milliseconds timeout = std::chrono::minutes(10);
  // Extra environment entries on top of ours.
  std::map<std::string, std::string> env;
  std::filesystem::path cwd;
  // When set, stderr is not captured but passed through to ours (for progress output).
  bool pass_stderr = false;
};

struct RunOutput {
  int exit_code = 0;  // 128+signal when killed by a signal
  std::string out;
  std::string err;
};

// Runs a program to completion, capturing output. Failing to start is an error; a non-zero exit
// is not (check exit_code). A timeout kills the process and returns kDeadlineExceeded.
Result<RunOutput> RunCommand(const std::vector<std::string>& argv, const RunOptions& options = {});

// Like RunCommand but a non-zero exit becomes kInternal "<argv0> failed (exit N): <stderr tail>".
Result<RunOutput> RunCommandChecked(const std::vector<std::string>& argv,
                                    const RunOptions& options = {});

// Finds a program in PATH; nullopt if absent.
std::optional<std::filesystem::path> FindProgram(const std::string& name);

}  // namespace vmctl

#endif  // VMCTL_BASE_PROCESS_H_
