#include "vmm/common/vmm_process.h"

#include <signal.h>

#include <thread>

#include "base/io.h"

namespace vmctl::vmm {

using std::chrono::milliseconds;

void DiscardVmmProcess(const ProcessRef& process,
                       const std::vector<std::filesystem::path>& owned_files) {
  (void)process.Kill();
  std::error_code ec;
  for (const auto& f : owned_files) std::filesystem::remove(f, ec);
}

Result<ProcessRef> StartVmmProcess(const std::vector<std::string>& argv,
                                   const std::filesystem::path& log,
                                   const std::function<Result<void>()>& ready,
                                   const std::vector<std::filesystem::path>& owned_files,
                                   milliseconds timeout) {
  std::error_code ec;
  for (const auto& f : owned_files) std::filesystem::remove(f, ec);
  VMCTL_ASSIGN_OR_RETURN(ProcessRef process, SpawnDetached(argv, {.log_file = log}));
  auto tail = [&] {
    std::string t = TailFile(log, 1500);
    while (!t.empty() && (t.back() == '\n' || t.back() == ' ')) t.pop_back();
    return t.empty() ? std::string("(no output)") : t;
  };
  auto deadline = std::chrono::steady_clock::now() + timeout;
  Error last = Unavailable("not ready");
  while (std::chrono::steady_clock::now() < deadline) {
    if (!process.Alive()) {
      DiscardVmmProcess(process, owned_files);
      return Unavailable(argv[0] + " exited during start: " + tail());
    }
    auto r = ready();
    if (r.ok()) return process;
    last = r.error();
    std::this_thread::sleep_for(milliseconds(20));
  }
  DiscardVmmProcess(process, owned_files);
  return DeadlineExceeded(argv[0] + " did not answer on its API socket in time (" + last.message() +
                          "): " + tail());
}

Result<void> StopVmmProcess(const ProcessRef& process, const std::function<void()>& quit) {
  if (!process.Alive()) return Ok();
  quit();
  if (process.WaitExit(milliseconds(3000)).ok()) return Ok();
  return process.Kill();
}

}  // namespace vmctl::vmm
