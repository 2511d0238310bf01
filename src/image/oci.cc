#include "image/oci.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <linux/openat2.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <span>
#include <utility>

#include "base/unique_fd.h"

namespace vmctl::image {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr size_t kMaxDocumentBytes = 4 << 20;  // index, manifest and config JSON
constexpr int kMaxIndexDepth = 8;
constexpr int kDirFlags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
constexpr std::string_view kWhiteoutPrefix = ".wh.";
constexpr std::string_view kWhiteoutMetaPrefix = ".wh..wh.";
constexpr std::string_view kOpaqueMarker = ".wh..wh..opq";

class Sha256 {
 public:
  Sha256() : ctx_(EVP_MD_CTX_new()) { EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr); }
  void Update(const void* data, size_t size) { EVP_DigestUpdate(ctx_.get(), data, size); }
  std::string Digest() {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_DigestFinal_ex(ctx_.get(), md, &len);
    std::string out = "sha256:";
    for (unsigned int i = 0; i < len; ++i) out += fmt::format("{:02x}", md[i]);
    return out;
  }

 private:
  struct Free {
    void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
  };
  std::unique_ptr<EVP_MD_CTX, Free> ctx_;
};

struct ArchiveFree {
  void operator()(archive* a) const { archive_read_free(a); }
};
using ArchiveReader = std::unique_ptr<archive, ArchiveFree>;

std::string ShortDigest(const std::string& digest) { return digest.substr(0, 19) + "…"; }

// A blob the image refers to: a file below the image directory and, when the image says, the
// digest and size it must have.
struct Blob {
  std::string path;
  std::string digest;
  std::optional<uint64_t> size;

  std::string Name() const { return digest.empty() ? "'" + path + "'" : "blob " + digest; }
};

Result<void> CheckBlob(const Blob& blob, Sha256& hash, uint64_t bytes) {
  if (!blob.digest.empty() && hash.Digest() != blob.digest) {
    return InvalidArgument(fmt::format("{} does not match its digest", blob.Name()));
  }
  if (blob.size && *blob.size != bytes) {
    return InvalidArgument(
        fmt::format("{} has {} bytes but its descriptor says {}", blob.Name(), bytes, *blob.size));
  }
  return Ok();
}

// Opens a regular file below dir_fd; symbolic links are followed only while they stay below it.
Result<UniqueFd> OpenBeneath(int dir_fd, const std::string& path) {
  open_how how{};
  how.flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;  // a FIFO must not block the open
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
  UniqueFd fd(static_cast<int>(::syscall(SYS_openat2, dir_fd, path.c_str(), &how, sizeof(how))));
  if (!fd.valid()) {
    if (errno == ENOENT) return InvalidArgument(fmt::format("the image has no '{}'", path));
    if (errno == EXDEV || errno == ELOOP) {
      return InvalidArgument(fmt::format("'{}' points outside the image", path));
    }
    return ErrnoError("open " + path, errno);
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return ErrnoError("stat " + path, errno);
  if (!S_ISREG(st.st_mode)) {
    return InvalidArgument(fmt::format("'{}' in the image is not a regular file", path));
  }
  return fd;
}

Result<json> ReadDocument(int image_fd, const Blob& blob, std::string_view what) {
  VMCTL_ASSIGN_OR_RETURN(UniqueFd fd, OpenBeneath(image_fd, blob.path));
  std::string text;
  char buf[1 << 16];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError("read " + blob.path, errno);
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
    if (text.size() > kMaxDocumentBytes) {
      return InvalidArgument(fmt::format("the {} ({}) is larger than {} MiB", what, blob.Name(),
                                         kMaxDocumentBytes >> 20));
    }
  }
  Sha256 hash;
  hash.Update(text.data(), text.size());
  VMCTL_TRY(CheckBlob(blob, hash, text.size()));
  json doc = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !(doc.is_object() || doc.is_array())) {
    return InvalidArgument(fmt::format("the {} ({}) is not valid JSON", what, blob.Name()));
  }
  return doc;
}

bool IsSha256Hex(std::string_view hex) {
  return hex.size() == 64 && hex.find_first_not_of("0123456789abcdef") == std::string_view::npos;
}

// The blob a descriptor points to. Its path comes from the checked digest alone, so a descriptor
// cannot name an arbitrary file.
Result<Blob> DescribedBlob(const json& descriptor, std::string_view what) {
  if (!descriptor.is_object() || !descriptor.contains("digest") ||
      !descriptor["digest"].is_string()) {
    return InvalidArgument(fmt::format("the {} descriptor has no digest", what));
  }
  std::string digest = descriptor["digest"];
  if (!digest.starts_with("sha256:") || !IsSha256Hex(std::string_view(digest).substr(7))) {
    return InvalidArgument(
        fmt::format("the {} digest '{}' is not a sha256 digest (sha256:<64 hex>)", what, digest));
  }
  Blob blob{.path = "blobs/sha256/" + digest.substr(7), .digest = digest};
  if (descriptor.contains("size")) {
    if (!descriptor["size"].is_number_unsigned()) {
      return InvalidArgument(fmt::format("the {} descriptor has a bad size", what));
    }
    blob.size = descriptor["size"].get<uint64_t>();
  }
  return blob;
}

