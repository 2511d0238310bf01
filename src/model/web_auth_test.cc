#include "model/web_auth.h"

#include <gtest/gtest.h>

namespace vmctl {
namespace {

using std::chrono::seconds;

TEST(ParseDurationTest, AcceptsEachUnit) {
  EXPECT_EQ(ParseDuration("45s").value(), seconds(45));
  EXPECT_EQ(ParseDuration("90m").value(), seconds(90 * 60));
  EXPECT_EQ(ParseDuration("12h").value(), seconds(12 * 3600));
  EXPECT_EQ(ParseDuration("30d").value(), seconds(30 * 86400));
  EXPECT_EQ(ParseDuration("3660d").value(), seconds(3660LL * 86400));
}

TEST(ParseDurationTest, RefusesEverythingElseWithOneLine) {
  for (std::string_view bad : {"", "d", "30", "0d", "-1d", "1.5h", "30D", "30 d", " 30d", "1w",
                               "1d2h", "99999999999d", "1h\n", "１d"}) {
    auto parsed = ParseDuration(bad);
    ASSERT_FALSE(parsed.ok()) << bad;
    EXPECT_EQ(parsed.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_EQ(parsed.error().message().find('\n'), std::string::npos) << bad;
  }
  EXPECT_EQ(ParseDuration("30").error().message(),
            "invalid duration '30': use a whole number and s, m, h or d, such as 90m, 12h or 30d");
  EXPECT_EQ(ParseDuration("4000d").error().message(), "duration '4000d' is longer than 10 years");
  EXPECT_EQ(ParseDuration("\xdf\x1b[2J").error().message(),
            "invalid duration: use a whole number and s, m, h or d, such as 90m, 12h or 30d");
}

TEST(FormatDurationTest, UsesTheLargestExactUnit) {
  EXPECT_EQ(FormatDuration(seconds(300)), "5 minutes");
  EXPECT_EQ(FormatDuration(seconds(86400)), "1 day");
  EXPECT_EQ(FormatDuration(seconds(7200)), "2 hours");
  EXPECT_EQ(FormatDuration(seconds(61)), "61 seconds");
  EXPECT_EQ(FormatDuration(seconds(1)), "1 second");
  EXPECT_EQ(FormatDuration(seconds(0)), "0 seconds");
}

}  // namespace
}  // namespace vmctl
