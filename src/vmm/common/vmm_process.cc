#include "vmm/common/vmm_process.h"

#include <fmt/format.h>
#include <sys/un.h>

#include <string_view>
#include <thread>

#include "base/io.h"

namespace vmctl::vmm {

using std::chrono::milliseconds;

namespace {

constexpr size_t kOutputBytes = 2000;
constexpr milliseconds kPollInterval{20};
constexpr milliseconds kQuitGrace{3000};
constexpr milliseconds kKillWait{10000};

uint64_t FileSize(const std::filesystem::path& path) {
  std::error_code ec;
  auto size = std::filesystem::file_size(path, ec);
  return ec ? 0 : size;
}

void RemoveFiles(const std::vector<std::filesystem::path>& files) {
  std::error_code ec;
  for (const auto& f : files) std::filesystem::remove(f, ec);
}

}  // namespace

Result<void> CheckSocketPaths(const std::vector<std::filesystem::path>& sockets) {
  for (const auto& socket : sockets) {
    if (socket.native().size() >= sizeof(sockaddr_un::sun_path)) {
      return InvalidArgument(
          fmt::format("socket path {} is longer than {} bytes: use a shorter runtime directory",
                      socket.string(), sizeof(sockaddr_un::sun_path) - 1));
    }
  }
  return Ok();
}

std::string OutputSince(const std::filesystem::path& log, uint64_t start) {
  auto content = ReadFile(log);
  std::string_view out;
  if (content.ok() && content->size() > start) out = std::string_view(*content).substr(start);
  if (out.size() > kOutputBytes) out = out.substr(out.size() - kOutputBytes);
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.remove_suffix(1);
  return out.empty() ? "(no output)" : std::string(out);
}

void DiscardVmmProcess(const ProcessRef& process,
                       const std::vector<std::filesystem::path>& owned_files) {
  (void)process.Kill(kKillWait);
  RemoveFiles(owned_files);
}

Result<ProcessRef> StartVmmProcess(const VmmStart& start) {
  const std::string& binary = start.argv.at(0);
  const uint64_t log_start = FileSize(start.log);
  // Left over if an earlier VMM of this VM was SIGKILLed; both VMMs refuse to bind over them.
  RemoveFiles(start.owned_files);
  auto spawned = SpawnDetached(start.argv, {.log_file = start.log});
  if (!spawned.ok()) return spawned.error().WithContext("cannot start " + binary);
  const ProcessRef process = *spawned;

  const auto deadline = std::chrono::steady_clock::now() + start.timeout;
  std::string last_error = "not polled";
  while (std::chrono::steady_clock::now() < deadline) {
    if (!process.Alive()) {
      DiscardVmmProcess(process, start.owned_files);
      return Unavailable(
          fmt::format("{} exited during start: {}", binary, OutputSince(start.log, log_start)));
    }
    auto ready = start.ready();
    if (ready.ok()) return process;
    last_error = ready.error().message();
    std::this_thread::sleep_for(kPollInterval);
  }
  DiscardVmmProcess(process, start.owned_files);
  return DeadlineExceeded(fmt::format("{} did not answer on its API socket within {} s ({}): {}",
                                      binary, start.timeout.count() / 1000, last_error,
                                      OutputSince(start.log, log_start)));
}

Result<void> StopVmmProcess(const ProcessRef& process, const std::function<Result<void>()>& quit,
                            const std::vector<std::filesystem::path>& owned_files) {
  if (process.Alive()) {
    const bool asked = quit && quit().ok();
    if (!asked || !process.WaitExit(kQuitGrace).ok()) VMCTL_TRY(process.Kill(kKillWait));
  }
  RemoveFiles(owned_files);
  return Ok();
}

}  // namespace vmctl::vmm
