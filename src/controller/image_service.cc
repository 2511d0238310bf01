#include "controller/image_service.h"

namespace vmctl::controller {

Result<ImageRecord> ImageService::Build(const std::string& name, const Progress& progress) {
  std::lock_guard lock(build_mu_);
  VMCTL_ASSIGN_OR_RETURN(ImageRecord image, build_(name, progress));
  VMCTL_TRY(store_.PutImage(image));
  return image;
}

}  // namespace vmctl::controller
