#include "agent/guest/ops.h"

#include <gtest/gtest.h>

namespace vmctl::agent::guest {
namespace {

TEST(LookupUserTest, ParsesPasswd) {
  std::string passwd =
      "root:x:0:0:root:/root:/bin/bash\n"
      "dev:x:1000:1001:Dev,,,:/home/dev:/bin/bash\n";
  auto dev = LookupUser(passwd, "dev");
  ASSERT_TRUE(dev.ok());
  EXPECT_EQ(dev->home, "/home/dev");
  EXPECT_EQ(dev->uid, 1000u);
  EXPECT_EQ(dev->gid, 1001u);
  auto none = LookupUser(passwd, "de");
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().code(), ErrorCode::kNotFound);
}

TEST(TimeSyncTest, RejectsMissingTime) {
  EXPECT_EQ(TimeSync(nlohmann::json::object()).error().code(), ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace vmctl::agent::guest