std::vector<std::string> StringList(const json& object, const char* key) {
  std::vector<std::string> out;
  if (!object.contains(key) || !object[key].is_array()) return out;
  for (const auto& s : object[key]) {
    if (s.is_string()) out.push_back(s);
  }
  return out;
}

std::string StringField(const json& object, const char* key) {
  return object.contains(key) && object[key].is_string() ? object[key].get<std::string>() : "";
}

OciConfig ParseConfig(const json& image_config) {
  OciConfig out;
  if (!image_config.contains("config") || !image_config["config"].is_object()) return out;
  const json& c = image_config["config"];
  out.user = StringField(c, "User");
  out.working_dir = StringField(c, "WorkingDir");
  out.env = StringList(c, "Env");
  out.entrypoint = StringList(c, "Entrypoint");
  out.cmd = StringList(c, "Cmd");
  if (c.contains("ExposedPorts") && c["ExposedPorts"].is_object()) {
    for (const auto& [port, unused] : c["ExposedPorts"].items()) out.exposed_ports.push_back(port);
  }
  return out;
}

// Images without a platform in their index say what they are in their config.
Result<void> CheckConfigPlatform(const json& image_config) {
  std::string os = StringField(image_config, "os");
  std::string arch = StringField(image_config, "architecture");
  if ((!os.empty() && os != "linux") || (!arch.empty() && arch != "amd64")) {
    return InvalidArgument(fmt::format("the image is for {}/{}, not linux/amd64", os, arch));
  }
  return Ok();
}

struct Plan {
  std::vector<Blob> layers;
  json config;
};

Result<Plan> PlanFromManifest(int image_fd, const json& manifest, const Blob& where,
                              const OciLimits& limits) {
  if (!manifest.contains("layers") || !manifest["layers"].is_array()) {
    return InvalidArgument(fmt::format("the manifest {} has no layer list", where.Name()));
  }
  const json& layers = manifest["layers"];
  if (layers.size() > limits.max_layers) {
    return ResourceExhausted(fmt::format("the image has {} layers, more than the limit of {}",
                                         layers.size(), limits.max_layers));
  }
  Plan plan;
  VMCTL_ASSIGN_OR_RETURN(Blob config, DescribedBlob(manifest.value("config", json()), "config"));
  VMCTL_ASSIGN_OR_RETURN(plan.config, ReadDocument(image_fd, config, "image config"));
  for (const auto& layer : layers) {
    VMCTL_ASSIGN_OR_RETURN(Blob blob, DescribedBlob(layer, "layer"));
    plan.layers.push_back(std::move(blob));
  }
  return plan;
}

std::string PlatformName(const json& descriptor) {
  if (!descriptor.contains("platform") || !descriptor["platform"].is_object()) return "unknown";
  const json& p = descriptor["platform"];
  std::string name = StringField(p, "os") + "/" + StringField(p, "architecture");
  if (std::string variant = StringField(p, "variant"); !variant.empty()) name += "/" + variant;
  return name;
}

// The one manifest (or nested index) of `index` for linux/amd64.
Result<json> ChooseManifest(const json& index, const Blob& where) {
  if (!index.is_object() || !index.contains("manifests") || !index["manifests"].is_array() ||
      index["manifests"].empty()) {
    return InvalidArgument(fmt::format("the image index {} lists no manifests", where.Name()));
  }
  std::vector<json> amd64, unlabelled;
  std::set<std::string> seen;
  for (const auto& m : index["manifests"]) {
    if (!m.is_object()) return InvalidArgument("the image index has a malformed descriptor");
    if (!m.contains("platform")) {
      unlabelled.push_back(m);
      seen.insert("a manifest without platform");
      continue;
    }
    const json& p = m["platform"];
    if (p.is_object() && StringField(p, "os") == "linux" &&
        StringField(p, "architecture") == "amd64") {
      amd64.push_back(m);
    }
    seen.insert(PlatformName(m));
  }
  std::vector<json>& candidates = amd64.empty() ? unlabelled : amd64;
  auto listing = [&] {
    std::string out;
    for (const auto& s : seen) out += (out.empty() ? "" : ", ") + s;
    return out;
  };
  if (candidates.empty()) {
    return InvalidArgument(
        fmt::format("the image has no linux/amd64 manifest (it has {})", listing()));
  }
  if (candidates.size() > 1) {
    std::string digests;
    for (const auto& c : candidates) {
      digests += (digests.empty() ? "" : ", ") + StringField(c, "digest");
    }
    return InvalidArgument(fmt::format(
        "the image has {} candidate manifests for linux/amd64 ({}); it has {}: keep one",
        candidates.size(), digests, listing()));
  }
  return candidates.front();
}

