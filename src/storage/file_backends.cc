#include <fcntl.h>
#include <fmt/format.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <limits>
#include <nlohmann/json.hpp>
#include <system_error>
#include <utility>

#include "base/process.h"
#include "base/unique_fd.h"
#include "storage/backends.h"
#include "storage/ids.h"

namespace vmctl::storage {
namespace {

namespace fs = std::filesystem;
using vmm::DiskSpec;

constexpr int64_t kMib = int64_t{1} << 20;

int64_t CeilMib(uint64_t bytes) { return static_cast<int64_t>((bytes + kMib - 1) / kMib); }

Result<void> CheckSize(int64_t size_mib) {
  if (size_mib <= 0 || size_mib > std::numeric_limits<int64_t>::max() / kMib) {
    return InvalidArgument(fmt::format("invalid disk size: {} MiB", size_mib));
  }
  return Ok();
}

// Validates the base and the requested size; returns the base size in bytes.
Result<uint64_t> CheckBase(const fs::path& base, int64_t size_mib) {
  if (!base.is_absolute()) {
    return InvalidArgument("the base image path must be absolute: " + base.string());
  }
  std::error_code ec;
  auto status = fs::status(base, ec);
  if (!fs::exists(status)) return NotFound("no base image at " + base.string());
  if (!fs::is_regular_file(status)) {
    return InvalidArgument("the base image is not a regular file: " + base.string());
  }
  uint64_t base_size = fs::file_size(base, ec);
  if (ec) return Internal(fmt::format("cannot stat {}: {}", base.string(), ec.message()));
  VMCTL_TRY(CheckSize(size_mib));
  if (static_cast<uint64_t>(size_mib * kMib) < base_size) {
    return InvalidArgument(fmt::format("a {} MiB disk is smaller than its base image ({} MiB, {})",
                                       size_mib, CeilMib(base_size), base.string()));
  }
  return base_size;
}

std::string FilesystemName(const fs::path& dir) {
  struct statfs st {};
  if (::statfs(dir.c_str(), &st) != 0) return "unknown";
  switch (static_cast<unsigned long>(st.f_type)) {
    case 0xEF53:
      return "ext4";
    case 0x58465342:
      return "xfs";
    case 0x9123683E:
      return "btrfs";
    case 0x01021994:
      return "tmpfs";
    case 0x794C7630:
      return "overlayfs";
    default:
      return fmt::format("type 0x{:x}", static_cast<unsigned long>(st.f_type));
  }
}

// A freshly created, empty target file, deleted unless Keep() is called, so every failure path
// leaves nothing behind. O_EXCL claims the name atomically: an existing disk is never replaced.
class Reservation {
 public:
  static Result<Reservation> Claim(const fs::path& target) {
    // 0600: the disk holds the guest's data; only the VMM, running as vmctl's user, reads it.
    UniqueFd fd(::open(target.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (!fd.valid()) {
      int err = errno;
      if (err == EEXIST) return AlreadyExists("the disk already exists: " + target.string());
      return ErrnoError("creating " + target.string(), err);
    }
    return Reservation(target, std::move(fd));
  }
  Reservation(Reservation&& other) noexcept
      : path_(std::move(other.path_)),
        fd_(std::move(other.fd_)),
        keep_(std::exchange(other.keep_, true)) {}
  Reservation(const Reservation&) = delete;
  Reservation& operator=(const Reservation&) = delete;
  Reservation& operator=(Reservation&&) = delete;
  ~Reservation() {
    if (keep_) return;
    std::error_code ec;
    fs::remove(path_, ec);
  }
  int fd() const { return fd_.get(); }
  void Keep() { keep_ = true; }

 private:
  Reservation(fs::path path, UniqueFd fd) : path_(std::move(path)), fd_(std::move(fd)) {}

  fs::path path_;
  UniqueFd fd_;
  bool keep_ = false;
};

Result<void> Truncate(int fd, const fs::path& path, int64_t size_mib) {
  if (::ftruncate(fd, static_cast<off_t>(size_mib * kMib)) != 0) {
    int err = errno;
    if (err == ENOSPC || err == EFBIG) {
      return ResourceExhausted(fmt::format("no room for {} MiB at {}", size_mib, path.string()));
    }
    return ErrnoError("sizing " + path.string(), err);
  }
  return Ok();
}

Result<void> Clone(int from, int to, const fs::path& source, const fs::path& target) {
  if (::ioctl(to, FICLONE, from) != 0) {
    int err = errno;
    return FailedPrecondition(fmt::format("cannot reflink {} to {}: {}", source.string(),
                                          target.string(), std::strerror(err)));
  }
  return Ok();
}

// The per-VM layout shared by the file backends; subclasses decide how a root disk is made.
class FileBackend : public VolumeBackend {
 public:
  explicit FileBackend(fs::path dir) : dir_(std::move(dir)) {}

  std::string Describe() const override {
    return fmt::format("storage: {} in {} ({})", name(), dir_.string(), FilesystemName(dir_));
  }

  Result<void> PrepareBase(const BaseImage& base) override {
    VMCTL_TRY(CheckBase(base.rootfs, 1 << 20));
    return Ok();
  }
  Result<void> RemoveBase(const BaseImage&) override { return Ok(); }

  Result<DiskSpec> CreateRootDisk(const BaseImage& base, std::string_view vm_id,
                                  int64_t size_mib) override {
    VMCTL_TRY(CheckVmId(vm_id));
    VMCTL_TRY(CheckBase(base.rootfs, size_mib));
    VMCTL_ASSIGN_OR_RETURN(fs::path dir, VmDir(vm_id));
    fs::path disk = dir / (format() == DiskSpec::Format::kQcow2 ? "root.qcow2" : "root.img");
    VMCTL_ASSIGN_OR_RETURN(Reservation reservation, Reservation::Claim(disk));
    VMCTL_TRY(MakeRoot(base, reservation, disk, size_mib));
    reservation.Keep();
    return DiskSpec{disk, format(), false};
  }

  Result<DiskSpec> CreateDataDisk(std::string_view vm_id, int64_t size_mib) override {
    VMCTL_TRY(CheckVmId(vm_id));
    VMCTL_TRY(CheckSize(size_mib));
    VMCTL_ASSIGN_OR_RETURN(fs::path dir, VmDir(vm_id));
    fs::path disk = dir / (format() == DiskSpec::Format::kQcow2 ? "data.qcow2" : "data.img");
    VMCTL_ASSIGN_OR_RETURN(Reservation reservation, Reservation::Claim(disk));
    if (format() == DiskSpec::Format::kQcow2) {
      VMCTL_TRY(RunCommandChecked({"qemu-img", "create", "-q", "-f", "qcow2", disk.string(),
                                   fmt::format("{}M", size_mib)}));
    } else {
      VMCTL_TRY(Truncate(reservation.fd(), disk, size_mib));
    }
    reservation.Keep();
    return DiskSpec{disk, format(), false};
  }

  Result<void> Grow(const DiskSpec& disk, int64_t size_mib) override {
    VMCTL_TRY(CheckSize(size_mib));
    VMCTL_TRY(CheckOurs(disk.path));
    VMCTL_ASSIGN_OR_RETURN(VolumeUsage usage, Usage(disk));
    if (size_mib * kMib < usage.size_bytes) {
      return InvalidArgument(fmt::format("disks only grow: {} has {} MiB, not shrunk to {} MiB",
                                         disk.path.string(), usage.size_bytes / kMib, size_mib));
    }
    if (disk.format == DiskSpec::Format::kQcow2) {
      VMCTL_TRY(RunCommandChecked(
          {"qemu-img", "resize", "-q", disk.path.string(), fmt::format("{}M", size_mib)}));
      return Ok();
    }
    UniqueFd fd(::open(disk.path.c_str(), O_WRONLY | O_CLOEXEC));
    if (!fd.valid()) return ErrnoError("opening " + disk.path.string(), errno);
    return Truncate(fd.get(), disk.path, size_mib);
  }

  Result<void> Remove(const DiskSpec& disk) override {
    VMCTL_TRY(CheckOurs(disk.path));
    std::error_code ec;
    fs::remove(disk.path, ec);
    if (ec) return Internal(fmt::format("cannot remove {}: {}", disk.path.string(), ec.message()));
    fs::remove(disk.path.parent_path(), ec);  // only succeeds once the VM's last disk is gone
    return Ok();
  }

  Result<VolumeUsage> Usage(const DiskSpec& disk) override {
    struct stat st {};
    if (::stat(disk.path.c_str(), &st) != 0) return ErrnoError("stat " + disk.path.string(), errno);
    VolumeUsage usage{static_cast<int64_t>(st.st_size), static_cast<int64_t>(st.st_blocks) * 512};
    if (disk.format == DiskSpec::Format::kQcow2) {
      VMCTL_ASSIGN_OR_RETURN(
          RunOutput info,
          RunCommandChecked({"qemu-img", "info", "-U", "--output=json", disk.path.string()}));
      auto parsed = nlohmann::json::parse(info.out, nullptr, false);
      if (!parsed.is_object() || !parsed.contains("virtual-size")) {
        return Internal("qemu-img info gave no virtual size for " + disk.path.string());
      }
      usage.size_bytes = parsed["virtual-size"].get<int64_t>();
    }
    return usage;
  }

  Result<std::set<std::string>> ListOwners() override {
    std::set<std::string> owners;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir_, ec)) {
      std::string name = e.path().filename().string();
      if (e.is_directory() && CheckVmId(name).ok()) owners.insert(name);
    }
    return owners;
  }

