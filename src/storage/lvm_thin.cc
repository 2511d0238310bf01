#include <fmt/format.h>

#include <cmath>
#include <sstream>

#include "base/process.h"
#include "storage/backends.h"
#include "storage/ids.h"

namespace vmctl::storage {
namespace {

namespace fs = std::filesystem;
using vmm::DiskSpec;

constexpr int64_t kMib = int64_t{1} << 20;

Result<RunOutput> Lvm(const std::vector<std::string>& argv) {
  return RunCommandChecked(argv, RunOptions{.timeout = std::chrono::minutes(10)});
}

std::string Trimmed(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  size_t start = s.find_first_not_of(" \t\n");
  return start == std::string::npos ? "" : s.substr(start);
}

// LVs: "vmctl-base-<build id>" (read-only origin of root disks) and "vmctl-<vm id>-<role>".
class LvmThinBackend : public VolumeBackend {
 public:
  explicit LvmThinBackend(LvmThinOptions o) : o_(std::move(o)) {}

  std::string name() const override { return "lvm-thin"; }
  std::string Describe() const override {
    return fmt::format("storage: lvm-thin in thin pool {}/{}", o_.volume_group, o_.thin_pool);
  }
  DiskSpec::Format format() const override { return DiskSpec::Format::kRaw; }
  bool CanGrowOnline() const override { return true; }

  Result<void> PrepareBase(const BaseImage& base) override {
    VMCTL_TRY(CheckBaseId(base.id));
    std::string lv = BaseLv(base.id);
    VMCTL_ASSIGN_OR_RETURN(bool exists, Exists(lv));
    if (exists) return Ok();
    std::error_code ec;
    auto bytes = fs::file_size(base.rootfs, ec);
    if (ec) return NotFound("no base image at " + base.rootfs.string());
    int64_t mib = static_cast<int64_t>((bytes + kMib - 1) / kMib);
    // Written under a temporary name and renamed when complete, so a crash never leaves a
    // half-written base that later clones would copy.
    std::string partial = lv + "-partial";
    VMCTL_ASSIGN_OR_RETURN(bool stale, Exists(partial));
    if (stale) VMCTL_TRY(Lvm({"lvremove", "-q", "-y", Path(partial)}));
    VMCTL_TRY(Lvm({"lvcreate", "-q", "-T", Pool(), "-V", fmt::format("{}m", mib), "-n", partial}));
    // conv=sparse skips zero blocks, so the thin volume only allocates what the image uses.
    auto written = Lvm({"dd", "if=" + base.rootfs.string(), "of=" + Path(partial), "bs=4M",
                        "conv=sparse,fsync", "status=none"});
    if (!written.ok()) {
      (void)Lvm({"lvremove", "-q", "-y", Path(partial)});
      return written.error().WithContext("writing the image into " + partial);
    }
    VMCTL_TRY(Lvm({"lvrename", "-q", o_.volume_group, partial, lv}));
    VMCTL_TRY(Lvm({"lvchange", "-q", "-p", "r", Path(lv)}));
    return Ok();
  }

  Result<void> RemoveBase(const BaseImage& base) override {
    VMCTL_TRY(CheckBaseId(base.id));
    return RemoveLv(BaseLv(base.id));
  }

  Result<DiskSpec> CreateRootDisk(const BaseImage& base, std::string_view vm_id,
                                  int64_t size_mib) override {
    VMCTL_TRY(CheckVmId(vm_id));
    VMCTL_TRY(CheckBaseId(base.id));
    std::string lv = VmLv(vm_id, "root");
    VMCTL_ASSIGN_OR_RETURN(int64_t base_bytes, SizeOf(BaseLv(base.id)));
    if (size_mib * kMib < base_bytes) {
      return InvalidArgument(fmt::format("a {} MiB disk is smaller than its base image ({} MiB)",
                                         size_mib, base_bytes / kMib));
    }
    VMCTL_ASSIGN_OR_RETURN(bool exists, Exists(lv));
    if (exists) return AlreadyExists("the disk already exists: " + Path(lv));
    // -kn: an activation-skip flag on the snapshot would keep it from appearing in /dev.
    VMCTL_TRY(Lvm({"lvcreate", "-q", "-s", "-kn", "-ay", "-p", "rw", "-n", lv,
                   o_.volume_group + "/" + BaseLv(base.id)}));
    if (size_mib * kMib > base_bytes) {
      if (auto grown = Lvm({"lvextend", "-q", "-L", fmt::format("{}m", size_mib), Path(lv)});
          !grown.ok()) {
        (void)RemoveLv(lv);
        return grown.error();
      }
    }
    return DiskSpec{Path(lv), DiskSpec::Format::kRaw, false};
  }

  Result<DiskSpec> CreateDataDisk(std::string_view vm_id, int64_t size_mib) override {
    VMCTL_TRY(CheckVmId(vm_id));
    std::string lv = VmLv(vm_id, "data");
    VMCTL_ASSIGN_OR_RETURN(bool exists, Exists(lv));
    if (exists) return AlreadyExists("the disk already exists: " + Path(lv));
    // Thin pools zero newly provisioned blocks, so the disk reads as zeros.
    VMCTL_TRY(Lvm({"lvcreate", "-q", "-T", Pool(), "-V", fmt::format("{}m", size_mib), "-n", lv}));
    return DiskSpec{Path(lv), DiskSpec::Format::kRaw, false};
  }

