#include "image/builder.h"

#include <gtest/gtest.h>

#include "base/io.h"
#include "base/process.h"

namespace vmctl::image {
namespace {

std::string Xz(const std::string& data) {
  auto out = RunCommand({"xz", "-c", "--format=xz"}, RunOptions{.stdin_data = data});
  EXPECT_TRUE(out.ok());
  return out->out;
}

TEST(ExtractVmlinuxTest, FindsTheElfStreamAmongDecoys) {
  std::string elf = std::string(
                        "\x7F"
                        "ELF",
                        4) +
                    std::string(5000, 'k');
  // A setup header, a decoy magic that does not start a valid stream, a valid stream that is not
  // an ELF, then the kernel, then trailing data (as in a real bzImage).
  std::string decoy_magic("\xFD\x37\x7A\x58\x5A\x00garbage", 13);
  std::string image = std::string(512, '\x01') + decoy_magic + Xz("not a kernel") + Xz(elf) +
                      std::string(64, '\x02');
  auto out = ExtractVmlinux(image);
  ASSERT_TRUE(out.ok()) << out.error().message();
  EXPECT_EQ(*out, elf);
}

TEST(ExtractVmlinuxTest, NoKernelIsNotFound) {
  auto out = ExtractVmlinux(std::string(4096, 'x'));
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.error().code(), ErrorCode::kNotFound);
}

TEST(ParseShowDependsTest, KeepsOrderDropsBuiltinsAndDuplicates) {
  std::string output =
      "insmod /k/lib/modules/6.1.0-56-amd64/kernel/drivers/virtio/virtio.ko \n"
      "insmod /k/lib/modules/6.1.0-56-amd64/kernel/drivers/virtio/virtio_ring.ko \n"
      "builtin crc32c_generic\n"
      "insmod /k/lib/modules/6.1.0-56-amd64/kernel/drivers/virtio/virtio.ko \n"
      "insmod /k/lib/modules/6.1.0-56-amd64/kernel/fs/ext4/ext4.ko.xz \n";
  auto modules = ParseShowDepends(output);
  ASSERT_EQ(modules.size(), 3u);
  EXPECT_EQ(modules[0], "/k/lib/modules/6.1.0-56-amd64/kernel/drivers/virtio/virtio.ko");
  EXPECT_EQ(modules[2], "/k/lib/modules/6.1.0-56-amd64/kernel/fs/ext4/ext4.ko.xz");
}

TEST(Sha256Test, KnownVector) {
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(BuildImageTest, BadSourcesAreRefusedBeforeAnyWork) {
  BuildOptions o;
  o.cache_dir = std::filesystem::temp_directory_path() / "vmctl-builder-test-unused";
  ImageSource bad{.kind = ImageSource::Kind::kDebian, .suite = "bookworm", .packages = {"a b"}};
  auto r = BuildImage(bad, o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_FALSE(std::filesystem::exists(o.cache_dir));
}

TEST(BuildImageTest, ADockerfileWithoutABuilderSaysWhatIsMissing) {
  auto engine = RunCommand({"docker", "info"});
  if (FindProgram("buildah") || (engine.ok() && engine->exit_code == 0)) {
    GTEST_SKIP() << "this host can build Dockerfiles";
  }
  auto dir = std::filesystem::temp_directory_path() / "vmctl-builder-test-dockerfile";
  std::filesystem::create_directories(dir);
  ASSERT_TRUE(WriteFileAtomic(dir / "Dockerfile", "FROM debian:bookworm\n").ok());
  BuildOptions o;
  o.cache_dir = dir / "cache";
  auto r = BuildImage(
      ImageSource{.kind = ImageSource::Kind::kDockerfile, .path = (dir / "Dockerfile").string()},
      o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(r.error().message().find("needs buildah or a running Docker engine"), std::string::npos)
      << r.error().message();
  EXPECT_NE(r.error().message().find("--from-oci"), std::string::npos);
  std::vector<std::string> left;
  for (const auto& e : std::filesystem::directory_iterator(o.cache_dir)) {
    left.push_back(e.path().filename().string());
  }
  EXPECT_EQ(left, std::vector<std::string>{"lock"}) << "a failed build leaves no work directory";
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace vmctl::image
