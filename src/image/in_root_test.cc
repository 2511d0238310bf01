#include "image/in_root.h"

#include <gtest/gtest.h>
#include <unistd.h>

namespace vmctl::image {
namespace {

namespace fs = std::filesystem;

TEST(InRootTest, LinksAreFollowedInsideTheRootOnly) {
  fs::path root = fs::path("/tmp") / ("in-root-" + std::to_string(::getpid()));
  fs::remove_all(root);
  fs::create_directories(root / "usr/lib");
  fs::create_directories(root / "real/etc");
  fs::create_symlink("usr/lib", root / "lib");                // merged /usr, relative
  fs::create_symlink("/usr/lib", root / "lib64");             // absolute: means the image's
  fs::create_symlink("/real/etc", root / "etc");              // absolute, to a directory
  fs::create_symlink("../../../../..", root / "usr/lib/up");  // climbs past the root
  fs::create_symlink("loop2", root / "loop1");
  fs::create_symlink("loop1", root / "loop2");

  EXPECT_EQ(*InRoot(root, "lib/modules/6.1"), root / "usr/lib/modules/6.1");
  EXPECT_EQ(*InRoot(root, "/lib64/x"), root / "usr/lib/x");
  EXPECT_EQ(*InRoot(root, "etc/hostname"), root / "real/etc/hostname");
  EXPECT_EQ(*InRoot(root, "usr/lib/up/etc/passwd"), root / "real/etc/passwd");
  EXPECT_EQ(*InRoot(root, "../../etc/shadow"), root / "real/etc/shadow");
  EXPECT_EQ(*InRoot(root, "opt/vmctl/bin"), root / "opt/vmctl/bin");
  auto loop = InRoot(root, "loop1/x");
  ASSERT_FALSE(loop.ok());
  EXPECT_EQ(loop.error().code(), ErrorCode::kInvalidArgument);
  fs::remove_all(root);
}

}  // namespace
}  // namespace vmctl::image
