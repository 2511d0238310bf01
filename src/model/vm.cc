#include "model/vm.h"

#include <fmt/format.h>

#include <array>
#include <cctype>
#include <random>
#include <utility>

#include "base/ascii.h"

namespace vmctl {
namespace {

constexpr std::array<std::pair<VmState, std::string_view>, 7> kStateNames = {{
    {VmState::kCreating, "creating"},
    {VmState::kStarting, "starting"},
    {VmState::kRunning, "running"},
    {VmState::kStopping, "stopping"},
    {VmState::kStopped, "stopped"},
    {VmState::kFailed, "failed"},
    {VmState::kDeleting, "deleting"},
}};

}  // namespace

std::string_view VmStateName(VmState state) {
  for (const auto& [s, name] : kStateNames) {
    if (s == state) return name;
  }
  return "unknown";
}

Result<VmState> VmStateFromName(std::string_view name) {
  for (const auto& [s, n] : kStateNames) {
    if (n == name) return s;
  }
  return InvalidArgument(fmt::format("unknown VM state '{}'", name));
}

Result<void> CheckTransition(VmState from, VmState to) {
  using S = VmState;
  bool ok = false;
  switch (from) {
    case S::kCreating:
      ok = to == S::kStarting || to == S::kFailed || to == S::kDeleting;
      break;
    case S::kStarting:
      ok = to == S::kRunning || to == S::kFailed || to == S::kStopping || to == S::kStopped ||
           to == S::kDeleting;
      break;
    case S::kRunning:
      ok = to == S::kStopping || to == S::kStopped || to == S::kFailed || to == S::kDeleting ||
           to == S::kStarting;  // restart
      break;
    case S::kStopping:
      ok = to == S::kStopped || to == S::kFailed || to == S::kDeleting;
      break;
    case S::kStopped:
      ok = to == S::kStarting || to == S::kDeleting;
      break;
    case S::kFailed:
      ok = to == S::kStarting || to == S::kStopped || to == S::kDeleting;
      break;
    case S::kDeleting:
      ok = false;
      break;
  }
  if (ok) return Ok();
  return FailedPrecondition(
      fmt::format("cannot go from {} to {}", VmStateName(from), VmStateName(to)));
}

Result<void> ValidateVmName(std::string_view name) {
  if (name.empty()) return InvalidArgument("VM name must not be empty");
  if (name.size() > VmLimits::kMaxNameLength) {
    return InvalidArgument(fmt::format("VM name is too long ({} characters, at most {})",
                                       name.size(), VmLimits::kMaxNameLength));
  }
  if (!(name[0] >= 'a' && name[0] <= 'z')) {
    return InvalidArgument(
        fmt::format("invalid VM name '{}': must start with a lowercase letter (a-z)", name));
  }
  for (char c : name) {
    bool good = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
    if (!good) {
      return InvalidArgument(fmt::format(
          "invalid VM name '{}': only lowercase letters, digits and '-' are allowed", name));
    }
  }
  if (name.back() == '-') {
    return InvalidArgument(fmt::format("invalid VM name '{}': must not end with '-'", name));
  }
  // VM--PORT.DOMAIN names a VM's other ports, so no VM name may look like one.
  if (name.find("--") != std::string_view::npos) {
    return InvalidArgument(fmt::format("invalid VM name '{}': must not contain '--'", name));
  }
  return Ok();
}

namespace {

Result<void> CheckRootDisk(int64_t mib) {
  if (mib < VmLimits::kMinDiskMib || mib > VmLimits::kMaxDiskMib) {
    return InvalidArgument(fmt::format("root disk must be between {} and {} MiB (got {})",
                                       VmLimits::kMinDiskMib, VmLimits::kMaxDiskMib, mib));
  }
  return Ok();
}

Result<void> CheckDataDisk(int64_t mib) {
  if (mib != 0 && (mib < VmLimits::kMinDataDiskMib || mib > VmLimits::kMaxDataDiskMib)) {
    return InvalidArgument(fmt::format("disk must be 0 (none) or between {} and {} MiB (got {})",
                                       VmLimits::kMinDataDiskMib, VmLimits::kMaxDataDiskMib, mib));
  }
  return Ok();
}

}  // namespace

Result<void> ValidateDiskGrowth(int64_t root_mib, int64_t data_mib, int64_t new_root_mib,
                                int64_t new_data_mib) {
  if (new_root_mib == 0 && new_data_mib == 0) {
    return InvalidArgument("nothing to resize: give a new size for the disk or the root disk");
  }
  if (new_root_mib != 0) {
    VMCTL_TRY(CheckRootDisk(new_root_mib));
    if (new_root_mib < root_mib) {
      return InvalidArgument(
          fmt::format("disks only grow: the root disk has {} MiB, cannot shrink it to {} MiB",
                      root_mib, new_root_mib));
    }
  }
  if (new_data_mib != 0) {
    if (data_mib == 0) {
      return FailedPrecondition("this VM has no data disk (create it with --disk SIZE)");
    }
    VMCTL_TRY(CheckDataDisk(new_data_mib));
    if (new_data_mib < data_mib) {
      return InvalidArgument(
          fmt::format("disks only grow: the data disk has {} MiB, cannot shrink it to {} MiB",
                      data_mib, new_data_mib));
    }
  }
  return Ok();
}

Result<void> ValidateVmRequest(const VmRequest& r) {
  VMCTL_TRY(ValidateVmName(r.name));
  if (r.image.empty()) return InvalidArgument("image name must not be empty");
  if (r.cpus < VmLimits::kMinCpus || r.cpus > VmLimits::kMaxCpus) {
    return InvalidArgument(fmt::format("cpus must be between {} and {} (got {})",
                                       VmLimits::kMinCpus, VmLimits::kMaxCpus, r.cpus));
  }
  if (r.memory_mib < VmLimits::kMinMemoryMib || r.memory_mib > VmLimits::kMaxMemoryMib) {
    return InvalidArgument(fmt::format("memory must be between {} and {} MiB (got {})",
                                       VmLimits::kMinMemoryMib, VmLimits::kMaxMemoryMib,
                                       r.memory_mib));
  }
  VMCTL_TRY(CheckRootDisk(r.root_disk_mib));
  VMCTL_TRY(CheckDataDisk(r.data_disk_mib));
  if (r.bandwidth_kbit != 0 && (r.bandwidth_kbit < VmLimits::kMinBandwidthKbit ||
                                r.bandwidth_kbit > VmLimits::kMaxBandwidthKbit)) {
    return InvalidArgument(fmt::format(
        "bandwidth must be between {} kbit and {} gbit (got {} kbit)", VmLimits::kMinBandwidthKbit,
        VmLimits::kMaxBandwidthKbit / 1000000, r.bandwidth_kbit));
  }
  return Ok();
}

Result<int64_t> ParseBandwidthKbit(std::string_view text) {
  auto bad = [&] {
    return InvalidArgument(fmt::format(
        "bandwidth '{}' is not a rate like 500kbit, 100mbit or 1gbit (0 for unlimited)", text));
  };
  size_t digits = 0;
  while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits]))) ++digits;
  if (digits == 0 || digits > 9) return bad();
  int64_t number = std::stoll(std::string(text.substr(0, digits)));
  std::string unit = LowercaseAscii(text.substr(digits));
  if (unit.empty() && number == 0) return int64_t{0};
  if (unit == "kbit") return number;
  if (unit == "mbit") return number * 1000;
  if (unit == "gbit") return number * 1000000;
  return bad();
}

