#include "ssh_gateway/text.h"

#include <gtest/gtest.h>

namespace vmctl::ssh_gateway {
namespace {

using namespace std::string_literals;

TEST(Utf8ValidPrefixTest, StopsAtTheFirstByteThatIsNotUtf8) {
  EXPECT_EQ(Utf8ValidPrefix(""), 0u);
  EXPECT_EQ(Utf8ValidPrefix("plain ascii"), 11u);
  EXPECT_EQ(Utf8ValidPrefix("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"), 14u);
  EXPECT_EQ(Utf8ValidPrefix("a\xFF"), 1u);
  EXPECT_EQ(Utf8ValidPrefix("ab\xC3"), 2u) << "truncated sequence";
  EXPECT_EQ(Utf8ValidPrefix("\xC3(x"), 0u) << "bad continuation byte";
  EXPECT_EQ(Utf8ValidPrefix("\xC0\xAF"), 0u) << "overlong '/'";
  EXPECT_EQ(Utf8ValidPrefix("\xE0\x80\xAF"), 0u) << "overlong, three bytes";
  EXPECT_EQ(Utf8ValidPrefix("\xED\xA0\x80"), 0u) << "a surrogate";
  EXPECT_EQ(Utf8ValidPrefix("\xF4\x90\x80\x80"), 0u) << "above U+10FFFF";
  EXPECT_EQ(Utf8ValidPrefix("\x80"), 0u) << "a lone continuation byte";
  EXPECT_EQ(Utf8ValidPrefix("x\0y"s), 3u) << "NUL is UTF-8 (ValidateText rejects it)";
}

TEST(ValidateTextTest, NamesTheOffendingByteAndItsOffset) {
  EXPECT_TRUE(ValidateText("new --name web", "the command", false).ok());
  EXPECT_TRUE(ValidateText("caf\xC3\xA9", "the command", false).ok());
  auto bad = ValidateText("new --name a\xFF", "the command", true);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(bad.error().message(), "the command is not valid UTF-8 (byte 0xFF at offset 12)");
  auto escape = ValidateText("a\x1b[2J", "the SSH user name", false);
  ASSERT_FALSE(escape.ok());
  EXPECT_EQ(escape.error().message(),
            "the SSH user name holds a control character (U+001B at offset 1)");
  EXPECT_FALSE(ValidateText("a\0b"s, "x", true).ok());
  EXPECT_FALSE(ValidateText("a\x7F", "x", true).ok());
  EXPECT_FALSE(ValidateText("a\xC2\x9B", "x", true).ok()) << "C1 CSI";
  EXPECT_TRUE(ValidateText("a\tb\nc\r", "x", true).ok());
  EXPECT_FALSE(ValidateText("a\tb", "x", false).ok());
}

TEST(EscapeForTerminalTest, ControlsAndBadBytesBecomeVisible) {
  EXPECT_EQ(EscapeForTerminal(""), "");
  EXPECT_EQ(EscapeForTerminal("web  running\n\tcaf\xC3\xA9\n"), "web  running\n\tcaf\xC3\xA9\n");
  EXPECT_EQ(EscapeForTerminal("bad name '\x1b]0;owned\x07'"), "bad name '\\x1B]0;owned\\x07'");
  EXPECT_EQ(EscapeForTerminal("a\xFF"
                              "b"),
            "a\\xFFb");
  EXPECT_EQ(EscapeForTerminal("\r\x7F\0"s), "\\x0D\\x7F\\x00");
  EXPECT_EQ(EscapeForTerminal("\xC2\x9B"
                              "31m"),
            "\\u009B31m");
  EXPECT_EQ(EscapeForTerminal("evil\xE2\x80\xAEgpj.exe"), "evil\\u202Egpj.exe");
  EXPECT_EQ(EscapeForTerminal("\xE2\x81\xA6x"), "\\u2066x");
  EXPECT_EQ(EscapeForTerminal("\xF0\x9F\x98\x80"), "\xF0\x9F\x98\x80");
  EXPECT_EQ(EscapeForTerminal("\xE2\x82"), "\\xE2\\x82") << "a truncated sequence";
}

}  // namespace
}  // namespace vmctl::ssh_gateway
