#include "controller/image_service.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <set>
#include <system_error>

namespace vmctl::controller {
namespace {

namespace fs = std::filesystem;

// Hard-links every file of `from` into the new directory `to` (copying where links cannot cross
// filesystems), building it under a temporary name so a crash never leaves half an image.
Result<void> LinkTree(const fs::path& from, const fs::path& to) {
  fs::path partial = to.string() + fmt::format(".partial-{}", ::getpid());
  std::error_code ec;
  fs::remove_all(partial, ec);
  fs::create_directories(partial, ec);
  if (ec) return Internal(fmt::format("cannot create {}: {}", partial.string(), ec.message()));
  for (const auto& entry : fs::directory_iterator(from, ec)) {
    if (!entry.is_regular_file()) continue;
    fs::path target = partial / entry.path().filename();
    fs::create_hard_link(entry.path(), target, ec);
    if (ec) {
      ec.clear();
      fs::copy_file(entry.path(), target, ec);
    }
    if (ec) {
      fs::remove_all(partial, ec);
      return Internal(fmt::format("cannot install {}: {}", entry.path().string(), ec.message()));
    }
  }
  if (ec) return Internal(fmt::format("cannot read {}: {}", from.string(), ec.message()));
  fs::rename(partial, to, ec);
  if (ec) {
    std::error_code ignored;
    fs::remove_all(partial, ignored);
    return Internal(fmt::format("cannot install image into {}: {}", to.string(), ec.message()));
  }
  return Ok();
}

}  // namespace

ImageService::ImageService(Store& store, storage::VolumeBackend& volumes, ImageBuildFn build,
                           fs::path images_dir)
    : store_(store),
      volumes_(volumes),
      build_(std::move(build)),
      images_dir_(std::move(images_dir)) {}

Result<ImageRecord> ImageService::Install(const ImageRecord& built) {
  const std::string id = fs::path(built.dir).filename().string();
  fs::path dir = images_dir_ / id;
  std::error_code ec;
  fs::create_directories(images_dir_, ec);
  if (!fs::exists(dir / kImageRootfsFile)) VMCTL_TRY(LinkTree(built.dir, dir));
  ImageRecord installed = built;
  installed.dir = dir.string();
  installed.kernel = (dir / kImageKernelFile).string();
  installed.initramfs = (dir / kImageInitramfsFile).string();
  installed.rootfs = (dir / kImageRootfsFile).string();
  return installed;
}

Result<ImageRecord> ImageService::Build(const ImageBuildRequest& request,
                                        const Progress& progress) {
  VMCTL_TRY(ValidateImageName(request.name));
  ImageBuildRequest resolved = request;
  if (!resolved.source) {
    if (request.name != kDefaultImageName) {
      return NotFound(fmt::format(
          "no recipe for image '{}': give --debian SUITE, --from-oci PATH or --dockerfile PATH",
          request.name));
    }
    resolved.source = ImageSource{};
  }
  VMCTL_TRY(ValidateImageSource(*resolved.source));
  std::lock_guard lock(mu_);
  VMCTL_ASSIGN_OR_RETURN(ImageRecord built, build_(resolved, progress));
  built.name = request.name;
  VMCTL_ASSIGN_OR_RETURN(ImageRecord image, Install(built));
  VMCTL_TRY(store_.PutImage(image));
  if (auto pruned = Prune(); !pruned.ok()) {
    spdlog::warn("image prune: {}", pruned.error().message());
  } else {
    for (const auto& line : *pruned) {
      if (progress) progress(line);
    }
  }
  return image;
}

Result<void> ImageService::Remove(const std::string& name, const Progress& progress) {
  std::lock_guard lock(mu_);
  VMCTL_TRY(store_.GetImage(name));
  VMCTL_ASSIGN_OR_RETURN(auto vms, store_.ListVms(std::nullopt));
  std::vector<std::string> users;
  for (const auto& vm : vms) {
    if (vm.image == name) users.push_back(vm.name);
  }
  if (!users.empty()) {
    return FailedPrecondition(fmt::format(
        "image '{}' is in use by {} VM{} ({}); remove {} first", name, users.size(),
        users.size() == 1 ? "" : "s", fmt::join(users, ", "), users.size() == 1 ? "it" : "them"));
  }
  VMCTL_TRY(store_.DeleteImage(name));
  VMCTL_ASSIGN_OR_RETURN(auto pruned, Prune());
  for (const auto& line : pruned) {
    if (progress) progress(line);
  }
  return Ok();
}

Result<std::vector<std::string>> ImageService::Prune() {
  std::set<fs::path> used;
  VMCTL_ASSIGN_OR_RETURN(auto images, store_.ListImages());
  for (const auto& image : images) used.insert(fs::path(image.dir));
  VMCTL_ASSIGN_OR_RETURN(auto vms, store_.ListVms(std::nullopt));
  for (const auto& vm : vms) {
    if (!vm.image_dir.empty()) used.insert(fs::path(vm.image_dir));
  }
  std::vector<std::string> removed;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(images_dir_, ec)) {
    if (!entry.is_directory() || used.count(entry.path())) continue;
    const std::string id = entry.path().filename().string();
    if (id.find(".partial-") == std::string::npos) {
      VMCTL_TRY(volumes_.RemoveBase({id, entry.path() / kImageRootfsFile}));
    }
    std::error_code rm;
    fs::remove_all(entry.path(), rm);
    if (rm)
      return Internal(fmt::format("cannot remove {}: {}", entry.path().string(), rm.message()));
    removed.push_back(fmt::format("Removed image build {} (no image or VM uses it)", id));
  }
  return removed;
}

}  // namespace vmctl::controller
