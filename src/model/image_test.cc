#include "model/image.h"

#include <gtest/gtest.h>

namespace vmctl {
namespace {

TEST(ImageNameTest, AcceptsDnsLikeNamesOnly) {
  for (const char* good : {"default", "web-1", "py3.12", "a", "my_image"}) {
    EXPECT_TRUE(ValidateImageName(good).ok()) << good;
  }
  for (const char* bad : {"", "-x", "Upper", "a/b", "../x", "a b", ".hidden"}) {
    EXPECT_EQ(ValidateImageName(bad).error().code(), ErrorCode::kInvalidArgument) << bad;
  }
  EXPECT_FALSE(ValidateImageName(std::string(65, 'a')).ok());
}

TEST(ImageSourceTest, DebianSuitesAndPackagesAreChecked) {
  ImageSource s;
  s.packages = {"curl", "python3", "libc6=2.36-9", "g++"};
  EXPECT_TRUE(ValidateImageSource(s).ok());
  EXPECT_EQ(DescribeImageSource(s), "debian:bookworm+curl,python3,libc6=2.36-9,g++");
  s.packages = {"curl;rm -rf /"};
  auto bad = ValidateImageSource(s);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message().find("not a package name"), std::string::npos);
  s.packages = {"--allow-unauthenticated"};
  EXPECT_FALSE(ValidateImageSource(s).ok());
  s.packages.clear();
  s.suite = "../etc";
  EXPECT_FALSE(ValidateImageSource(s).ok());
}

TEST(ImageSourceTest, PathsMustBeAbsolute) {
  ImageSource s{.kind = ImageSource::Kind::kOci, .path = "image.tar"};
  EXPECT_NE(ValidateImageSource(s).error().message().find("must be absolute"), std::string::npos);
  s.path = "/srv/image.tar";
  EXPECT_TRUE(ValidateImageSource(s).ok());
  EXPECT_EQ(DescribeImageSource(s), "oci:/srv/image.tar");
  s.kind = ImageSource::Kind::kDockerfile;
  s.context = "ctx";
  EXPECT_FALSE(ValidateImageSource(s).ok());
}

}  // namespace
}  // namespace vmctl
