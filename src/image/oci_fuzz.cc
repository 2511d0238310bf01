// libFuzzer target for OCI images, which whoever builds an image controls. The first byte picks
// what the rest of the input is; the harness builds a valid OCI layout around it (digests and
// sizes computed) so that the input reaches its parser:
//   0  the source itself, as a (compressed) tar archive staged and unpacked
//   1  the one layer (tar, gzip or zstd)
//   2  the image config JSON (with one empty layer)
//   3  the image manifest JSON
//   4  index.json
// Everything happens in a private directory in /dev/shm (or /tmp), removed after each input.

#include <openssl/evp.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "image/oci.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string Sha256Hex(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  if (EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr) != 1) std::abort();
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned i = 0; i < len; ++i) {
    hex += kHex[md[i] >> 4];
    hex += kHex[md[i] & 15];
  }
  return hex;
}

void Write(const fs::path& path, std::string_view data) {
  std::ofstream out(path, std::ios::binary);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
  if (!out) std::abort();
}

// The layout's blobs directory; each blob is named by its digest.
class Layout {
 public:
  explicit Layout(fs::path dir) : dir_(std::move(dir)) {
    fs::create_directories(dir_ / "blobs/sha256");
    Write(dir_ / "oci-layout", R"({"imageLayoutVersion":"1.0.0"})");
  }

  json Blob(std::string_view data, const std::string& media_type) {
    std::string hex = Sha256Hex(data);
    Write(dir_ / "blobs/sha256" / hex, data);
    return {{"mediaType", media_type}, {"digest", "sha256:" + hex}, {"size", data.size()}};
  }

  json Config(std::string_view config) {
    return Blob(config, "application/vnd.oci.image.config.v1+json");
  }
  json Layer(std::string_view tar) { return Blob(tar, "application/vnd.oci.image.layer.v1.tar"); }
  json Manifest(std::string_view manifest) {
    return Blob(manifest, "application/vnd.oci.image.manifest.v1+json");
  }
  json ManifestOf(const json& config, const json& layer) {
    json manifest = {{"schemaVersion", 2},
                     {"mediaType", "application/vnd.oci.image.manifest.v1+json"},
                     {"config", config},
                     {"layers", {layer}}};
    return Manifest(manifest.dump());
  }
  void Index(std::string_view index) { Write(dir_ / "index.json", index); }
  void IndexOf(json manifest) {
    manifest["platform"] = {{"os", "linux"}, {"architecture", "amd64"}};
    Index(json{{"schemaVersion", 2}, {"manifests", {manifest}}}.dump());
  }

 private:
  fs::path dir_;
};

std::string DefaultConfig() {
  return json{{"architecture", "amd64"},
              {"os", "linux"},
              {"config", {{"Cmd", {"/bin/sh"}}}},
              {"rootfs", {{"type", "layers"}, {"diff_ids", json::array()}}}}
      .dump();
}

// An empty tar archive: two zero blocks.
const std::string kEmptyTar(1024, '\0');

fs::path Scratch() {
  static const fs::path base = fs::exists("/dev/shm") ? "/dev/shm" : fs::temp_directory_path();
  std::string dir = (base / "vmctl-oci-fuzz-XXXXXX").string();
  if (::mkdtemp(dir.data()) == nullptr) std::abort();
  return dir;
}

// The source for one input: a layout directory, or the input itself as an archive file.
fs::path Source(uint8_t kind, std::string_view input, const fs::path& dir) {
  if (kind == 0) {
    Write(dir / "image.tar", input);
    return dir / "image.tar";
  }
  Layout layout(dir / "image");
  switch (kind) {
    case 1:
      layout.IndexOf(layout.ManifestOf(layout.Config(DefaultConfig()), layout.Layer(input)));
      break;
    case 2:
      layout.IndexOf(layout.ManifestOf(layout.Config(input), layout.Layer(kEmptyTar)));
      break;
    case 3:
      layout.Layer(kEmptyTar);  // a blob the manifest may name
      layout.Config(DefaultConfig());
      layout.IndexOf(layout.Manifest(input));
      break;
    case 4:
      layout.ManifestOf(layout.Config(DefaultConfig()), layout.Layer(kEmptyTar));
      layout.Index(input);
      break;
  }
  return dir / "image";
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  fs::path dir = Scratch();
  fs::path source = Source(data[0] % 5, input, dir);
  fs::create_directory(dir / "root");
  // Small bounds keep every input fast: a few KiB of input may declare gigabytes.
  vmctl::image::OciLimits limits{.max_entries = 1000, .max_total_bytes = 1 << 20, .max_layers = 8};
  auto unpacked = vmctl::image::UnpackOciImage(source, dir / "root", limits, nullptr);
  if (!unpacked.ok()) {
    // A failed unpack leaves root empty and nothing beside it.
    if (!fs::is_empty(dir / "root")) std::abort();
    for (const auto& entry : fs::directory_iterator(dir)) {
      auto name = entry.path().filename();
      if (name != "root" && name != "image" && name != "image.tar") std::abort();
    }
  }
  std::error_code ec;
  fs::remove_all(dir, ec);
  if (ec) std::abort();
  return 0;
}
