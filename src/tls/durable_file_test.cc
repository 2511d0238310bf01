#include "tls/durable_file.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include "base/io.h"
#include "tls/test_util.h"

namespace vmctl::tls {
namespace {

namespace fs = std::filesystem;

class DurableFileTest : public TlsTest {
 protected:
  std::vector<std::string> Files() const {
    std::vector<std::string> names;
    for (const auto& f : fs::directory_iterator(dir_)) names.push_back(f.path().filename());
    std::sort(names.begin(), names.end());
    return names;
  }
};

TEST_F(DurableFileTest, ReplacesWithExactlyTheModeDespiteTheUmask) {
  mode_t old_umask = ::umask(0077);
  ASSERT_TRUE(WriteFileDurably(dir_ / "ca.crt", "one", 0644).ok());
  ::umask(old_umask);
  EXPECT_EQ(Mode(dir_ / "ca.crt"), 0644u);
  ASSERT_TRUE(WriteFileDurably(dir_ / "ca.crt", "two", 0600).ok());
  EXPECT_EQ(Mode(dir_ / "ca.crt"), 0600u);
  EXPECT_EQ(*ReadFile(dir_ / "ca.crt"), "two");
  EXPECT_EQ(Files(), std::vector<std::string>{"ca.crt"});
}

TEST_F(DurableFileTest, AFailedWriteLeavesTheOldFileAndNoTempFile) {
  fs::create_directory(dir_ / "taken");
  ASSERT_TRUE(WriteFileAtomic(dir_ / "taken/x", "").ok());
  auto r = WriteFileDurably(dir_ / "taken", "data", 0600);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("rename to"), std::string::npos) << r.error().message();
  EXPECT_EQ(Files(), std::vector<std::string>{"taken"});
  EXPECT_FALSE(WriteFileDurably(dir_ / "missing/file", "data", 0600).ok());
}

}  // namespace
}  // namespace vmctl::tls
