#include "image/oci.h"

#include <archive.h>
#include <archive_entry.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

namespace vmctl::image {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string Sha256Hex(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  std::string hex;
  for (unsigned int i = 0; i < len; ++i) hex += fmt::format("{:02x}", md[i]);
  return hex;
}

// One tar entry. `data` is a file's content or a link's target.
struct Entry {
  std::string path;
  char type = 'f';  // 'f' file, 'd' directory, 'l' symlink, 'h' hard link, 'c' char device
  std::string data;
  mode_t mode = 0644;
  int64_t uid = 0, gid = 0;
  std::map<std::string, std::string> xattrs;
};
Entry File(std::string path, std::string data, mode_t mode = 0644, int64_t uid = 0,
           int64_t gid = 0) {
  return {std::move(path), 'f', std::move(data), mode, uid, gid};
}
Entry Dir(std::string path, mode_t mode = 0755, int64_t uid = 0, int64_t gid = 0) {
  return {std::move(path), 'd', "", mode, uid, gid};
}
Entry Symlink(std::string path, std::string target) {
  return {std::move(path), 'l', std::move(target), 0777};
}
Entry Hardlink(std::string path, std::string target) {
  return {std::move(path), 'h', std::move(target)};
}

enum class Compression { kNone, kGzip, kZstd };
constexpr time_t kMtime = 1'700'000'000;

// A tar stream of `entries`, in order, written with libarchive.
std::string Tar(const std::vector<Entry>& entries, Compression compression = Compression::kNone) {
  std::string out;
  archive* a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  if (compression == Compression::kGzip) archive_write_add_filter_gzip(a);
  if (compression == Compression::kZstd) archive_write_add_filter_zstd(a);
  // Zero padding after a compressed stream is not part of it (and zstd readers reject it).
  if (compression != Compression::kNone) archive_write_set_bytes_in_last_block(a, 1);
  auto write = [](archive*, void* data, const void* buf, size_t n) -> la_ssize_t {
    static_cast<std::string*>(data)->append(static_cast<const char*>(buf), n);
    return static_cast<la_ssize_t>(n);
  };
  EXPECT_EQ(archive_write_open2(a, &out, nullptr, write, nullptr, nullptr), ARCHIVE_OK);
  for (const auto& e : entries) {
    archive_entry* entry = archive_entry_new();
    archive_entry_set_pathname(entry, e.path.c_str());
    archive_entry_set_perm(entry, e.mode);
    archive_entry_set_uid(entry, e.uid);
    archive_entry_set_gid(entry, e.gid);
    archive_entry_set_mtime(entry, kMtime, 0);
    for (const auto& [name, value] : e.xattrs) {
      archive_entry_xattr_add_entry(entry, name.c_str(), value.data(), value.size());
    }
    switch (e.type) {
      case 'f':
        archive_entry_set_filetype(entry, AE_IFREG);
        archive_entry_set_size(entry, static_cast<la_int64_t>(e.data.size()));
        break;
      case 'd':
        archive_entry_set_filetype(entry, AE_IFDIR);
        break;
      case 'l':
        archive_entry_set_filetype(entry, AE_IFLNK);
        archive_entry_set_symlink(entry, e.data.c_str());
        break;
      case 'h':
        archive_entry_set_filetype(entry, AE_IFREG);
        archive_entry_set_hardlink(entry, e.data.c_str());
        break;
      case 'c':
        archive_entry_set_filetype(entry, AE_IFCHR);
        archive_entry_set_rdev(entry, makedev(1, 3));
        break;
    }
    EXPECT_EQ(archive_write_header(a, entry), ARCHIVE_OK) << archive_error_string(a);
    if (e.type == 'f' && !e.data.empty()) {
      EXPECT_EQ(archive_write_data(a, e.data.data(), e.data.size()),
                static_cast<la_ssize_t>(e.data.size()));
    }
    archive_entry_free(entry);
  }
  EXPECT_EQ(archive_write_close(a), ARCHIVE_OK);
  archive_write_free(a);
  return out;
}

// An image as files in memory (path -> content), written out as a directory or an archive.
using Files = std::map<std::string, std::string>;

std::vector<Entry> FilesAsEntries(const Files& files) {
  std::vector<Entry> entries;
  for (const auto& [path, data] : files) entries.push_back(File(path, data));
  return entries;
}

void WriteTree(const Files& files, const fs::path& dir) {
  for (const auto& [path, data] : files) {
    fs::create_directories((dir / path).parent_path());
    std::ofstream(dir / path, std::ios::binary) << data;
  }
}

struct Layer {
  std::vector<Entry> entries;
  Compression compression = Compression::kNone;
};

json AddBlob(Files& files, const std::string& data, const std::string& media_type) {
  std::string hex = Sha256Hex(data);
  files["blobs/sha256/" + hex] = data;
  return {{"mediaType", media_type}, {"digest", "sha256:" + hex}, {"size", data.size()}};
}

json ConfigFor(const std::string& arch) {
  return {{"architecture", arch},
          {"os", "linux"},
          {"config",
           {{"User", "app"},
            {"Env", {"PATH=/usr/bin", "A=1"}},
            {"Entrypoint", {"/usr/bin/tool"}},
            {"Cmd", {"--serve"}},
            {"WorkingDir", "/opt/app"},
            {"ExposedPorts", {{"80/tcp", json::object()}, {"53/udp", json::object()}}}}},
          {"rootfs", {{"type", "layers"}, {"diff_ids", json::array()}}}};
}

// Adds config, layers and manifest blobs; returns the manifest descriptor.
json AddImage(Files& files, const std::vector<Layer>& layers, const std::string& arch = "amd64") {
  json layer_descriptors = json::array();
  json config = ConfigFor(arch);
  for (const auto& layer : layers) {
    std::string tar = Tar(layer.entries, layer.compression);
    std::string type = "application/vnd.oci.image.layer.v1.tar";
    if (layer.compression == Compression::kGzip) type += "+gzip";
    if (layer.compression == Compression::kZstd) type += "+zstd";
    layer_descriptors.push_back(AddBlob(files, tar, type));
    config["rootfs"]["diff_ids"].push_back("sha256:" + Sha256Hex(Tar(layer.entries)));
  }
  json manifest = {
      {"schemaVersion", 2},
      {"mediaType", "application/vnd.oci.image.manifest.v1+json"},
      {"config", AddBlob(files, config.dump(), "application/vnd.oci.image.config.v1+json")},
      {"layers", layer_descriptors}};
  return AddBlob(files, manifest.dump(), "application/vnd.oci.image.manifest.v1+json");
}

json WithPlatform(json descriptor, const std::string& os, const std::string& arch) {
  descriptor["platform"] = {{"os", os}, {"architecture", arch}};
  return descriptor;
}

void SetIndex(Files& files, const std::vector<json>& manifests) {
  files["index.json"] = json{{"schemaVersion", 2}, {"manifests", manifests}}.dump();
  files["oci-layout"] = R"({"imageLayoutVersion":"1.0.0"})";
}

Files OciLayout(const std::vector<Layer>& layers) {
  Files files;
  SetIndex(files, {WithPlatform(AddImage(files, layers), "linux", "amd64")});
  return files;
}

// What `docker save` wrote before version 25: uncompressed layer.tar files named in manifest.json,
// the config named by its digest.
Files DockerSave(const std::vector<Layer>& layers) {
  Files files;
  json config = ConfigFor("amd64");
  json names = json::array();
  for (size_t i = 0; i < layers.size(); ++i) {
    std::string tar = Tar(layers[i].entries);
    config["rootfs"]["diff_ids"].push_back("sha256:" + Sha256Hex(tar));
    std::string name = fmt::format("{:064x}/layer.tar", i + 1);
    files[name] = tar;
    names.push_back(name);
  }
  std::string config_name = Sha256Hex(config.dump()) + ".json";
  files[config_name] = config.dump();
  files["manifest.json"] =
      json::array({{{"Config", config_name}, {"RepoTags", {"app:1"}}, {"Layers", names}}}).dump();
  return files;
}

// The image every "good" test unpacks: whiteouts of a file and a directory in layer 2, an opaque
// directory in layer 3 whose marker comes after that layer's own entries in the directory.
std::vector<Layer> GoodLayers() {
  Entry tool = File("usr/bin/tool", "#!/bin/sh\n", 04755);
  tool.xattrs["user.vmctl.test"] = "kept";
  return {
      {{Dir("./"),
        Symlink("bin", "usr/bin"),
        Dir("usr/"),
        Dir("usr/bin/"),
        tool,
        Dir("etc/"),
        File("etc/hostname", "base\n"),
        Hardlink("etc/hostname.link", "etc/hostname"),
        File("etc/gone", "x\n"),
        Dir("var/"),
        Dir("var/old/"),
        Dir("var/old/sub/"),
        File("var/old/sub/a", "a\n"),
        Dir("home/"),
        Dir("home/user/", 0700, 1000, 1000),
        File("home/user/.profile", "export A=1\n", 0600, 1000, 1000),
        Dir("opt/"),
        Dir("opt/app/"),
        File("opt/app/old", "old\n"),
        Dir("opt/app/keep/"),
        File("opt/app/keep/lower", "lower\n"),
        Dir("dev/"),
        {"dev/null", 'c', "", 0666},
        Symlink("etc/localtime", "/usr/share/zoneinfo/UTC")},
       Compression::kNone},
      {{File("etc/.wh.gone", ""), File("var/.wh.old", ""), File("etc/motd", "layer 2\n")},
       Compression::kGzip},
      {{Dir("opt/app/"), File("opt/app/new", "new\n"), Dir("opt/app/keep/"),
        File("opt/app/keep/upper", "upper\n"), File("opt/app/.wh..wh..opq", ""),
        File("srv/data/implicit", "no directory entries\n")},
       Compression::kZstd},
  };
}

// Every path below root with its type, mode, owner and content or link target.
std::map<std::string, std::string> Tree(const fs::path& root) {
  std::map<std::string, std::string> out;
  for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator();
       ++it) {
    struct stat st {};
    EXPECT_EQ(::lstat(it->path().c_str(), &st), 0);
    std::string desc = fmt::format("{:o} {}:{}", st.st_mode & 07777, st.st_uid, st.st_gid);
    if (S_ISLNK(st.st_mode)) {
      desc = "l -> " + fs::read_symlink(it->path()).string();
    } else if (S_ISDIR(st.st_mode)) {
      desc = "d " + desc;
    } else {
      std::ifstream in(it->path(), std::ios::binary);
      std::stringstream data;
      data << in.rdbuf();
      desc = "f " + desc + " " + data.str();
    }
    out[it->path().lexically_relative(root).string()] = desc;
  }
  return out;
}