  Result<void> RemoveAll(std::string_view vm_id) override {
    VMCTL_TRY(CheckVmId(vm_id));
    std::error_code ec;
    fs::remove_all(dir_ / vm_id, ec);
    if (ec) return Internal(fmt::format("cannot remove the disks of {}: {}", vm_id, ec.message()));
    return Ok();
  }

 protected:
  // Fills the reserved, empty `disk` with the base, `size_mib` big.
  virtual Result<void> MakeRoot(const BaseImage& base, const Reservation& reservation,
                                const fs::path& disk, int64_t size_mib) = 0;

  Result<fs::path> VmDir(std::string_view vm_id) {
    fs::path dir = dir_ / vm_id;
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec || ::chmod(dir.c_str(), 0700) != 0) {
      return Internal(fmt::format("cannot create {}: {}", dir.string(), ec.message()));
    }
    return dir;
  }

  const fs::path dir_;

 private:
  // A disk path outside this backend's directory was not made by it.
  Result<void> CheckOurs(const fs::path& path) const {
    if (path.parent_path().parent_path() != dir_) {
      return InvalidArgument(fmt::format("{} is not a volume of {} storage in {}", path.string(),
                                         name(), dir_.string()));
    }
    return Ok();
  }
};

class Qcow2Backend : public FileBackend {
 public:
  using FileBackend::FileBackend;
  std::string name() const override { return "qcow2"; }
  DiskSpec::Format format() const override { return DiskSpec::Format::kQcow2; }
  bool CanGrowOnline() const override { return false; }