Result<Plan> PlanFromLayout(int image_fd, const OciLimits& limits) {
  Blob where{.path = "index.json"};
  VMCTL_ASSIGN_OR_RETURN(json index, ReadDocument(image_fd, where, "image index"));
  for (int depth = 0; depth < kMaxIndexDepth; ++depth) {
    VMCTL_ASSIGN_OR_RETURN(json chosen, ChooseManifest(index, where));
    VMCTL_ASSIGN_OR_RETURN(where, DescribedBlob(chosen, "manifest"));
    VMCTL_ASSIGN_OR_RETURN(json doc, ReadDocument(image_fd, where, "manifest"));
    if (doc.is_object() && doc.contains("manifests")) {
      index = std::move(doc);
      continue;
    }
    if (!doc.is_object()) return InvalidArgument(fmt::format("{} is no manifest", where.Name()));
    VMCTL_ASSIGN_OR_RETURN(Plan plan, PlanFromManifest(image_fd, doc, where, limits));
    if (!chosen.contains("platform")) VMCTL_TRY(CheckConfigPlatform(plan.config));
    return plan;
  }
  return InvalidArgument(fmt::format("the image indexes nest more than {} deep", kMaxIndexDepth));
}

// A docker-save file name that carries its own digest: "<hex>.json" or "blobs/sha256/<hex>".
std::string DigestInName(std::string_view path) {
  if (path.starts_with("blobs/sha256/")) path.remove_prefix(13);
  if (path.ends_with(".json")) path.remove_suffix(5);
  return IsSha256Hex(path) ? "sha256:" + std::string(path) : "";
}

// `docker save` before 25 has no OCI layout: manifest.json names the config and the layer files,
// and the config's rootfs.diff_ids are the digests of those (uncompressed) layer files.
Result<Plan> PlanFromDockerSave(int image_fd, const OciLimits& limits) {
  VMCTL_ASSIGN_OR_RETURN(json manifest,
                         ReadDocument(image_fd, Blob{.path = "manifest.json"}, "manifest.json"));
  if (!manifest.is_array() || manifest.size() != 1 || !manifest[0].is_object()) {
    std::string tags;
    if (manifest.is_array()) {
      for (const auto& m : manifest) {
        for (const auto& t : StringList(m, "RepoTags")) tags += (tags.empty() ? "" : ", ") + t;
      }
    }
    return InvalidArgument(
        fmt::format("manifest.json must describe exactly one image (it has {}{})",
                    manifest.is_array() ? manifest.size() : 0, tags.empty() ? "" : ": " + tags));
  }
  const json& m = manifest[0];
  std::string config_path = StringField(m, "Config");
  if (config_path.empty()) return InvalidArgument("manifest.json names no Config");
  Plan plan;
  VMCTL_ASSIGN_OR_RETURN(
      plan.config,
      ReadDocument(image_fd, Blob{.path = config_path, .digest = DigestInName(config_path)},
                   "image config"));
  if (!plan.config.is_object()) return InvalidArgument("the image config is not an object");
  VMCTL_TRY(CheckConfigPlatform(plan.config));
  std::vector<std::string> layers = StringList(m, "Layers");
  if (!m.contains("Layers") || layers.size() != m["Layers"].size()) {
    return InvalidArgument("manifest.json has no list of layer files");
  }
  if (layers.size() > limits.max_layers) {
    return ResourceExhausted(fmt::format("the image has {} layers, more than the limit of {}",
                                         layers.size(), limits.max_layers));
  }
  std::vector<std::string> diff_ids;
  if (plan.config.contains("rootfs") && plan.config["rootfs"].is_object()) {
    diff_ids = StringList(plan.config["rootfs"], "diff_ids");
  }
  for (size_t i = 0; i < layers.size(); ++i) {
    std::string digest = DigestInName(layers[i]);
    if (digest.empty() && diff_ids.size() == layers.size()) digest = diff_ids[i];
    plan.layers.push_back(Blob{.path = layers[i], .digest = digest});
  }
  return plan;
}

// The components of an archive entry path, refusing anything that could leave the tree.
Result<std::vector<std::string>> SafeComponents(std::string_view path) {
  if (path.starts_with('/')) return InvalidArgument("the path is absolute");
  std::vector<std::string> parts;
  while (!path.empty()) {
    size_t slash = path.find('/');
    std::string_view part = path.substr(0, slash);
    path = slash == std::string_view::npos ? "" : path.substr(slash + 1);
    if (part.empty() || part == ".") continue;
    if (part == "..") return InvalidArgument("the path contains '..'");
    parts.emplace_back(part);
  }
  return parts;
}

std::string JoinPath(std::span<const std::string> parts) {
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : "/") + p;
  return out;
}

