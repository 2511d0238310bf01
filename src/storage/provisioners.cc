#include "storage/provisioners.h"

#include <fcntl.h>
#include <fmt/format.h>

#include <cerrno>
#include <cstdint>
#include <limits>
#include <system_error>
#include <utility>

#include "base/process.h"
#include "base/unique_fd.h"

namespace vmctl::storage {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kMib = int64_t{1} << 20;

int64_t CeilMib(uint64_t bytes) { return static_cast<int64_t>((bytes + kMib - 1) / kMib); }

// Validates the base and the requested size; returns the base size in bytes.
Result<uint64_t> CheckBaseAndSize(const fs::path& base, int64_t size_mib) {
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
  if (size_mib <= 0 || size_mib > std::numeric_limits<int64_t>::max() / kMib) {
    return InvalidArgument(fmt::format("invalid disk size: {} MiB", size_mib));
  }
  if (static_cast<uint64_t>(size_mib * kMib) < base_size) {
    return InvalidArgument(fmt::format("a {} MiB disk is smaller than its base image ({} MiB, {})",
                                       size_mib, CeilMib(base_size), base.string()));
  }
  return base_size;
}

// Owns a freshly created, empty target file and deletes it unless Keep() is called, so every
// failure path leaves nothing behind.
class Reservation {
 public:
  // Creating with O_EXCL claims the name atomically: a target that appears between a check and
  // the create can never be overwritten, and cleanup only ever removes our own file.
  static Result<Reservation> Claim(const fs::path& target) {
    // 0600: the disk holds the guest's data; only the VMM, running as vmctl's user, reads it.
    UniqueFd fd(::open(target.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (!fd.valid()) {
      int err = errno;
      if (err == EEXIST) return AlreadyExists("the disk already exists: " + target.string());
      return ErrnoError("creating " + target.string(), err);
    }
    return Reservation(target);
  }
  Reservation(Reservation&& other) noexcept
      : path_(std::move(other.path_)), keep_(std::exchange(other.keep_, true)) {}
  Reservation(const Reservation&) = delete;
  Reservation& operator=(const Reservation&) = delete;
  Reservation& operator=(Reservation&&) = delete;
  ~Reservation() {
    if (keep_) return;
    std::error_code ec;
    fs::remove(path_, ec);
  }

  void Keep() { keep_ = true; }

 private:
  explicit Reservation(fs::path path) : path_(std::move(path)) {}

  fs::path path_;
  bool keep_ = false;
};

class Qcow2Provisioner : public DiskProvisioner {
 public:
  std::string name() const override { return "qcow2"; }

  Result<vmm::DiskSpec> CreateRootDisk(const fs::path& base, const fs::path& target,
                                       int64_t size_mib) override {
    VMCTL_TRY(CheckBaseAndSize(base, size_mib));
    // Absolute, so qemu never reads a "proto:" prefix of a relative name as a protocol.
    fs::path disk = fs::absolute(target);
    VMCTL_ASSIGN_OR_RETURN(Reservation reservation, Reservation::Claim(disk));
    // The backing path is recorded in the overlay as given; base is absolute and chosen by
    // vmctl, so the overlay stays valid whatever the VMM's working directory.
    VMCTL_TRY(RunCommandChecked({"qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b",
                                 base.string(), disk.string(), fmt::format("{}M", size_mib)}));
    reservation.Keep();
    return vmm::DiskSpec{disk, vmm::DiskSpec::Format::kQcow2, false};
  }
};

class CopyProvisioner : public DiskProvisioner {
 public:
  std::string name() const override { return "copy"; }

  Result<vmm::DiskSpec> CreateRootDisk(const fs::path& base, const fs::path& target,
                                       int64_t size_mib) override {
    VMCTL_TRY(CheckBaseAndSize(base, size_mib));
    fs::path disk = fs::absolute(target);
    VMCTL_ASSIGN_OR_RETURN(Reservation reservation, Reservation::Claim(disk));
    // cp shares extents where the filesystem can (btrfs, xfs) and otherwise writes zero runs as
    // holes, so a mostly empty base costs only its used blocks.
    VMCTL_TRY(RunCommandChecked(
        {"cp", "--reflink=auto", "--sparse=always", base.string(), disk.string()}));
    // Growing by truncation adds a hole; the guest grows its ext4 into it online at boot.
    std::error_code ec;
    fs::resize_file(disk, static_cast<uintmax_t>(size_mib * kMib), ec);
    if (ec) {
      return Internal(
          fmt::format("cannot extend {} to {} MiB: {}", disk.string(), size_mib, ec.message()));
    }
    reservation.Keep();
    return vmm::DiskSpec{disk, vmm::DiskSpec::Format::kRaw, false};
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
