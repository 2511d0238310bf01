#ifndef VMCTL_IMAGE_OCI_H_
#define VMCTL_IMAGE_OCI_H_

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "base/result.h"

namespace vmctl::image {

// What the image config ("config" object of the OCI image config JSON) says about running it.
struct OciConfig {
  std::string user;                          // "User", may be empty
  std::vector<std::string> env;              // "Env", "K=V"
  std::vector<std::string> entrypoint, cmd;  // "Entrypoint", "Cmd"
  std::string working_dir;                   // "WorkingDir"
  std::vector<std::string> exposed_ports;    // keys of "ExposedPorts", e.g. "80/tcp"
};

// Bounds on what an image may hold, so that a hostile image cannot exhaust the host. Entries and
// bytes are counted over all layers together; bytes are the declared sizes of regular files (a
// sparse file counts in full). A tar archive source is held to the same bounds while staging.
struct OciLimits {
  uint64_t max_entries = 1'000'000;
  uint64_t max_total_bytes = uint64_t{64} << 30;
  uint64_t max_layers = 256;
};

// Called with one human-readable line per step, e.g.
// "Applying layer 2/5 (sha256:0123456789ab…, 12.3 MiB)"; may be empty.
using OciProgress = std::function<void(const std::string&)>;

// Unpacks the image at `source` into `root`.
//
// `source` is an OCI image layout directory (index.json, blobs/sha256/…), a directory holding an
// extracted `docker save` archive (manifest.json), or a tar archive (optionally gzip or zstd
// compressed) of either. An archive is staged into a private directory beside `root`, never
// extracted elsewhere. An OCI layout is preferred when both index.json and manifest.json exist
// (docker save 25+ writes both).
//
// The one linux/amd64 manifest is chosen, following nested indexes; descriptors without a platform
// count when no descriptor names linux/amd64, and then the config's os/architecture must say
// linux/amd64. Every blob read through a descriptor is checked against its sha256 digest (and
// size) while it is read. For docker-save manifests, the config is checked against its file name
// and each layer against the config's rootfs.diff_ids (or its blobs/sha256/ file name).
//
// Layers are tar streams (plain, gzip or zstd; no other archive format or filter) applied in order
// with OCI changeset semantics: "DIR/.wh.NAME" removes NAME from lower layers, "DIR/.wh..wh..opq"
// removes everything lower layers put in DIR (not what the same layer adds, whatever the order of
// the entries); whiteout files never appear in the result. Numeric ownership (never looked up on
// the host), permissions including setuid/setgid/sticky, modification times and extended attributes
// of files and directories are kept (xattrs the filesystem does not support are skipped with a
// note). Device nodes, FIFOs and sockets are skipped with a note: a VM gets /dev from devtmpfs.
//
// `root` must be an existing empty directory, not a mount point (the result is renamed over it).
// The image is unpacked into a private staging directory in root's parent that replaces `root`
// only when everything succeeded; on any error `root` is left empty and nothing is left beside it.
//
// Errors:
//  - kInvalidArgument: `root` is not an empty directory; `source` is not an image (no index.json
//    nor manifest.json, not a tar archive); malformed JSON or descriptors; no or several
//    linux/amd64 manifests (the message lists what exists); a blob that is missing, escapes the
//    image directory or does not match its digest or size; a corrupt layer; an entry (named with
//    its layer) whose path is absolute, contains "..", or passes through a symbolic link or
//    non-directory, a whiteout through such a path, a hard link whose target is absolute, contains
//    "..", is missing or is a directory. Symbolic links themselves may point anywhere: they are
//    never followed while unpacking.
//  - kResourceExhausted: more entries, file bytes or layers than `limits` allow.
//  - kNotFound: `source` does not exist.
//  - kInternal (ErrnoError): a host filesystem operation failed.
//
// Blocking. Needs root (CAP_CHOWN, CAP_FOWNER, CAP_MKNOD is not needed) to keep ownership. Uses no
// process-wide state (no chdir, no umask): safe to call concurrently for distinct roots.
Result<OciConfig> UnpackOciImage(const std::filesystem::path& source,
                                 const std::filesystem::path& root, const OciLimits& limits,
                                 const OciProgress& progress);

}  // namespace vmctl::image

#endif  // VMCTL_IMAGE_OCI_H_
