#include "storage/provisioners.h"

#include <fmt/format.h>

#include "base/process.h"

namespace vmctl::storage {
namespace {

namespace fs = std::filesystem;

Result<void> CheckArgs(const fs::path& base, const fs::path& target, int64_t size_mib) {
  if (!base.is_absolute())
    return InvalidArgument("base image path must be absolute: " + base.string());
  std::error_code ec;
  auto base_size = fs::file_size(base, ec);
  if (ec) return NotFound(fmt::format("base image {}: {}", base.string(), ec.message()));
  if (fs::exists(target, ec)) return AlreadyExists("disk already exists: " + target.string());
  if (static_cast<uint64_t>(size_mib) * 1024 * 1024 < base_size) {
    return InvalidArgument(fmt::format("a {} MiB disk is smaller than its {} MiB image", size_mib,
                                       (base_size + (1 << 20) - 1) >> 20));
  }
  return Ok();
}

// Runs a step that creates target; on failure removes whatever it left.
Result<void> CreateOrClean(const fs::path& target, const std::vector<std::string>& argv) {
  auto out = RunCommandChecked(argv);
  if (!out.ok()) {
    std::error_code ec;
    fs::remove(target, ec);
    return out.error();
  }
  return Ok();
}

class Qcow2Provisioner : public DiskProvisioner {
 public:
  std::string name() const override { return "qcow2"; }
  Result<vmm::DiskSpec> CreateRootDisk(const fs::path& base, const fs::path& target,
                                       int64_t size_mib) override {
    VMCTL_TRY(CheckArgs(base, target, size_mib));
    VMCTL_TRY(
        CreateOrClean(target, {"qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b",
                               base.string(), target.string(), fmt::format("{}M", size_mib)}));
    return vmm::DiskSpec{target, vmm::DiskSpec::Format::kQcow2, false};
  }
};

class CopyProvisioner : public DiskProvisioner {
 public:
  std::string name() const override { return "copy"; }
  Result<vmm::DiskSpec> CreateRootDisk(const fs::path& base, const fs::path& target,
                                       int64_t size_mib) override {
    VMCTL_TRY(CheckArgs(base, target, size_mib));
    VMCTL_TRY(CreateOrClean(
        target, {"cp", "--reflink=auto", "--sparse=always", base.string(), target.string()}));
    VMCTL_TRY(
        CreateOrClean(target, {"truncate", "-s", fmt::format("{}M", size_mib), target.string()}));
    return vmm::DiskSpec{target, vmm::DiskSpec::Format::kRaw, false};
  }
};

}  // namespace

std::unique_ptr<DiskProvisioner> NewQcow2Provisioner() {
  return std::make_unique<Qcow2Provisioner>();
}
std::unique_ptr<DiskProvisioner> NewCopyProvisioner() {
  return std::make_unique<CopyProvisioner>();
}

}  // namespace vmctl::storage