const std::map<std::string, std::string> kGoodTree = {
    {"bin", "l -> usr/bin"},
    {"usr", "d 755 0:0"},
    {"usr/bin", "d 755 0:0"},
    {"usr/bin/tool", "f 4755 0:0 #!/bin/sh\n"},
    {"etc", "d 755 0:0"},
    {"etc/hostname", "f 644 0:0 base\n"},
    {"etc/hostname.link", "f 644 0:0 base\n"},
    {"etc/localtime", "l -> /usr/share/zoneinfo/UTC"},
    {"etc/motd", "f 644 0:0 layer 2\n"},
    {"home", "d 755 0:0"},
    {"home/user", "d 700 1000:1000"},
    {"home/user/.profile", "f 600 1000:1000 export A=1\n"},
    {"opt", "d 755 0:0"},
    {"opt/app", "d 755 0:0"},
    {"opt/app/new", "f 644 0:0 new\n"},
    {"opt/app/keep", "d 755 0:0"},
    {"opt/app/keep/upper", "f 644 0:0 upper\n"},
    {"srv", "d 755 0:0"},
    {"srv/data", "d 755 0:0"},
    {"srv/data/implicit", "f 644 0:0 no directory entries\n"},
    {"dev", "d 755 0:0"},
    {"var", "d 755 0:0"},
};

class OciTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "oci_test.XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    fs::create_directories(root());
    fs::create_directories(outside());
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path root() const { return dir_ / "out/root"; }
  fs::path outside() const { return dir_ / "outside"; }
  fs::path image() const { return dir_ / "image"; }

  fs::path WriteLayout(const Files& files) {
    WriteTree(files, image());
    return image();
  }
  fs::path WriteArchive(const Files& files, Compression compression = Compression::kNone) {
    fs::path path = dir_ / "image.tar";
    std::ofstream(path, std::ios::binary) << Tar(FilesAsEntries(files), compression);
    return path;
  }

  Result<OciConfig> Unpack(const fs::path& source, const OciLimits& limits = {}) {
    return UnpackOciImage(source, root(), limits,
                          [&](const std::string& line) { progress_.push_back(line); });
  }

  // The image is refused with `code` and a message containing `message`; nothing is left.
  void ExpectRefused(const fs::path& source, ErrorCode code, const std::string& message,
                     const OciLimits& limits = {}) {
    auto r = Unpack(source, limits);
    ASSERT_FALSE(r.ok()) << "unpacked " << source;
    EXPECT_EQ(r.error().code(), code) << r.error().message();
    EXPECT_NE(r.error().message().find(message), std::string::npos) << r.error().message();
    EXPECT_TRUE(fs::is_empty(root()));
    for (const auto& e : fs::directory_iterator(root().parent_path())) {
      EXPECT_EQ(e.path(), root()) << "left behind";
    }
    EXPECT_TRUE(fs::is_empty(outside()));
  }
  void ExpectLayerRefused(const std::vector<Entry>& entries, const std::string& message) {
    ExpectRefused(WriteLayout(OciLayout({{entries}})), ErrorCode::kInvalidArgument, message);
  }

  fs::path dir_;
  std::vector<std::string> progress_;
};

