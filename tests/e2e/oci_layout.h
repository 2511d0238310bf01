#ifndef VMCTL_TESTS_E2E_OCI_LAYOUT_H_
#define VMCTL_TESTS_E2E_OCI_LAYOUT_H_

#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "base/io.h"
#include "base/process.h"

namespace vmctl::e2e {

// An OCI image layout built by hand: layers as plain tars named by their digest.
class OciLayout {
 public:
  explicit OciLayout(std::filesystem::path dir) : dir_(std::move(dir)) {
    std::filesystem::create_directories(dir_ / "blobs/sha256");
  }
  // Adds a layer holding the tree at `tree` (or a tar file as is).
  void AddLayer(const std::filesystem::path& tree_or_tar) {
    std::filesystem::path tar = dir_ / "layer.tmp";
    if (std::filesystem::is_directory(tree_or_tar)) {
      auto out = RunCommandChecked(
          {"tar", "--numeric-owner", "-C", tree_or_tar.string(), "-cf", tar.string(), "."});
      ASSERT_TRUE(out.ok()) << out.error().message();
    } else {
      std::filesystem::create_hard_link(tree_or_tar, tar);
    }
    std::string digest = Digest(tar);
    std::filesystem::rename(tar, Blob(digest));
    layers_.push_back({{"mediaType", "application/vnd.oci.image.layer.v1.tar"},
                       {"digest", "sha256:" + digest},
                       {"size", std::filesystem::file_size(Blob(digest))}});
    diff_ids_.push_back("sha256:" + digest);
  }
  // Writes config, manifest and index for the layers so far; `image_config` replaces fields of
  // the image's runtime config (User, Env, Entrypoint, ...).
  void Finish(const nlohmann::json& image_config = nlohmann::json::object()) {
    nlohmann::json runtime = {{"User", "root"},
                              {"Env", {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "GREETING=hello"}},
                              {"ExposedPorts", {{"8080/tcp", nlohmann::json::object()}}}};
    runtime.update(image_config);
    nlohmann::json config = {{"architecture", "amd64"},
                             {"os", "linux"},
                             {"config", runtime},
                             {"rootfs", {{"type", "layers"}, {"diff_ids", diff_ids_}}}};
    nlohmann::json manifest = {
        {"schemaVersion", 2},
        {"mediaType", "application/vnd.oci.image.manifest.v1+json"},
        {"config", Put(config.dump(), "application/vnd.oci.image.config.v1+json")},
        {"layers", layers_}};
    nlohmann::json descriptor = Put(manifest.dump(), "application/vnd.oci.image.manifest.v1+json");
    descriptor["platform"] = {{"architecture", "amd64"}, {"os", "linux"}};
    nlohmann::json index = {{"schemaVersion", 2},
                            {"manifests", nlohmann::json::array({descriptor})}};
    ASSERT_TRUE(WriteFileAtomic(dir_ / "index.json", index.dump()).ok());
    ASSERT_TRUE(WriteFileAtomic(dir_ / "oci-layout", R"({"imageLayoutVersion":"1.0.0"})").ok());
  }
  const std::filesystem::path& dir() const { return dir_; }

 private:
  static std::string Digest(const std::filesystem::path& file) {
    auto out = RunCommandChecked({"sha256sum", file.string()});
    return out.ok() ? out->out.substr(0, 64) : "";
  }
  std::filesystem::path Blob(const std::string& digest) const {
    return dir_ / "blobs/sha256" / digest;
  }
  nlohmann::json Put(const std::string& content, const std::string& media_type) {
    std::filesystem::path tmp = dir_ / "blob.tmp";
    EXPECT_TRUE(WriteFileAtomic(tmp, content).ok());
    std::string digest = Digest(tmp);
    std::filesystem::rename(tmp, Blob(digest));
    return {{"mediaType", media_type}, {"digest", "sha256:" + digest}, {"size", content.size()}};
  }

  std::filesystem::path dir_;
  nlohmann::json layers_ = nlohmann::json::array();
  nlohmann::json diff_ids_ = nlohmann::json::array();
};

}  // namespace vmctl::e2e

#endif  // VMCTL_TESTS_E2E_OCI_LAYOUT_H_
