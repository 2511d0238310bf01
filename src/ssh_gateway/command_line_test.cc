#include "ssh_gateway/command_line.h"

#include <gtest/gtest.h>

namespace vmctl::ssh_gateway {
namespace {

using Words = std::vector<std::string>;

TEST(SplitCommandLineTest, WordsQuotesAndEscapes) {
  EXPECT_EQ(*SplitCommandLine("  new --name  web\t--memory 1G "),
            (Words{"new", "--name", "web", "--memory", "1G"}));
  EXPECT_EQ(*SplitCommandLine(R"(ssh-key add 'ssh-ed25519 AAAA me@host')"),
            (Words{"ssh-key", "add", "ssh-ed25519 AAAA me@host"}));
  EXPECT_EQ(*SplitCommandLine(R"(a "b \"c\" $d" e\ f '')"), (Words{"a", "b \"c\" $d", "e f", ""}));
  EXPECT_EQ(*SplitCommandLine("x;reboot $(id)"), (Words{"x;reboot", "$(id)"}));
  EXPECT_TRUE(SplitCommandLine("")->empty());
}

TEST(SplitCommandLineTest, RefusesUnterminatedQuotesAndHugeLines) {
  EXPECT_EQ(SplitCommandLine("echo 'oops").error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(SplitCommandLine("echo \"oops").error().code(), ErrorCode::kInvalidArgument);
  auto huge = SplitCommandLine(std::string(kMaxCommandLine + 1, 'a'));
  ASSERT_FALSE(huge.ok());
  EXPECT_NE(huge.error().message().find("too long"), std::string::npos);
}

TEST(SplitCommandLineTest, RefusesBytesThatAreNotTextWithTheirOffset) {
  auto name = SplitCommandLine("new --name a\xff");
  ASSERT_FALSE(name.ok());
  EXPECT_EQ(name.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(name.error().message(), "the command is not valid UTF-8 (byte 0xFF at offset 12)");
  EXPECT_FALSE(SplitCommandLine("share add x '\xff'").ok()) << "quoted too";
  auto escape = SplitCommandLine("show \x1b[2J");
  ASSERT_FALSE(escape.ok());
  EXPECT_NE(escape.error().message().find("control character (U+001B at offset 5)"),
            std::string::npos);
  EXPECT_FALSE(SplitCommandLine(std::string("ls\0x", 4)).ok());
  EXPECT_EQ(*SplitCommandLine("share add web b\xc3\xb6"
                              "b@example.com\r\n"),
            (Words{"share", "add", "web",
                   "b\xc3\xb6"
                   "b@example.com"}));
}

}  // namespace
}  // namespace vmctl::ssh_gateway
