#include "base/frame.h"

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <chrono>
#include <vector>

#include "base/unique_fd.h"

namespace vmctl {
namespace {

TEST(FrameTest, DecoderHandlesSplitAndMultipleFrames) {
  std::string wire = EncodeFrame({{"a", 1}}) + EncodeFrame({{"b", "x"}});
  FrameDecoder d;
  d.Feed(wire.substr(0, 3));
  EXPECT_FALSE(d.Next()->has_value());
  d.Feed(wire.substr(3));
  auto first = d.Next();
  ASSERT_TRUE(first.ok());
  EXPECT_EQ((**first)["a"], 1);
  EXPECT_EQ((**d.Next())["b"], "x");
  EXPECT_FALSE(d.Next()->has_value());
}

TEST(FrameTest, RejectsOversizedAndNonObjectFrames) {
  FrameDecoder d;
  d.Feed(std::string("\x7f\xff\xff\xff", 4));
  EXPECT_FALSE(d.Next().ok());
  FrameDecoder d2;
  d2.Feed(std::string("\0\0\0\x02[]", 6));
  EXPECT_FALSE(d2.Next().ok());
}

// One read may carry a great many tiny frames (a hostile guest's agent stream): decoding them
// must cost time linear in the bytes. Erasing each frame from the front took about 40 s here.
TEST(FrameTest, DecodesManyTinyFramesFromOneFeedInLinearTime) {
  const std::string one = EncodeFrame(nlohmann::json::object());
  std::string wire;
  for (int i = 0; i < 400'000; ++i) wire += one;
  FrameDecoder d;
  d.Feed(wire);
  auto start = std::chrono::steady_clock::now();
  int frames = 0;
  for (;;) {
    auto f = d.Next();
    ASSERT_TRUE(f.ok());
    if (!f->has_value()) break;
    ++frames;
  }
  EXPECT_EQ(frames, 400'000);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
  d.Feed(one.substr(0, 2));
  EXPECT_FALSE(d.Next()->has_value());
  d.Feed(one.substr(2));
  EXPECT_TRUE(d.Next()->has_value());
}

TEST(FrameTest, RoundTripsOverSocket) {
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  UniqueFd a(sv[0]), b(sv[1]);
  ASSERT_TRUE(WriteFrame(a.get(), {{"op", "ping"}, {"id", 3}}).ok());
  auto got = ReadFrame(b.get());
  ASSERT_TRUE(got.ok());
  EXPECT_EQ((*got)["id"], 3);
  a.reset();
  auto eof = ReadFrame(b.get());
  ASSERT_FALSE(eof.ok());
  EXPECT_EQ(eof.error().code(), ErrorCode::kUnavailable);
}

TEST(Base64Test, RoundTrips) {
  for (const std::string& s :
       std::vector<std::string>{"", "f", "fo", "foo", "foob", std::string("\0\xff\x10", 3)}) {
    auto enc = Base64Encode(s);
    auto dec = Base64Decode(enc);
    ASSERT_TRUE(dec.ok()) << enc;
    EXPECT_EQ(*dec, s);
  }
  EXPECT_EQ(Base64Encode("foobar"), "Zm9vYmFy");
  EXPECT_FALSE(Base64Decode("Zm9v!mFy").ok());
}

}  // namespace
}  // namespace vmctl
