#include <gtest/gtest.h>

#include "cli/command_support.h"

namespace vmctl::cli {
namespace {

TEST(ParseWebPortArgumentTest, APortOrDefault) {
  EXPECT_EQ(*ParseWebPortArgument("8080"), 8080);
  EXPECT_EQ(*ParseWebPortArgument("65535"), 65535);
  EXPECT_EQ(*ParseWebPortArgument("0"), 0);
  EXPECT_EQ(*ParseWebPortArgument("default"), 0);
  for (const char* bad : {"", "65536", "-1", "80x", " 80", "Default", "1e3", "99999999999"}) {
    auto r = ParseWebPortArgument(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
  }
  EXPECT_EQ(ParseWebPortArgument("8\xff").error().message(),
            "bad port '8\\xff': give 1-65535, or 0 or \"default\"");
}

}  // namespace
}  // namespace vmctl::cli
