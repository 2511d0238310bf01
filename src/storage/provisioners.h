#ifndef VMCTL_STORAGE_PROVISIONERS_H_
#define VMCTL_STORAGE_PROVISIONERS_H_

#include <memory>

#include "storage/disk.h"

namespace vmctl::storage {

// Both provisioners create the target exclusively (mode 0600) and return its absolute path. The
// base must be an absolute path to a regular file: vmctl passes an image's rootfs, never user
// input.

// qcow2 overlay backed by the raw base (`qemu-img create -b`): constant time and space whatever
// the image size; the base must stay in place for the disk's lifetime.
std::unique_ptr<DiskProvisioner> NewQcow2Provisioner();

// Self-contained raw copy of the base (reflinked where the filesystem can, sparse otherwise),
// extended to the requested size. For backends that take raw disks only.
std::unique_ptr<DiskProvisioner> NewCopyProvisioner();

}  // namespace vmctl::storage

#endif  // VMCTL_STORAGE_PROVISIONERS_H_
