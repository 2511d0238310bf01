#include "base/io.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

namespace vmctl {
namespace {

TEST(CapAppendedLogTest, KeepsTheTailAndTheWriterKeepsAppending) {
  auto path = std::filesystem::temp_directory_path() /
              ("cap_log_test_" + std::to_string(::getpid()) + ".log");
  UniqueFd writer(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644));
  ASSERT_TRUE(writer.valid());
  std::string lines;
  for (int i = 0; i < 1000; ++i) lines += "line " + std::to_string(i) + "\n";
  ASSERT_TRUE(WriteAll(writer.get(), lines).ok());
  EXPECT_FALSE(*CapAppendedLog(path, lines.size(), 100));
  EXPECT_TRUE(*CapAppendedLog(path, 1000, 100));
  auto cut = ReadFile(path);
  ASSERT_TRUE(cut.ok());
  EXPECT_LE(cut->size(), 100u);
  EXPECT_TRUE(cut->starts_with("line ")) << "cut at a line start: " << *cut;
  EXPECT_TRUE(cut->ends_with("line 999\n"));
  // The writer's next line lands after the kept tail, not at its old offset.
  ASSERT_TRUE(WriteAll(writer.get(), "after\n").ok());
  EXPECT_EQ(*ReadFile(path), *cut + "after\n");
  EXPECT_FALSE(*CapAppendedLog(path.string() + ".missing", 10, 5));
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace vmctl
