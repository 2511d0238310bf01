#ifndef VMCTL_STORAGE_VOLUME_H_
#define VMCTL_STORAGE_VOLUME_H_

#include <cstdint>
#include <filesystem>
#include <set>
#include <string>
#include <string_view>

#include "base/result.h"
#include "vmm/vmm.h"

namespace vmctl::storage {

// An image build's root filesystem as a clone source.
struct BaseImage {
  // The build's id (hex, from its input hash): names what a backend derives from the base, so two
  // builds of one image name never share a base.
  std::string id;
  // Absolute path of the raw ext4 image in the image cache. Chosen by vmctl, never by a user or
  // an image; immutable while any build refers to it.
  std::filesystem::path rootfs;
};

// Which disk of a VM a volume is.
enum class VolumeRole { kRoot, kData };

struct VolumeUsage {
  int64_t size_bytes = 0;  // what the guest sees
  // Blocks the volume takes on the host: a qcow2 overlay's or thin volume's own data, a raw
  // file's allocated blocks (for a reflink clone, including extents it still shares).
  int64_t allocated_bytes = 0;
};

// Creates, grows and removes the disks of VMs. One backend is chosen when the daemon starts.
// Implementations: lvm-thin, reflink, qcow2, copy (storage/backends.h).
//
// Ownership: a backend owns the volumes it creates until Remove; it never modifies a base.
// Threading: thread-safe; calls for different VMs may run in parallel, and the controller
// serializes calls for one VM.
// Errors: kInvalidArgument (bad size, path that is not absolute), kNotFound (missing base or
// volume), kAlreadyExists (the VM already has that volume), kFailedPrecondition (the host cannot
// do what this backend needs, e.g. no reflink on the filesystem: the message says what to
// change), kResourceExhausted (no space), kInternal (a tool failed; its stderr is in the message).
// Every failed create leaves nothing behind.
class VolumeBackend {
 public:
  virtual ~VolumeBackend() = default;

  virtual std::string name() const = 0;  // "lvm-thin", "reflink", "qcow2", "copy"
  // One line for the daemon's start-up banner: where volumes live and any warning.
  virtual std::string Describe() const = 0;
  // Format of the volumes it creates; a VMM without qcow2 support needs a raw backend.
  virtual vmm::DiskSpec::Format format() const = 0;

  // Makes `base` ready to be cloned (lvm-thin imports it into a thin volume; reflink clones it
  // onto its own filesystem when the cache is elsewhere). Idempotent and cheap once done, safe
  // to call before every CreateRootDisk.
  virtual Result<void> PrepareBase(const BaseImage& base) = 0;
  // Drops what PrepareBase made. Disks already cloned from the base stay valid, except with
  // qcow2 whose overlays read the base file itself (which this call never deletes).
  virtual Result<void> RemoveBase(const BaseImage& base) = 0;

  // A new root disk for VM `vm_id` (12 hex chars) of `size_mib`, starting as a copy of the base
  // and extended with zeros. Time and space do not grow with the base's size, except for the
  // copy backend. kInvalidArgument if size_mib is smaller than the base.
  virtual Result<vmm::DiskSpec> CreateRootDisk(const BaseImage& base, std::string_view vm_id,
                                               int64_t size_mib) = 0;
  // A new zero-filled data disk for VM `vm_id`; the guest formats it on first boot.
  virtual Result<vmm::DiskSpec> CreateDataDisk(std::string_view vm_id, int64_t size_mib) = 0;

  // Grows a volume to size_mib; the guest sees the new size at next boot, or at once if the VMM
  // is told (Instance::ResizeDisk). kInvalidArgument if smaller than the current size.
  virtual Result<void> Grow(const vmm::DiskSpec& disk, int64_t size_mib) = 0;
  // Whether a volume may be grown while a VMM has it open.
  virtual bool CanGrowOnline() const = 0;
  // Deletes a volume. Ok if it is already gone.
  virtual Result<void> Remove(const vmm::DiskSpec& disk) = 0;
  virtual Result<VolumeUsage> Usage(const vmm::DiskSpec& disk) = 0;

  // The VM ids that own at least one volume, so the controller can delete the volumes of VMs
  // that no longer exist (after a crash in the middle of rm or create).
  virtual Result<std::set<std::string>> ListOwners() = 0;
  // Deletes every volume of `vm_id`. Ok if it has none.
  virtual Result<void> RemoveAll(std::string_view vm_id) = 0;
};

}  // namespace vmctl::storage

#endif  // VMCTL_STORAGE_VOLUME_H_