TEST_F(OciTest, AppliesLayersWithWhiteoutsAndOpaqueDirectories) {
  auto config = Unpack(WriteLayout(OciLayout(GoodLayers())));
  ASSERT_TRUE(config.ok()) << config.error().message();
  EXPECT_EQ(Tree(root()), kGoodTree);

  struct stat a {
  }, b{};
  ASSERT_EQ(::stat((root() / "etc/hostname").c_str(), &a), 0);
  ASSERT_EQ(::stat((root() / "etc/hostname.link").c_str(), &b), 0);
  EXPECT_EQ(a.st_ino, b.st_ino) << "hard link kept";
  EXPECT_EQ(a.st_mtime, kMtime);
  ASSERT_EQ(::stat((root() / "usr/bin").c_str(), &a), 0);
  EXPECT_EQ(a.st_mtime, kMtime) << "directory times survive their children";
  char xattr[16] = {};
  EXPECT_EQ(::getxattr((root() / "usr/bin/tool").c_str(), "user.vmctl.test", xattr, sizeof(xattr)),
            4);
  EXPECT_STREQ(xattr, "kept");

  EXPECT_EQ(config->user, "app");
  EXPECT_EQ(config->env, (std::vector<std::string>{"PATH=/usr/bin", "A=1"}));
  EXPECT_EQ(config->entrypoint, std::vector<std::string>{"/usr/bin/tool"});
  EXPECT_EQ(config->cmd, std::vector<std::string>{"--serve"});
  EXPECT_EQ(config->working_dir, "/opt/app");
  EXPECT_EQ(config->exposed_ports, (std::vector<std::string>{"53/udp", "80/tcp"}));

  ASSERT_EQ(progress_.size(), 4u);
  EXPECT_TRUE(progress_[1].starts_with("Applying layer 2/3 (sha256:")) << progress_[1];
  EXPECT_NE(progress_[3].find("Skipped 1 device nodes"), std::string::npos) << progress_[3];
  for (const auto& e : fs::directory_iterator(root().parent_path())) {
    EXPECT_EQ(e.path(), root()) << "left behind";
  }
}

