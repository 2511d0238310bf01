#include "base/ascii.h"

#include <gtest/gtest.h>

namespace vmctl {
namespace {

TEST(AsciiTest, LowercasesAsciiLettersOnly) {
  EXPECT_EQ(LowercaseAscii("Web.VMCTL.localhost"), "web.vmctl.localhost");
  // Bytes of UTF-8 sequences (here "Ä") pass through, whatever the locale.
  EXPECT_EQ(LowercaseAscii("\xc3\x84X"), "\xc3\x84x");
  std::string text = "MBit";
  LowercaseAsciiInPlace(text);
  EXPECT_EQ(text, "mbit");
}

TEST(AsciiTest, EqualsIgnoringCaseFoldsAsciiOnly) {
  EXPECT_TRUE(EqualsIgnoringAsciiCase("Domain", "domain"));
  EXPECT_FALSE(EqualsIgnoringAsciiCase("Domain", "domains"));
  EXPECT_FALSE(EqualsIgnoringAsciiCase("\xc4", "\xe4"));
  // The view ends where its buffer does (what Boost 1.81's beast::iequals reads past).
  std::string buffer = "xDomain";
  EXPECT_TRUE(EqualsIgnoringAsciiCase(std::string_view(buffer).substr(1), "domain"));
}

}  // namespace
}  // namespace vmctl
