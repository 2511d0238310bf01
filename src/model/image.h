#ifndef VMCTL_MODEL_IMAGE_H_
#define VMCTL_MODEL_IMAGE_H_

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

namespace vmctl {

// A bootable guest image: kernel + initramfs + root filesystem, all files under one directory
// that is immutable once registered.
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
};

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
          {"created_at", i.created_at}};
}

}  // namespace vmctl

#endif  // VMCTL_MODEL_IMAGE_H_
