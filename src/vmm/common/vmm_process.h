#ifndef VMCTL_VMM_COMMON_VMM_PROCESS_H_
#define VMCTL_VMM_COMMON_VMM_PROCESS_H_

#include <chrono>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "base/process.h"
#include "base/result.h"

namespace vmctl::vmm {

// Starts a VMM detached (it outlives the daemon) and polls `ready` until it succeeds. If the
// process dies first, the error carries the tail of `log`; on any failure the process is killed
// and `owned_files` (its sockets) are removed, so nothing is left behind.
Result<ProcessRef> StartVmmProcess(const std::vector<std::string>& argv,
                                   const std::filesystem::path& log,
                                   const std::function<Result<void>()>& ready,
                                   const std::vector<std::filesystem::path>& owned_files,
                                   std::chrono::milliseconds timeout = std::chrono::seconds(30));

// Kills the process (SIGKILL), waits for it, removes its files. Used on failure paths.
void DiscardVmmProcess(const ProcessRef& process,
                       const std::vector<std::filesystem::path>& owned_files);

// Asks politely via `quit` (may fail), then SIGKILL after a grace period; ok once it is gone.
Result<void> StopVmmProcess(const ProcessRef& process, const std::function<void()>& quit);

}  // namespace vmctl::vmm

#endif  // VMCTL_VMM_COMMON_VMM_PROCESS_H_