 protected:
  Result<void> MakeRoot(const BaseImage& base, const Reservation&, const fs::path& disk,
                        int64_t size_mib) override {
    // The backing path is recorded in the overlay as given: absolute and chosen by vmctl, so the
    // overlay stays valid whatever the VMM's working directory.
    VMCTL_TRY(
        RunCommandChecked({"qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b",
                           base.rootfs.string(), disk.string(), fmt::format("{}M", size_mib)}));
    return Ok();
  }
};

class CopyBackend : public FileBackend {
 public:
  using FileBackend::FileBackend;
  std::string name() const override { return "copy"; }
  std::string Describe() const override {
    return FileBackend::Describe() +
           "; WARNING: every VM gets a full copy of its image, so creating VMs costs time and "
           "space in proportion to the image (use reflink, qcow2 or lvm-thin)";
  }
  DiskSpec::Format format() const override { return DiskSpec::Format::kRaw; }
  bool CanGrowOnline() const override { return true; }

 protected:
  Result<void> MakeRoot(const BaseImage& base, const Reservation& reservation, const fs::path& disk,
                        int64_t size_mib) override {
    // --reflink=never: this is the plain-copy fallback; zero runs still become holes.
    VMCTL_TRY(RunCommandChecked(
        {"cp", "--reflink=never", "--sparse=always", base.rootfs.string(), disk.string()}));
    return Truncate(reservation.fd(), disk, size_mib);
  }
};

class ReflinkBackend : public FileBackend {
 public:
  using FileBackend::FileBackend;
  std::string name() const override { return "reflink"; }
  DiskSpec::Format format() const override { return DiskSpec::Format::kRaw; }
  bool CanGrowOnline() const override { return true; }

