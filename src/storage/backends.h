#ifndef VMCTL_STORAGE_BACKENDS_H_
#define VMCTL_STORAGE_BACKENDS_H_

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "base/result.h"
#include "storage/volume.h"

namespace vmctl::storage {

// File-based backends keep each VM's volumes in dir/<vm_id>/ (root.qcow2 or root.img, data.img,
// mode 0600) and prepared bases in dir/bases/. dir is created (0700) if missing.

// qcow2 overlays whose backing file is the base in the image cache (absolute path, set by vmctl):
// constant time and space whatever the image size. No online grow: a VMM holds a write lock on
// an open qcow2, so a running VM's disk grows when it is next stopped.
std::unique_ptr<VolumeBackend> NewQcow2Backend(std::filesystem::path dir);

// Raw file clones (FICLONE) on XFS or btrfs: constant time, and space only for the blocks a VM
// writes. kFailedPrecondition when dir's filesystem cannot clone (probed at construction).
Result<std::unique_ptr<VolumeBackend>> NewReflinkBackend(std::filesystem::path dir);

// Plain sparse copies of the base: time and space grow with the image. Fallback only.
std::unique_ptr<VolumeBackend> NewCopyBackend(std::filesystem::path dir);

// LVM thin provisioning: each base is imported once into a thin volume
// "vmctl-base-<id>" of the pool, every root disk is a thin snapshot of it, data disks are thin
// volumes "vmctl-<vm_id>-<role>". kFailedPrecondition when LVM tools, device-mapper, the volume
// group or the thin pool are missing (the message says which).
struct LvmThinOptions {
  std::string volume_group;
  std::string thin_pool;  // an existing thin pool LV in volume_group
};
Result<std::unique_ptr<VolumeBackend>> NewLvmThinBackend(const LvmThinOptions& options);

// How the daemon picks its backend.
struct BackendChoice {
  // "auto", "lvm-thin", "reflink", "qcow2" or "copy".
  std::string requested = "auto";
  std::filesystem::path dir;    // for the file-based backends
  LvmThinOptions lvm;           // for lvm-thin; auto tries it only when thin_pool is set
  bool vmm_takes_qcow2 = true;  // Capabilities::qcow2_disks of the VMM backend
};
// auto: lvm-thin if a pool is configured, else reflink if dir can clone, else qcow2 if the VMM
// reads it, else copy. An explicit choice that cannot work is an error that says why
// (kFailedPrecondition), never a silent fallback. `why` receives one line explaining the choice
// (with a warning for copy).
Result<std::unique_ptr<VolumeBackend>> ChooseBackend(const BackendChoice& choice, std::string* why);

}  // namespace vmctl::storage

#endif  // VMCTL_STORAGE_BACKENDS_H_