// Opens the directory `parts` names below root_fd, never following a symbolic link: an entry
// below a link that an image planted would otherwise land wherever the link points. Missing
// directories are created (0755, owned by root) when `create`, else they are kNotFound.
Result<UniqueFd> OpenDirBeneath(int root_fd, std::span<const std::string> parts, bool create) {
  UniqueFd dir(::openat(root_fd, ".", kDirFlags));
  if (!dir.valid()) return ErrnoError("open the root directory", errno);
  for (size_t i = 0; i < parts.size(); ++i) {
    const char* name = parts[i].c_str();
    UniqueFd next(::openat(dir.get(), name, kDirFlags));
    if (!next.valid() && errno == ENOENT && create) {
      if (::mkdirat(dir.get(), name, 0700) != 0 && errno != EEXIST) {
        return ErrnoError("create the directory " + JoinPath(parts.first(i + 1)), errno);
      }
      next.reset(::openat(dir.get(), name, kDirFlags));
      if (next.valid() && ::fchmod(next.get(), 0755) != 0) {
        return ErrnoError("chmod " + JoinPath(parts.first(i + 1)), errno);
      }
    }
    if (!next.valid()) {
      int err = errno;
      std::string walked = JoinPath(parts.first(i + 1));
      if (err == ENOENT) return NotFound(fmt::format("'{}' does not exist", walked));
      struct stat st {};
      if ((err == ELOOP || err == ENOTDIR) &&
          ::fstatat(dir.get(), name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
        return InvalidArgument(
            fmt::format("the path passes through '{}', which is {}", walked,
                        S_ISLNK(st.st_mode) ? "a symbolic link" : "not a directory"));
      }
      return ErrnoError("open the directory " + walked, err);
    }
    dir = std::move(next);
  }
  return dir;
}

Result<std::vector<std::string>> ListDir(int dir_fd) {
  // A fresh open file description: listing must not depend on (or move) dir_fd's offset.
  int fd = ::openat(dir_fd, ".", kDirFlags);
  if (fd < 0) return ErrnoError("open a directory to list it", errno);
  DIR* d = ::fdopendir(fd);
  if (d == nullptr) {
    ::close(fd);
    return ErrnoError("list a directory", errno);
  }
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d)) {
    if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) {
      names.emplace_back(e->d_name);
    }
  }
  ::closedir(d);
  return names;
}

// Removes `name` in dir_fd whatever it is, a directory with its contents, never following links.
Result<void> RemoveTree(int dir_fd, const std::string& name) {
  if (::unlinkat(dir_fd, name.c_str(), 0) == 0 || errno == ENOENT) return Ok();
  if (errno != EISDIR) return ErrnoError("remove " + name, errno);
  UniqueFd sub(::openat(dir_fd, name.c_str(), kDirFlags));
  if (!sub.valid()) return ErrnoError("open " + name, errno);
  VMCTL_ASSIGN_OR_RETURN(std::vector<std::string> children, ListDir(sub.get()));
  for (const auto& child : children) VMCTL_TRY(RemoveTree(sub.get(), child));
  if (::unlinkat(dir_fd, name.c_str(), AT_REMOVEDIR) != 0) {
    return ErrnoError("remove the directory " + name, errno);
  }
  return Ok();
}

struct Budget {
  const OciLimits& limits;
  uint64_t entries = 0;
  uint64_t bytes = 0;
};

// Feeds a file to libarchive, hashing every byte on the way so that a blob is verified by the
// same read that unpacks it.
class HashingSource {
 public:
  explicit HashingSource(UniqueFd fd) : fd_(std::move(fd)), buf_(1 << 20) {}

  Result<void> Open(archive* a) {
    if (archive_read_open(a, this, nullptr, &HashingSource::Read, nullptr) != ARCHIVE_OK) {
      return InvalidArgument(fmt::format("it is not a tar archive: {}", archive_error_string(a)));
    }
    return Ok();
  }

  // Hashes what libarchive left unread (end-of-archive padding, trailing data) and checks blob.
  Result<void> Finish(const Blob& blob) {
    for (;;) {
      VMCTL_ASSIGN_OR_RETURN(size_t n, ReadChunk());
      if (n == 0) break;
    }
    return CheckBlob(blob, hash_, bytes_);
  }

 private:
  static la_ssize_t Read(archive* a, void* self, const void** out) {
    auto* source = static_cast<HashingSource*>(self);
    auto n = source->ReadChunk();
    if (!n.ok()) {
      archive_set_error(a, EIO, "%s", n.error().message().c_str());
      return -1;
    }
    *out = source->buf_.data();
    return static_cast<la_ssize_t>(*n);
  }

  Result<size_t> ReadChunk() {
    for (;;) {
      ssize_t n = ::read(fd_.get(), buf_.data(), buf_.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return ErrnoError("read", errno);
      hash_.Update(buf_.data(), static_cast<size_t>(n));
      bytes_ += static_cast<uint64_t>(n);
      return static_cast<size_t>(n);
    }
  }

  UniqueFd fd_;
  std::vector<char> buf_;
  Sha256 hash_;
  uint64_t bytes_ = 0;
};

// Writes the entries of a tar stream below root_fd. As a layer, with OCI changeset semantics and
// the entries' ownership, modes, times and xattrs; as the staging of an outer archive, plainly
// (whiteout names are ordinary files there, metadata is not kept).
class TreeWriter {
 public:
  enum class Mode { kLayer, kStaging };

  TreeWriter(Mode mode, int root_fd, Budget& budget)
      : mode_(mode), root_fd_(root_fd), budget_(budget) {}