TEST_F(OciTest, ArchivesGiveTheSameTree) {
  Files layout = OciLayout(GoodLayers());
  // docker save 25+ writes both; the OCI layout wins (this manifest.json would fail).
  layout["manifest.json"] = R"([{"Config":"missing.json","Layers":[]}])";
  for (auto compression : {Compression::kNone, Compression::kGzip}) {
    auto config = Unpack(WriteArchive(layout, compression));
    ASSERT_TRUE(config.ok()) << config.error().message();
    EXPECT_EQ(Tree(root()), kGoodTree);
    EXPECT_EQ(config->user, "app");
    fs::remove_all(root());
    fs::create_directory(root());
  }

  auto config = Unpack(WriteArchive(DockerSave(GoodLayers())));
  ASSERT_TRUE(config.ok()) << config.error().message();
  EXPECT_EQ(Tree(root()), kGoodTree);
  EXPECT_EQ(config->exposed_ports, (std::vector<std::string>{"53/udp", "80/tcp"}));
  for (const auto& e : fs::directory_iterator(root().parent_path())) {
    EXPECT_EQ(e.path(), root()) << "left behind";
  }
}

TEST_F(OciTest, RefusesPathsOutOfTheRoot) {
  ExpectLayerRefused({File("../escape", "x")},
                     "entry '../escape' is refused: the path contains '..'");
  EXPECT_FALSE(fs::exists(root().parent_path() / "escape"));
  ExpectLayerRefused({File("a/../../escape", "x")}, "contains '..'");
  ExpectLayerRefused({File("/etc/evil", "x")}, "the path is absolute");
}

TEST_F(OciTest, RefusesWritingThroughSymlinks) {
  ExpectLayerRefused(
      {Symlink("link", outside().string()), File("link/evil", "x")},
      "entry 'link/evil' is refused: the path passes through 'link', which is a symbolic");
  ExpectLayerRefused({Symlink("up", "../../../../../../../.." + outside().string()), Dir("up/sub/"),
                      File("up/sub/evil", "x")},
                     "which is a symbolic link");
  // Across layers, and for a whiteout, which would delete through the link.
  fs::path victim = outside() / "victim";
  Files files =
      OciLayout({{{Symlink("link", outside().string())}}, {{File("link/.wh.victim", "")}}});
  std::ofstream(victim) << "keep me";
  auto r = Unpack(WriteLayout(files));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("layer 2/2"), std::string::npos) << r.error().message();
  EXPECT_TRUE(fs::exists(victim));
  fs::remove(victim);
}

TEST_F(OciTest, RefusesHardLinksOutOfTheImage) {
  ExpectLayerRefused({Hardlink("pw", "/etc/passwd")},
                     "entry 'pw' is refused: its hard link target '/etc/passwd' is refused: the "
                     "path is absolute");
  ExpectLayerRefused({Hardlink("pw", "../../outside/file")}, "the path contains '..'");
  fs::path secret = dir_ / "secret";
  fs::create_directory(secret);
  std::ofstream(secret / "file") << "secret";
  ExpectLayerRefused({Symlink("link", secret.string()), Hardlink("pw", "link/file")},
                     "the path passes through 'link', which is a symbolic link");
  ExpectLayerRefused({Hardlink("pw", "missing")}, "'missing' is refused: it is not in the image");
  ExpectLayerRefused({Dir("d/"), Hardlink("pw", "d")}, "'d' is refused: it is a directory");
}

TEST_F(OciTest, RefusesBlobsThatDoNotMatchTheirDigest) {
  Files files = OciLayout(GoodLayers());
  json index = json::parse(files["index.json"]);
  json manifest = json::parse(
      files["blobs/sha256/" + index["manifests"][0]["digest"].get<std::string>().substr(7)]);
  std::string layer =
      "blobs/sha256/" + manifest["layers"][1]["digest"].get<std::string>().substr(7);
  files[layer] = Tar({File("etc/evil", "x")}, Compression::kGzip);
  ExpectRefused(WriteLayout(files), ErrorCode::kInvalidArgument, "does not match its digest");
}