nlohmann::json ToJson(const VmRecord& vm) {
  return {
      {"id", vm.id},
      {"owner", vm.owner},
      {"name", vm.name},
      {"image", vm.image},
      {"state", VmStateName(vm.state)},
      {"cpus", vm.cpus},
      {"memory_mib", vm.memory_mib},
      {"root_disk_mib", vm.root_disk_mib},
      {"disk_mib", vm.data_disk_mib},
      {"storage", vm.storage},
      {"image_dir", vm.image_dir},
      {"backend", vm.backend},
      {"pid", vm.pid},
      {"runtime_dir", vm.runtime_dir},
      {"address", vm.address},
      {"mac", vm.mac},
      {"tap", vm.tap},
      {"bandwidth_kbit", vm.bandwidth_kbit},
      {"ssh_address", vm.ssh_address},
      {"ssh_host_keys", vm.ssh_host_keys},
      {"error", vm.error},
      {"created_at", vm.created_at},
      {"updated_at", vm.updated_at},
  };
}

std::string NewVmId() {
  std::random_device rd;
  std::uniform_int_distribution<int> hex(0, 15);
  std::string id;
  for (int i = 0; i < 12; ++i) id.push_back("0123456789abcdef"[hex(rd)]);
  return id;
}

}  // namespace vmctl