  // Applies the tar stream read from `source`, then checks `source` against `blob`. `name`
  // prefixes every error.
  Result<void> Apply(HashingSource& source, const Blob& blob, const std::string& name) {
    auto applied = ApplyEntries(source, name);
    // A blob that is not what its digest says explains whatever else went wrong with it.
    VMCTL_TRY(source.Finish(blob).WithContext(name));
    return applied;
  }

  // Directory times, which later entries would have disturbed, and notes on what was skipped.
  Result<void> Finish(const OciProgress& progress) {
    for (const auto& [path, times] : dir_times_) {
      VMCTL_ASSIGN_OR_RETURN(std::vector<std::string> parts, SafeComponents(path));
      // Directories a later layer removed or replaced have no time to restore.
      auto dir = OpenDirBeneath(root_fd_, parts, /*create=*/false);
      if (dir.ok()) ::futimens(dir->get(), times.data());
    }
    if (progress && skipped_nodes_ > 0) {
      progress(fmt::format("Skipped {} device nodes, FIFOs or sockets (a VM's /dev is devtmpfs)",
                           skipped_nodes_));
    }
    if (progress && skipped_xattrs_ > 0) {
      progress(fmt::format("Skipped {} extended attributes this filesystem does not support",
                           skipped_xattrs_));
    }
    return Ok();
  }

 private:
  Result<void> ApplyEntries(HashingSource& source, const std::string& name) {
    ArchiveReader a(archive_read_new());
    // Only the compressions OCI layers use, all built in: support_filter_all would also run
    // external programs (lrzip, lzop, grzip) on untrusted data.
    archive_read_support_filter_gzip(a.get());
    archive_read_support_filter_zstd(a.get());
    archive_read_support_format_tar(a.get());
    VMCTL_TRY(source.Open(a.get()).WithContext(name));
    touched_.clear();
    for (;;) {
      archive_entry* entry = nullptr;
      int rc = archive_read_next_header(a.get(), &entry);
      if (rc == ARCHIVE_EOF) break;
      if (rc < ARCHIVE_WARN) {
        return InvalidArgument(
            fmt::format("{} is not a valid tar archive: {}", name, archive_error_string(a.get())));
      }
      if (++budget_.entries > budget_.limits.max_entries) {
        return ResourceExhausted(fmt::format("{}: the image has more than {} entries", name,
                                             budget_.limits.max_entries));
      }
      const char* raw = archive_entry_pathname(entry);
      std::string path = raw != nullptr ? raw : "";
      auto applied = ApplyEntry(a.get(), entry, path);
      if (!applied.ok()) {
        const Error& e = applied.error();
        if (e.code() == ErrorCode::kInvalidArgument) {
          return InvalidArgument(
              fmt::format("{}: entry '{}' is refused: {}", name, path, e.message()));
        }
        if (e.code() == ErrorCode::kResourceExhausted) return e.WithContext(name);
        return e.WithContext(fmt::format("{}: entry '{}'", name, path));
      }
    }
    return Ok();
  }

  Result<void> ApplyEntry(archive* a, archive_entry* entry, const std::string& path) {
    VMCTL_ASSIGN_OR_RETURN(std::vector<std::string> parts, SafeComponents(path));
    const bool layer = mode_ == Mode::kLayer;
    if (parts.empty()) {
      // "./": the root itself.
      if (!layer || archive_entry_filetype(entry) != AE_IFDIR) return Ok();
      UniqueFd root(::openat(root_fd_, ".", kDirFlags));
      if (!root.valid()) return ErrnoError("open the root", errno);
      VMCTL_TRY(SetMetadata(root.get(), entry));
      dir_times_[""] = Times(entry);
      return Ok();
    }
    const std::string name = parts.back();
    std::span<const std::string> parent_parts(parts.data(), parts.size() - 1);
    const std::string full = JoinPath(parts);
    if (layer && name.starts_with(kWhiteoutPrefix)) return ApplyWhiteout(parent_parts, name);

    VMCTL_ASSIGN_OR_RETURN(UniqueFd parent, OpenDirBeneath(root_fd_, parent_parts, true));
    for (size_t i = 1; i <= parts.size(); ++i) touched_.insert(JoinPath({parts.data(), i}));

    if (const char* link = archive_entry_hardlink(entry); link != nullptr) {
      return HardLink(parent.get(), name, full, link);
    }
    switch (archive_entry_filetype(entry)) {
      case AE_IFDIR:
        return Directory(parent.get(), name, full, entry);
      case AE_IFLNK:
        return Symlink(parent.get(), name, entry);
      case AE_IFREG:
        return RegularFile(a, parent.get(), name, entry);
      default:
        ++skipped_nodes_;
        skipped_paths_.insert(full);
        return Ok();
    }
  }