TEST_F(OciTest, EnforcesLimits) {
  std::vector<Entry> many;
  for (int i = 0; i < 5000; ++i) many.push_back(File(fmt::format("f{}", i), ""));
  fs::path image = WriteLayout(OciLayout({{many}}));
  ExpectRefused(image, ErrorCode::kResourceExhausted, "more than 1000 entries",
                OciLimits{.max_entries = 1000});
  ExpectRefused(WriteArchive(OciLayout({{many}})), ErrorCode::kResourceExhausted,
                "more than 1000 entries", OciLimits{.max_entries = 1000});
  fs::remove_all(image);
  image = WriteLayout(OciLayout({{{File("big", std::string(2 << 20, 'x'))}}}));
  ExpectRefused(image, ErrorCode::kResourceExhausted, "more than 1048576 bytes",
                OciLimits{.max_total_bytes = 1 << 20});
  fs::remove_all(image);
  image = WriteLayout(OciLayout({{{File("a", "")}}, {{File("b", "")}}, {{File("c", "")}}}));
  ExpectRefused(image, ErrorCode::kResourceExhausted, "3 layers, more than the limit of 2",
                OciLimits{.max_layers = 2});
}

TEST_F(OciTest, RefusesWhatIsNotAnImage) {
  fs::create_directories(image());
  ExpectRefused(image(), ErrorCode::kInvalidArgument, "has no index.json");
  std::ofstream(dir_ / "junk") << "not a tar archive";
  ExpectRefused(dir_ / "junk", ErrorCode::kInvalidArgument, "it is not a tar archive");
  auto missing = Unpack(dir_ / "nope");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code(), ErrorCode::kNotFound);

  std::ofstream(root() / "file") << "x";
  auto busy = Unpack(WriteLayout(OciLayout(GoodLayers())));
  ASSERT_FALSE(busy.ok());
  EXPECT_NE(busy.error().message().find("must be an existing empty directory"), std::string::npos);
}

TEST_F(OciTest, PicksLinuxAmd64FromANestedIndex) {
  Files files;
  json arm = WithPlatform(AddImage(files, {{{File("arch", "arm64")}}}, "arm64"), "linux", "arm64");
  json amd = WithPlatform(AddImage(files, {{{File("arch", "amd64")}}}), "linux", "amd64");
  json attestation = WithPlatform(
      AddBlob(files, "{}", "application/vnd.oci.image.manifest.v1+json"), "unknown", "unknown");
  json nested = {{"schemaVersion", 2}, {"manifests", {arm, amd, attestation}}};
  SetIndex(files, {AddBlob(files, nested.dump(), "application/vnd.oci.image.index.v1+json")});
  ASSERT_TRUE(Unpack(WriteLayout(files)).ok());
  EXPECT_EQ(Tree(root()), (std::map<std::string, std::string>{{"arch", "f 644 0:0 amd64"}}));
}

TEST_F(OciTest, RefusesMissingOrAmbiguousPlatforms) {
  Files files;
  json arm = WithPlatform(AddImage(files, {{{File("arch", "arm64")}}}, "arm64"), "linux", "arm64");
  json s390 = WithPlatform(AddImage(files, {{{File("arch", "s390x")}}}, "s390x"), "linux", "s390x");
  SetIndex(files, {arm, s390});
  ExpectRefused(WriteLayout(files), ErrorCode::kInvalidArgument,
                "no linux/amd64 manifest (it has linux/arm64, linux/s390x)");

  fs::remove_all(image());
  json amd1 = WithPlatform(AddImage(files, {{{File("arch", "1")}}}), "linux", "amd64");
  json amd2 = WithPlatform(AddImage(files, {{{File("arch", "2")}}}), "linux", "amd64");
  SetIndex(files, {arm, amd1, amd2});
  ExpectRefused(WriteLayout(files), ErrorCode::kInvalidArgument, "2 candidate manifests");

  // Without a platform in the index, the config decides.
  fs::remove_all(image());
  SetIndex(files, {AddImage(files, {{{File("arch", "arm64")}}}, "arm64")});
  ExpectRefused(WriteLayout(files), ErrorCode::kInvalidArgument,
                "the image is for linux/arm64, not linux/amd64");
}

}  // namespace
}  // namespace vmctl::image