  // Bases live on the backend's own filesystem: clones cannot cross filesystems, and the image
  // cache is usually elsewhere. A base already on this filesystem is itself cloned (free).
  Result<void> PrepareBase(const BaseImage& base) override {
    VMCTL_TRY(CheckBase(base.rootfs, 1 << 20));
    VMCTL_TRY(CheckBaseId(base.id));
    fs::path target = BasePath(base.id);
    std::error_code ec;
    if (fs::exists(target, ec)) return Ok();
    fs::create_directories(target.parent_path(), ec);
    fs::path partial = target.string() + fmt::format(".partial-{}", ::getpid());
    fs::remove(partial, ec);
    auto cloned = RunCommandChecked(
        {"cp", "--reflink=auto", "--sparse=always", base.rootfs.string(), partial.string()},
        RunOptions{.timeout = std::chrono::minutes(30)});
    if (!cloned.ok()) {
      fs::remove(partial, ec);
      return cloned.error().WithContext("copying the image onto the reflink filesystem");
    }
    fs::rename(partial, target, ec);
    if (ec) return Internal(fmt::format("cannot place {}: {}", target.string(), ec.message()));
    return Ok();
  }

  Result<void> RemoveBase(const BaseImage& base) override {
    VMCTL_TRY(CheckBaseId(base.id));
    std::error_code ec;
    fs::remove(BasePath(base.id), ec);
    if (ec) return Internal(fmt::format("cannot remove the base {}: {}", base.id, ec.message()));
    return Ok();
  }

 protected:
  Result<void> MakeRoot(const BaseImage& base, const Reservation& reservation, const fs::path& disk,
                        int64_t size_mib) override {
    VMCTL_TRY(CheckBaseId(base.id));
    fs::path source = BasePath(base.id);
    UniqueFd from(::open(source.c_str(), O_RDONLY | O_CLOEXEC));
    if (!from.valid()) {
      return NotFound(
          fmt::format("the image base {} is not prepared ({})", base.id, std::strerror(errno)));
    }
    VMCTL_TRY(Clone(from.get(), reservation.fd(), source, disk));
    return Truncate(reservation.fd(), disk, size_mib);
  }

 private:
  fs::path BasePath(std::string_view id) const {
    return dir_ / "bases" / (std::string(id) + ".img");
  }
};

Result<fs::path> MakeDir(fs::path dir) {
  if (!dir.is_absolute()) return InvalidArgument("the storage directory must be absolute");
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec || ::chmod(dir.c_str(), 0700) != 0) {
    return Internal(fmt::format("cannot create {}: {}", dir.string(), ec.message()));
  }
  return dir;
}

}  // namespace

std::unique_ptr<VolumeBackend> NewQcow2Backend(fs::path dir) {
  (void)MakeDir(dir);
  return std::make_unique<Qcow2Backend>(std::move(dir));
}

std::unique_ptr<VolumeBackend> NewCopyBackend(fs::path dir) {
  (void)MakeDir(dir);
  return std::make_unique<CopyBackend>(std::move(dir));
}

Result<std::unique_ptr<VolumeBackend>> NewReflinkBackend(fs::path dir) {
  VMCTL_TRY(MakeDir(dir));
  // Probe with two scratch files: the only reliable answer is the kernel's.
  fs::path a = dir / fmt::format(".reflink-probe-{}-a", ::getpid());
  fs::path b = dir / fmt::format(".reflink-probe-{}-b", ::getpid());
  Result<void> probed = Ok();
  {
    VMCTL_ASSIGN_OR_RETURN(Reservation first, Reservation::Claim(a));
    VMCTL_ASSIGN_OR_RETURN(Reservation second, Reservation::Claim(b));
    if (::pwrite(first.fd(), "probe", 5, 0) != 5) return ErrnoError("writing " + a.string(), errno);
    probed = Clone(first.fd(), second.fd(), a, b);
  }
  if (!probed.ok()) {
    return FailedPrecondition(fmt::format(
        "{} is on {}, which cannot clone files (reflink: {}); reflink storage needs XFS "
        "(mkfs.xfs makes it with reflink=1 by default) or btrfs: pass --storage-dir on such a "
        "filesystem, or another --storage",
        dir.string(), FilesystemName(dir), probed.error().message()));
  }
  return std::unique_ptr<VolumeBackend>(std::make_unique<ReflinkBackend>(std::move(dir)));
}

}  // namespace vmctl::storage