  Result<void> Grow(const DiskSpec& disk, int64_t size_mib) override {
    std::string lv = disk.path.filename().string();
    VMCTL_ASSIGN_OR_RETURN(int64_t bytes, SizeOf(lv));
    if (size_mib * kMib < bytes) {
      return InvalidArgument(fmt::format("disks only grow: {} has {} MiB, not shrunk to {} MiB", lv,
                                         bytes / kMib, size_mib));
    }
    if (size_mib * kMib == bytes) return Ok();
    VMCTL_TRY(Lvm({"lvextend", "-q", "-L", fmt::format("{}m", size_mib), Path(lv)}));
    return Ok();
  }

  Result<void> Remove(const DiskSpec& disk) override {
    return RemoveLv(disk.path.filename().string());
  }

  Result<VolumeUsage> Usage(const DiskSpec& disk) override {
    VMCTL_ASSIGN_OR_RETURN(RunOutput out,
                           Lvm({"lvs", "--noheadings", "--units", "b", "--nosuffix", "-o",
                                "lv_size,data_percent", Path(disk.path.filename().string())}));
    std::istringstream fields(out.out);
    double size = 0, percent = 0;
    fields >> size >> percent;
    return VolumeUsage{static_cast<int64_t>(size),
                       static_cast<int64_t>(std::llround(size * percent / 100))};
  }

  Result<std::set<std::string>> ListOwners() override {
    VMCTL_ASSIGN_OR_RETURN(std::vector<std::string> lvs, ListLvs());
    std::set<std::string> owners;
    for (const auto& lv : lvs) {
      if (!lv.starts_with("vmctl-") || lv.starts_with("vmctl-base-")) continue;
      std::string id = lv.substr(6, 12);
      if (CheckVmId(id).ok()) owners.insert(id);
    }
    return owners;
  }

  Result<void> RemoveAll(std::string_view vm_id) override {
    VMCTL_TRY(CheckVmId(vm_id));
    VMCTL_ASSIGN_OR_RETURN(std::vector<std::string> lvs, ListLvs());
    std::string prefix = fmt::format("vmctl-{}-", vm_id);
    for (const auto& lv : lvs) {
      if (lv.starts_with(prefix)) VMCTL_TRY(RemoveLv(lv));
    }
    return Ok();
  }

 private:
  static std::string BaseLv(std::string_view id) { return fmt::format("vmctl-base-{}", id); }
  static std::string VmLv(std::string_view vm_id, std::string_view role) {
    return fmt::format("vmctl-{}-{}", vm_id, role);
  }
  std::string Pool() const { return o_.volume_group + "/" + o_.thin_pool; }
  std::string Path(const std::string& lv) const { return "/dev/" + o_.volume_group + "/" + lv; }

  Result<std::vector<std::string>> ListLvs() {
    VMCTL_ASSIGN_OR_RETURN(RunOutput out,
                           Lvm({"lvs", "--noheadings", "-o", "lv_name", o_.volume_group}));
    std::vector<std::string> names;
    std::istringstream lines(out.out);
    std::string line;
    while (std::getline(lines, line)) {
      line = Trimmed(line);
      if (!line.empty()) names.push_back(line);
    }
    return names;
  }
  Result<bool> Exists(const std::string& lv) {
    VMCTL_ASSIGN_OR_RETURN(std::vector<std::string> lvs, ListLvs());
    for (const auto& name : lvs) {
      if (name == lv) return true;
    }
    return false;
  }
  Result<int64_t> SizeOf(const std::string& lv) {
    auto out = Lvm({"lvs", "--noheadings", "--units", "b", "--nosuffix", "-o", "lv_size",
                    o_.volume_group + "/" + lv});
    if (!out.ok()) return NotFound(fmt::format("no volume {}/{}", o_.volume_group, lv));
    return static_cast<int64_t>(std::stod(Trimmed(out->out)));
  }
  Result<void> RemoveLv(const std::string& lv) {
    VMCTL_ASSIGN_OR_RETURN(bool exists, Exists(lv));
    if (!exists) return Ok();
    VMCTL_TRY(Lvm({"lvremove", "-q", "-y", o_.volume_group + "/" + lv}));
    return Ok();
  }

  LvmThinOptions o_;
};

}  // namespace

Result<std::unique_ptr<VolumeBackend>> NewLvmThinBackend(const LvmThinOptions& o) {
  if (o.volume_group.empty() || o.thin_pool.empty()) {
    return InvalidArgument("lvm-thin storage needs --lvm-vg and --lvm-pool");
  }
  if (!FindProgram("lvcreate")) {
    return FailedPrecondition("lvm-thin storage needs the LVM tools (apt-get install lvm2)");
  }
  std::error_code ec;
  if (!fs::exists("/dev/mapper/control", ec)) {
    return FailedPrecondition(
        "lvm-thin storage needs device-mapper, and this host has none (/dev/mapper/control is "
        "missing; containers and some sandboxes lack it)");
  }
  auto vg = RunCommand({"vgs", "--noheadings", "-o", "vg_name", o.volume_group});
  if (!vg.ok() || vg->exit_code != 0) {
    return FailedPrecondition(fmt::format("no LVM volume group '{}'", o.volume_group));
  }
  auto attr =
      RunCommand({"lvs", "--noheadings", "-o", "lv_attr", o.volume_group + "/" + o.thin_pool});
  if (!attr.ok() || attr->exit_code != 0) {
    return FailedPrecondition(
        fmt::format("no logical volume '{}' in volume group '{}'", o.thin_pool, o.volume_group));
  }
  if (Trimmed(attr->out).substr(0, 1) != "t") {
    return FailedPrecondition(
        fmt::format("{}/{} is not a thin pool (create one with lvcreate --type thin-pool)",
                    o.volume_group, o.thin_pool));
  }
  return std::unique_ptr<VolumeBackend>(std::make_unique<LvmThinBackend>(o));
}

}  // namespace vmctl::storage