  Result<void> ApplyWhiteout(std::span<const std::string> parent_parts, const std::string& name) {
    const bool opaque = name == kOpaqueMarker;
    // Other ".wh..wh." names are aufs bookkeeping, meaningless here.
    if (!opaque && name.starts_with(kWhiteoutMetaPrefix)) return Ok();
    auto parent = OpenDirBeneath(root_fd_, parent_parts, /*create=*/false);
    if (!parent.ok() && parent.error().code() == ErrorCode::kNotFound) return Ok();
    if (!parent.ok()) return parent.error();
    const std::string dir_path = JoinPath(parent_parts);
    auto child_path = [&](const std::string& child) {
      return dir_path.empty() ? child : dir_path + "/" + child;
    };
    if (!opaque) {
      std::string victim = name.substr(kWhiteoutPrefix.size());
      return RemoveLower(parent->get(), victim, child_path(victim));
    }
    VMCTL_ASSIGN_OR_RETURN(std::vector<std::string> children, ListDir(parent->get()));
    for (const auto& child : children)
      VMCTL_TRY(RemoveLower(parent->get(), child, child_path(child)));
    return Ok();
  }

  // Removes what lower layers put at `path` (name in dir_fd), keeping what this layer wrote there
  // already: whiteouts may come after the entries they must spare.
  Result<void> RemoveLower(int dir_fd, const std::string& name, const std::string& path) {
    if (!touched_.contains(path)) return RemoveTree(dir_fd, name);
    struct stat st {};
    if (::fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      return ErrnoError("stat " + path, errno);
    }
    if (!S_ISDIR(st.st_mode)) return Ok();
    UniqueFd dir(::openat(dir_fd, name.c_str(), kDirFlags));
    if (!dir.valid()) return ErrnoError("open " + path, errno);
    VMCTL_ASSIGN_OR_RETURN(std::vector<std::string> children, ListDir(dir.get()));
    for (const auto& child : children) VMCTL_TRY(RemoveLower(dir.get(), child, path + "/" + child));
    return Ok();
  }

