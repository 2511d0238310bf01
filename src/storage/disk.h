#ifndef VMCTL_STORAGE_DISK_H_
#define VMCTL_STORAGE_DISK_H_

#include <cstdint>
#include <filesystem>

#include "base/result.h"
#include "vmm/vmm.h"

namespace vmctl::storage {

// Provisions per-VM root disks from an image's base. Implementations: qcow2 overlay (default)
// and plain copy. Thread-safe.
class DiskProvisioner {
 public:
  virtual ~DiskProvisioner() = default;
  virtual std::string name() const = 0;
  // Creates `target` (must not exist) as a writable disk of `size_mib` whose content starts as
  // `base` (a raw image). The base is never modified. On failure nothing is left at target.
  // kInvalidArgument if size_mib is smaller than the base.
  virtual Result<vmm::DiskSpec> CreateRootDisk(const std::filesystem::path& base,
                                               const std::filesystem::path& target,
                                               int64_t size_mib) = 0;
};

}  // namespace vmctl::storage

#endif  // VMCTL_STORAGE_DISK_H_
