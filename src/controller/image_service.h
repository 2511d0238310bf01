#ifndef VMCTL_CONTROLLER_IMAGE_SERVICE_H_
#define VMCTL_CONTROLLER_IMAGE_SERVICE_H_

#include <filesystem>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "controller/vm_service.h"
#include "model/image.h"
#include "storage/volume.h"
#include "store/store.h"

namespace vmctl::controller {

struct ImageBuildRequest {
  std::string name;
  // Unset: the default recipe, which only the default image has.
  std::optional<ImageSource> source;
};

// Builds an image into the shared build cache and returns its record (the daemon injects the
// concrete builder). Blocking; called with builds serialized.
using ImageBuildFn =
    std::function<Result<ImageRecord>(const ImageBuildRequest& request, const Progress& progress)>;

// Lists, builds, registers and removes guest images. Thread-safe; builds are serialized.
//
// A build lands in the shared cache; registering it links it into this daemon's own images_dir
// (hard links, so no copy), under the build's id. A name points at its newest build; VMs point at
// the build they were cloned from. A build directory goes away once neither does (Prune), so a
// rebuild never pulls a base from under a VM and a shared cache is never pruned by one daemon.
//
// Errors: kInvalidArgument (bad name or source), kNotFound (unknown image), kFailedPrecondition
// (image in use by VMs: the message names them), whatever the builder returns.
class ImageService {
 public:
  // Does not take ownership; store and volumes must outlive the service.
  ImageService(Store& store, storage::VolumeBackend& volumes, ImageBuildFn build,
               std::filesystem::path images_dir);

  Result<std::vector<ImageRecord>> List() { return store_.ListImages(); }
  // Builds (or reuses the cached build of) an image and registers it under request.name.
  Result<ImageRecord> Build(const ImageBuildRequest& request, const Progress& progress);
  // Unregisters an image. Refused while any VM was created from it.
  Result<void> Remove(const std::string& name, const Progress& progress);
  // Deletes build directories (and the storage backend's prepared bases) that no image name and
  // no VM refers to. Returns one line per removal.
  Result<std::vector<std::string>> Prune();

 private:
  Result<ImageRecord> Install(const ImageRecord& built);

  Store& store_;
  storage::VolumeBackend& volumes_;
  ImageBuildFn build_;
  std::filesystem::path images_dir_;
  std::mutex mu_;
};

}  // namespace vmctl::controller

#endif  // VMCTL_CONTROLLER_IMAGE_SERVICE_H_
