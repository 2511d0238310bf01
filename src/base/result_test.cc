#include "base/result.h"

#include <gtest/gtest.h>

namespace vmctl {
namespace {

Result<int> Half(int v) {
  if (v % 2) return InvalidArgument("odd");
  return v / 2;
}

Result<int> Quarter(int v) {
  VMCTL_ASSIGN_OR_RETURN(int h, Half(v));
  return Half(h);
}

TEST(ResultTest, PropagatesErrors) {
  EXPECT_EQ(*Quarter(8), 2);
  auto r = Quarter(6);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(r.error().message(), "odd");
}

TEST(ErrorTest, MapsOnceToHttpAndExitCode) {
  EXPECT_EQ(NotFound("x").HttpStatus(), 404);
  EXPECT_EQ(NotFound("x").ExitCode(), 3);
  EXPECT_EQ(InvalidArgument("x").HttpStatus(), 400);
  EXPECT_EQ(ResourceExhausted("x").HttpStatus(), 429);
  EXPECT_EQ(ErrorCodeFromName(ErrorCodeName(ErrorCode::kDeadlineExceeded)),
            ErrorCode::kDeadlineExceeded);
  EXPECT_EQ(ErrorCodeFromName("bogus"), ErrorCode::kInternal);
  EXPECT_EQ(NotFound("b").WithContext("a").message(), "a: b");
}

}  // namespace
}  // namespace vmctl
