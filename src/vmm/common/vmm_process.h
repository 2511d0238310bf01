#ifndef VMCTL_VMM_COMMON_VMM_PROCESS_H_
#define VMCTL_VMM_COMMON_VMM_PROCESS_H_

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "base/process.h"
#include "base/result.h"

namespace vmctl::vmm {

// kInvalidArgument naming the first path that does not fit in sockaddr_un (107 bytes): the
// runtime directory is too long.
Result<void> CheckSocketPaths(const std::vector<std::filesystem::path>& sockets);

// What `log` gained after byte `start`, at most the last 2000 bytes, or "(no output)". Logs are
// appended to across restarts of a VM, and an older run's complaints would mislead.
std::string OutputSince(const std::filesystem::path& log, uint64_t start);

struct VmmStart {
  std::vector<std::string> argv;
  std::filesystem::path log;  // the VMM's stdout and stderr are appended here
  // Sockets (and lock files) the VMM creates; stale ones are removed before the start and all of
  // them whenever the VMM is discarded.
  std::vector<std::filesystem::path> owned_files;
  // Polled until it succeeds: the VMM answers on its API socket.
  std::function<Result<void>()> ready;
  std::chrono::milliseconds timeout = std::chrono::seconds(30);
};

// Starts a VMM detached (it outlives the daemon) and waits until `ready` succeeds. If the process
// exits first, the error (kUnavailable) carries what it printed; if it never gets ready,
// kDeadlineExceeded. On any failure the process is killed and its files removed: nothing is left.
Result<ProcessRef> StartVmmProcess(const VmmStart& start);

// SIGKILLs the process, waits for it and removes its files. For failure paths.
void DiscardVmmProcess(const ProcessRef& process,
                       const std::vector<std::filesystem::path>& owned_files);

// Stops a VMM: `quit` (when given) asks it to exit, and SIGKILL follows if it is still there after
// a grace period; without `quit`, or when the request fails, SIGKILL at once. Removes its files
// once it is gone. Ok if it already exited.
Result<void> StopVmmProcess(const ProcessRef& process, const std::function<Result<void>()>& quit,
                            const std::vector<std::filesystem::path>& owned_files);

}  // namespace vmctl::vmm

#endif  // VMCTL_VMM_COMMON_VMM_PROCESS_H_
