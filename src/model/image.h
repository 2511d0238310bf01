#ifndef VMCTL_MODEL_IMAGE_H_
#define VMCTL_MODEL_IMAGE_H_

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace vmctl {

// Every image build directory holds these files (and manifest.json, the ImageRecord).
inline constexpr char kImageKernelFile[] = "vmlinux";
inline constexpr char kImageInitramfsFile[] = "initramfs.cpio.gz";
inline constexpr char kImageRootfsFile[] = "rootfs.ext4";

// A bootable guest image: kernel + initramfs + root filesystem, all files under one directory
// that is immutable once registered. The directory's name is the build's id.
struct ImageRecord {
  std::string name;        // e.g. "default"
  std::string input_hash;  // hash of every build input; a rebuild with the same hash is a no-op
  std::string dir;         // absolute directory holding the files below
  std::string kernel;      // absolute path of the PVH-bootable uncompressed vmlinux
  std::string initramfs;   // absolute path of the initramfs (cpio.gz)
  std::string rootfs;      // absolute path of the raw ext4 root filesystem image
  std::string kernel_version;
  std::string source;  // e.g. "debian:bookworm"
  int64_t size_bytes = 0;
  int64_t created_at = 0;
  // What the image says about itself (from an OCI config or the recipe): "user" (default login),
  // "env" (["K=V"]), "exposed_ports" (["80/tcp"]), "entrypoint", "cmd", "working_dir".
  nlohmann::json config = nlohmann::json::object();
};

// Image names: 1-64 chars of [a-z0-9._-], starting with a letter or digit.
Result<void> ValidateImageName(std::string_view name);

// What an image is built from.
// The image every VM gets unless it names another; it alone has a recipe when none is given.
inline constexpr char kDefaultImageName[] = "default";

struct ImageSource {
  enum class Kind { kDebian, kOci, kDockerfile };
  Kind kind = Kind::kDebian;
  std::string suite = "bookworm";     // kDebian
  std::vector<std::string> packages;  // kDebian: added to the base set
  // kOci: an OCI image layout directory or an OCI/docker-save tar archive; kDockerfile: the
  // Dockerfile. Absolute paths on the daemon's host.
  std::string path;
  std::string context;  // kDockerfile: the build context directory (default: the file's)
};
Result<void> ValidateImageSource(const ImageSource& source);
// "debian:bookworm+curl,git", "oci:/path", "dockerfile:/path" (shown by `image ls`).
std::string DescribeImageSource(const ImageSource& source);

inline nlohmann::json ToJson(const ImageRecord& i) {
  return {{"name", i.name},
          {"input_hash", i.input_hash},
          {"dir", i.dir},
          {"kernel", i.kernel},
          {"initramfs", i.initramfs},
          {"rootfs", i.rootfs},
          {"kernel_version", i.kernel_version},
          {"source", i.source},
          {"size_bytes", i.size_bytes},
          {"created_at", i.created_at},
          {"config", i.config}};
}

}  // namespace vmctl

#endif  // VMCTL_MODEL_IMAGE_H_
