#ifndef VMCTL_IMAGE_IN_ROOT_H_
#define VMCTL_IMAGE_IN_ROOT_H_

#include <filesystem>
#include <string_view>

#include "base/result.h"

namespace vmctl::image {

// The host path of `path` inside the unpacked root filesystem `root`, resolved as the guest will
// see it: symbolic links are followed with `root` as "/", and ".." stops at `root`. Every file
// the builder writes into an image goes through this, so a link planted by an image (`etc ->
// /etc`, `lib/modules -> ../../..`) is followed inside the image, never out to the host.
// Components that do not exist yet are appended as they are. The result has no symbolic link
// among its existing components, as long as nothing else changes the tree meanwhile (the builder
// owns its work directory). Errors: kInvalidArgument after 40 links (a loop).
Result<std::filesystem::path> InRoot(const std::filesystem::path& root,
                                     const std::filesystem::path& path);

// InRoot(root, dir), created if missing. kInternal if it cannot be.
Result<std::filesystem::path> DirInRoot(const std::filesystem::path& root,
                                        const std::filesystem::path& dir);

// Writes `content` to InRoot(root, file) (atomically, parents created).
Result<void> WriteInRoot(const std::filesystem::path& root, const std::filesystem::path& file,
                         std::string_view content, unsigned mode = 0644);

// Makes the link `link` (resolved through InRoot but for its own name) point at `target`,
// replacing what is there.
Result<void> SymlinkInRoot(const std::filesystem::path& root, const std::filesystem::path& target,
                           const std::filesystem::path& link);

}  // namespace vmctl::image

#endif  // VMCTL_IMAGE_IN_ROOT_H_
