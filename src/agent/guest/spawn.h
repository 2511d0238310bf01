#ifndef VMCTL_AGENT_GUEST_SPAWN_H_
#define VMCTL_AGENT_GUEST_SPAWN_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"

namespace vmctl::agent::guest {

struct SpawnRequest {
  std::vector<std::string> argv;  // argv[0] is searched in the PATH of env
  std::vector<std::string> env;   // "NAME=value"
  std::string cwd = "/";
  bool tty = false;
  int rows = 24, cols = 80;
};

// A started child. It leads its own session and process group (pgid == pid), so signalling -pid
// reaches everything it started that did not move away. All fds are non-blocking and CLOEXEC.
struct SpawnedChild {
  pid_t pid = -1;
  // Pipes, or with tty two descriptors of the same pty master (stdin is the writable one, so it
  // can be closed independently); err is invalid with tty.
  UniqueFd in, out, err;
};

// Forks and execs. Returns only once the exec succeeded: a missing program or cwd is kNotFound,
// other exec failures carry their errno's code. The caller reaps the child.
Result<SpawnedChild> Spawn(const SpawnRequest& request);

// Value of NAME in a "NAME=value" list, or fallback.
std::string EnvValue(const std::vector<std::string>& env, std::string_view name,
                     std::string_view fallback);

// Candidate paths for argv0: itself if it contains '/', else each PATH entry joined with it
// (an empty entry means the current directory, as in execvp).
std::vector<std::string> ExecCandidates(std::string_view argv0, std::string_view path);

// Runs a helper program to completion (used for `ip`, which is fast), with stdin from /dev/null.
// kInternal with its stderr when it exits non-zero.
Result<void> RunHelper(const std::vector<std::string>& argv);

// Starts a program sharing the agent's stdio (so its messages reach the journal) without waiting
// for it; an exec failure shows as exit status 127. The caller reaps it.
Result<pid_t> StartBackground(const std::vector<std::string>& argv);

// Sets the window size of a pty master.
Result<void> SetWindowSize(int pty_fd, int rows, int cols);

}  // namespace vmctl::agent::guest

#endif  // VMCTL_AGENT_GUEST_SPAWN_H_
