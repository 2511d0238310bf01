#ifndef VMCTL_STORAGE_PROVISIONERS_H_
#define VMCTL_STORAGE_PROVISIONERS_H_

#include <memory>

#include "storage/disk.h"

namespace vmctl::storage {

// qcow2 overlay on the raw base (`qemu-img create -b`): constant time and space whatever the
// image size. The backing path is always the absolute path vmctl passes, never user input.
std::unique_ptr<DiskProvisioner> NewQcow2Provisioner();

// Full copy of the base (reflinked where the filesystem can), extended to the requested size.
// For backends that take raw disks only.
std::unique_ptr<DiskProvisioner> NewCopyProvisioner();

}  // namespace vmctl::storage

#endif  // VMCTL_STORAGE_PROVISIONERS_H_
