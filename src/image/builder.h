#ifndef VMCTL_IMAGE_BUILDER_H_
#define VMCTL_IMAGE_BUILDER_H_

#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "model/image.h"

namespace vmctl::image {

struct BuildOptions {
  // Shared, content-addressed cache; several daemons and test runs use one.
  std::filesystem::path cache_dir;
  // Static guest agent binary installed in the image.
  std::filesystem::path agent_binary;
  // One human-readable line per step; may be empty.
  std::function<void(const std::string&)> progress;
};

// Builds an image from `source` into cache_dir/<id> (kernel, initramfs, ext4 root filesystem with
// the guest agent, its units and kernel modules, manifest.json), or returns the cached build when
// every input (recipe, source content, kernel package version, guest files, agent binary) is
// unchanged. The record's name is left empty for the caller.
//  - kDebian: mmdebstrap of the suite with the base packages plus source.packages.
//  - kOci: the layers of an OCI layout or archive (image/oci.h), plus the image config.
//  - kDockerfile: built with buildah or docker when one works, exported, then as kOci;
//    kFailedPrecondition naming what is missing otherwise.
// Images with systemd boot it as init; all others boot with the agent as init and get the
// bundled tools (image/agent_init.h); the recorded config says which ("init": "systemd"|"agent").
// Concurrent builders in other processes wait on a lock file in cache_dir. A failed or
// interrupted build registers nothing and leaves no directory that could be taken for a finished
// image (the result is renamed into place last). Errors name the failing step and carry the
// tool's stderr tail.
Result<ImageRecord> BuildImage(const ImageSource& source, const BuildOptions& options);

// Pure helpers, exposed for tests.

// The uncompressed ELF kernel inside a bzImage: tries each XZ stream in it until one decompresses
// to an ELF file (kNotFound if none does).
Result<std::string> ExtractVmlinux(std::string_view bzimage);

// Module files to load, in order, from `modprobe --show-depends` output ("insmod PATH" lines;
// "builtin" lines skipped; duplicates dropped, first occurrence kept).
std::vector<std::string> ParseShowDepends(std::string_view output);

// Hex SHA-256.
std::string Sha256Hex(std::string_view data);

}  // namespace vmctl::image

#endif  // VMCTL_IMAGE_BUILDER_H_
