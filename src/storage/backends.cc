#include "storage/backends.h"

#include <fmt/format.h>

namespace vmctl::storage {

Result<std::unique_ptr<VolumeBackend>> ChooseBackend(const BackendChoice& choice,
                                                     std::string* why) {
  const std::string& r = choice.requested;
  auto chosen = [&](std::unique_ptr<VolumeBackend> backend,
                    const std::string& reason) -> Result<std::unique_ptr<VolumeBackend>> {
    *why = backend->Describe() + (reason.empty() ? "" : " (" + reason + ")");
    return backend;
  };
  if (r == "lvm-thin") {
    VMCTL_ASSIGN_OR_RETURN(auto backend, NewLvmThinBackend(choice.lvm));
    return chosen(std::move(backend), "");
  }
  if (r == "reflink") {
    VMCTL_ASSIGN_OR_RETURN(auto backend, NewReflinkBackend(choice.dir));
    return chosen(std::move(backend), "");
  }
  if (r == "qcow2") {
    if (!choice.vmm_takes_qcow2) {
      return FailedPrecondition(
          "the VMM reads raw disks only; use --storage reflink, lvm-thin or copy");
    }
    return chosen(NewQcow2Backend(choice.dir), "");
  }
  if (r == "copy") return chosen(NewCopyBackend(choice.dir), "");
  if (r != "auto") {
    return InvalidArgument(
        fmt::format("unknown storage '{}': use auto, lvm-thin, reflink, qcow2 or copy", r));
  }
  std::string skipped;
  if (!choice.lvm.thin_pool.empty()) {
    auto lvm = NewLvmThinBackend(choice.lvm);
    if (lvm.ok()) return chosen(std::move(lvm).value(), "auto");
    skipped += "lvm-thin unavailable: " + lvm.error().message() + "; ";
  }
  auto reflink = NewReflinkBackend(choice.dir);
  if (reflink.ok()) return chosen(std::move(reflink).value(), "auto");
  skipped += "no reflink on this filesystem";
  if (choice.vmm_takes_qcow2) return chosen(NewQcow2Backend(choice.dir), "auto: " + skipped);
  return chosen(NewCopyBackend(choice.dir),
                "auto: " + skipped + "; qcow2 unavailable: the VMM reads raw disks only");
}

}  // namespace vmctl::storage