  Result<void> HardLink(int parent_fd, const std::string& name, const std::string& full,
                        const char* link) {
    auto refused = [&](const std::string& why) {
      return InvalidArgument(fmt::format("its hard link target '{}' is refused: {}", link, why));
    };
    auto target = SafeComponents(link);
    if (!target.ok()) return refused(target.error().message());
    if (target->empty()) return refused("it is the root directory");
    std::string target_path = JoinPath(*target);
    if (target_path == full) return Ok();
    if (skipped_paths_.contains(target_path)) {
      ++skipped_nodes_;
      skipped_paths_.insert(full);
      return Ok();
    }
    std::span<const std::string> target_parent(target->data(), target->size() - 1);
    auto dir = OpenDirBeneath(root_fd_, target_parent, /*create=*/false);
    if (!dir.ok() && dir.error().code() == ErrorCode::kInvalidArgument) {
      return refused(dir.error().message());
    }
    if (!dir.ok() && dir.error().code() != ErrorCode::kNotFound) return dir.error();
    struct stat st {};
    if (!dir.ok() || ::fstatat(dir->get(), target->back().c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      return refused("it is not in the image");
    }
    if (S_ISDIR(st.st_mode)) return refused("it is a directory");
    VMCTL_TRY(RemoveTree(parent_fd, name));
    // Without AT_SYMLINK_FOLLOW a link to a symbolic link links the link, not what it points to.
    if (::linkat(dir->get(), target->back().c_str(), parent_fd, name.c_str(), 0) != 0) {
      return ErrnoError("link", errno);
    }
    return Ok();
  }

  Result<void> Directory(int parent_fd, const std::string& name, const std::string& full,
                         archive_entry* entry) {
    struct stat st {};
    if (::fstatat(parent_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISDIR(st.st_mode)) {
      VMCTL_TRY(RemoveTree(parent_fd, name));
    }
    if (::mkdirat(parent_fd, name.c_str(), 0700) != 0 && errno != EEXIST) {
      return ErrnoError("mkdir", errno);
    }
    UniqueFd dir(::openat(parent_fd, name.c_str(), kDirFlags));
    if (!dir.valid()) return ErrnoError("open the directory", errno);
    if (mode_ == Mode::kLayer) {
      VMCTL_TRY(SetMetadata(dir.get(), entry));
      dir_times_[full] = Times(entry);
    }
    return Ok();
  }

  Result<void> Symlink(int parent_fd, const std::string& name, archive_entry* entry) {
    const char* target = archive_entry_symlink(entry);
    if (target == nullptr || *target == '\0') return InvalidArgument("its link target is empty");
    VMCTL_TRY(RemoveTree(parent_fd, name));
    if (::symlinkat(target, parent_fd, name.c_str()) != 0) return ErrnoError("symlink", errno);
    if (mode_ == Mode::kStaging) return Ok();
    if (::fchownat(parent_fd, name.c_str(), static_cast<uid_t>(archive_entry_uid(entry)),
                   static_cast<gid_t>(archive_entry_gid(entry)), AT_SYMLINK_NOFOLLOW) != 0) {
      return ErrnoError("chown the link", errno);
    }
    auto times = Times(entry);
    if (::utimensat(parent_fd, name.c_str(), times.data(), AT_SYMLINK_NOFOLLOW) != 0) {
      return ErrnoError("set the link's times", errno);
    }
    return Ok();
  }

  Result<void> RegularFile(archive* a, int parent_fd, const std::string& name,
                           archive_entry* entry) {
    const uint64_t size =
        archive_entry_size_is_set(entry) ? static_cast<uint64_t>(archive_entry_size(entry)) : 0;
    budget_.bytes += size;
    if (budget_.bytes > budget_.limits.max_total_bytes) {
      return ResourceExhausted(fmt::format("the image holds more than {} bytes of files",
                                           budget_.limits.max_total_bytes));
    }
    VMCTL_TRY(RemoveTree(parent_fd, name));
    UniqueFd file(::openat(parent_fd, name.c_str(),
                           O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!file.valid()) return ErrnoError("create", errno);
    uint64_t written = 0;
    for (;;) {
      const void* block = nullptr;
      size_t len = 0;
      la_int64_t offset = 0;
      int rc = archive_read_data_block(a, &block, &len, &offset);
      if (rc == ARCHIVE_EOF) break;
      if (rc < ARCHIVE_WARN) {
        return InvalidArgument(fmt::format("its data is corrupt: {}", archive_error_string(a)));
      }
      written += len;
      if (written > size) return InvalidArgument("it holds more data than its size");
      // Writing at the block's offset keeps sparse files sparse.
      const char* p = static_cast<const char*>(block);
      while (len > 0) {
        ssize_t n = ::pwrite(file.get(), p, len, offset);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return ErrnoError("write", errno);
        p += n;
        len -= static_cast<size_t>(n);
        offset += n;
      }
    }
    if (::ftruncate(file.get(), static_cast<off_t>(size)) != 0) {
      return ErrnoError("set the size", errno);
    }
    if (mode_ == Mode::kStaging) return Ok();
    VMCTL_TRY(SetMetadata(file.get(), entry));
    auto times = Times(entry);
    if (::futimens(file.get(), times.data()) != 0) return ErrnoError("set the times", errno);
    return Ok();
  }

  // Owner first: chown clears setuid/setgid and file capabilities (security.capability).
  Result<void> SetMetadata(int fd, archive_entry* entry) {
    if (::fchown(fd, static_cast<uid_t>(archive_entry_uid(entry)),
                 static_cast<gid_t>(archive_entry_gid(entry))) != 0) {
      return ErrnoError("chown", errno);
    }
    if (::fchmod(fd, archive_entry_perm(entry) & 07777) != 0) return ErrnoError("chmod", errno);
    archive_entry_xattr_reset(entry);
    const char* xname = nullptr;
    const void* value = nullptr;
    size_t size = 0;
    while (archive_entry_xattr_next(entry, &xname, &value, &size) == ARCHIVE_OK) {
      if (::fsetxattr(fd, xname, value, size, 0) == 0) continue;
      if (errno != ENOTSUP) return ErrnoError(fmt::format("set the xattr {}", xname), errno);
      ++skipped_xattrs_;
    }
    return Ok();
  }

  static std::array<timespec, 2> Times(archive_entry* entry) {
    timespec mtime{archive_entry_mtime(entry), archive_entry_mtime_nsec(entry)};
    timespec atime = archive_entry_atime_is_set(entry)
                         ? timespec{archive_entry_atime(entry), archive_entry_atime_nsec(entry)}
                         : mtime;
    return {atime, mtime};
  }

  Mode mode_;
  int root_fd_;
  Budget& budget_;
  // Paths the current layer wrote, with their parent directories: whiteouts spare them.
  std::set<std::string> touched_;
  std::set<std::string> skipped_paths_;
  std::map<std::string, std::array<timespec, 2>> dir_times_;
  uint64_t skipped_nodes_ = 0;
  uint64_t skipped_xattrs_ = 0;
};

// A private directory (mode 0700) that is removed with everything in it unless released.
class TempDir {
 public:
  static Result<TempDir> Create(const fs::path& pattern_prefix) {
    std::string tmpl = pattern_prefix.string() + "XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) return ErrnoError("create " + tmpl, errno);
    return TempDir(tmpl);
  }
  TempDir(TempDir&& other) noexcept : path_(std::exchange(other.path_, {})) {}
  TempDir& operator=(TempDir&&) = delete;
  ~TempDir() {
    if (path_.empty()) return;
    std::error_code ec;
    fs::remove_all(path_, ec);  // does not follow symbolic links
  }
  const fs::path& path() const { return path_; }

 private:
  explicit TempDir(fs::path path) : path_(std::move(path)) {}
  fs::path path_;
};

Result<UniqueFd> OpenDir(const fs::path& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoError("open " + path.string(), errno);
  return fd;
}

Result<void> StageArchive(const fs::path& archive_path, int staging_fd, const OciLimits& limits) {
  UniqueFd fd(::open(archive_path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoError("open " + archive_path.string(), errno);
  HashingSource source(std::move(fd));
  Budget budget{limits};
  TreeWriter writer(TreeWriter::Mode::kStaging, staging_fd, budget);
  auto staged = writer.Apply(source, Blob{.path = archive_path.string()},
                             fmt::format("the archive {}", archive_path.string()));
  if (!staged.ok() && staged.error().code() == ErrorCode::kInvalidArgument) {
    return InvalidArgument(
        fmt::format("{} is not an OCI image: {}", archive_path.string(), staged.error().message()));
  }
  return staged;
}

Result<Plan> PlanImage(int image_fd, const fs::path& source, const OciLimits& limits) {
  struct stat st {};
  if (::fstatat(image_fd, "index.json", &st, AT_SYMLINK_NOFOLLOW) == 0) {
    return PlanFromLayout(image_fd, limits);
  }
  if (::fstatat(image_fd, "manifest.json", &st, AT_SYMLINK_NOFOLLOW) == 0) {
    return PlanFromDockerSave(image_fd, limits);
  }
  return InvalidArgument(fmt::format(
      "{} is not an OCI image: it has no index.json (OCI image layout) nor manifest.json "
      "(docker save)",
      source.string()));
}

Result<OciConfig> Unpack(const fs::path& source, const fs::path& root, const fs::path& work,
                         const OciLimits& limits, const OciProgress& progress) {
  std::error_code ec;
  fs::path image_dir = source;
  if (!fs::is_directory(source, ec)) {
    if (!fs::is_regular_file(source, ec)) {
      return InvalidArgument(fmt::format(
          "{} is not an OCI image: neither a directory nor a tar archive", source.string()));
    }
    image_dir = work / "archive";
    if (::mkdir(image_dir.c_str(), 0700) != 0)
      return ErrnoError("mkdir " + image_dir.string(), errno);
    if (progress) progress(fmt::format("Reading {}", source.string()));
    VMCTL_ASSIGN_OR_RETURN(UniqueFd staging_fd, OpenDir(image_dir));
    VMCTL_TRY(StageArchive(source, staging_fd.get(), limits));
  }
  VMCTL_ASSIGN_OR_RETURN(UniqueFd image_fd, OpenDir(image_dir));
  VMCTL_ASSIGN_OR_RETURN(Plan plan, PlanImage(image_fd.get(), source, limits));

  fs::path tree = work / "rootfs";
  struct stat root_st {};
  if (::stat(root.c_str(), &root_st) != 0) return ErrnoError("stat " + root.string(), errno);
  if (::mkdir(tree.c_str(), 0700) != 0) return ErrnoError("mkdir " + tree.string(), errno);
  VMCTL_ASSIGN_OR_RETURN(UniqueFd tree_fd, OpenDir(tree));
  // The result replaces root: it keeps root's owner and mode unless a layer sets them ("./").
  if (::fchown(tree_fd.get(), root_st.st_uid, root_st.st_gid) != 0 ||
      ::fchmod(tree_fd.get(), root_st.st_mode & 07777) != 0) {
    return ErrnoError("set the owner and mode of " + tree.string(), errno);
  }
  Budget budget{limits};
  TreeWriter writer(TreeWriter::Mode::kLayer, tree_fd.get(), budget);
  for (size_t i = 0; i < plan.layers.size(); ++i) {
    const Blob& blob = plan.layers[i];
    VMCTL_ASSIGN_OR_RETURN(UniqueFd fd, OpenBeneath(image_fd.get(), blob.path));
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) return ErrnoError("stat " + blob.path, errno);
    std::string name = fmt::format("layer {}/{}", i + 1, plan.layers.size());
    std::string id = blob.digest.empty() ? blob.path : ShortDigest(blob.digest);
    if (progress) {
      progress(fmt::format("Applying {} ({}, {:.1f} MiB)", name, id,
                           static_cast<double>(st.st_size) / (1 << 20)));
    }
    HashingSource layer(std::move(fd));
    VMCTL_TRY(writer.Apply(layer, blob, fmt::format("{} ({})", name, id)));
  }
  VMCTL_TRY(writer.Finish(progress));
  // rename(2) replaces an empty directory atomically.
  if (::rename(tree.c_str(), root.c_str()) != 0) {
    return ErrnoError(fmt::format("move the unpacked tree to {}", root.string()), errno);
  }
  return ParseConfig(plan.config);
}

}  // namespace

Result<OciConfig> UnpackOciImage(const fs::path& source, const fs::path& root,
                                 const OciLimits& limits, const OciProgress& progress) {
  std::error_code ec;
  if (!fs::exists(source, ec)) return NotFound(fmt::format("no image at {}", source.string()));
  const fs::path abs_root = fs::absolute(root, ec).lexically_normal();
  if (ec || !fs::is_directory(fs::symlink_status(abs_root, ec)) || !fs::is_empty(abs_root, ec)) {
    return InvalidArgument(fmt::format("{} must be an existing empty directory", root.string()));
  }
  fs::path base = abs_root;
  if (!base.has_filename()) base = base.parent_path();  // a trailing '/'
  // Beside root, on the same filesystem, so that the final rename is atomic.
  VMCTL_ASSIGN_OR_RETURN(TempDir work, TempDir::Create(base.parent_path() /
                                                       ("." + base.filename().string() + ".oci-")));
  return Unpack(source, base, work.path(), limits, progress);
}

}  // namespace vmctl::image
