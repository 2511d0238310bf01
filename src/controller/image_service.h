#ifndef VMCTL_CONTROLLER_IMAGE_SERVICE_H_
#define VMCTL_CONTROLLER_IMAGE_SERVICE_H_

#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "base/result.h"
#include "controller/vm_service.h"
#include "model/image.h"
#include "store/store.h"

namespace vmctl::controller {

// Builds an image by name (the daemon injects the concrete builder). Blocking; may be called from
// several threads.
using ImageBuildFn =
    std::function<Result<ImageRecord>(const std::string& name, const Progress& progress)>;

// Lists, builds and registers guest images. Thread-safe; builds are serialized.
class ImageService {
 public:
  ImageService(Store& store, ImageBuildFn build) : store_(store), build_(std::move(build)) {}

  Result<std::vector<ImageRecord>> List() { return store_.ListImages(); }
  // Builds (or reuses the cached build of) image `name` and registers it. kNotFound for a name
  // that has no recipe.
  Result<ImageRecord> Build(const std::string& name, const Progress& progress);

 private:
  Store& store_;
  ImageBuildFn build_;
  std::mutex build_mu_;
};

}  // namespace vmctl::controller

#endif  // VMCTL_CONTROLLER_IMAGE_SERVICE_H_
