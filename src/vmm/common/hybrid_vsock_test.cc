#include "vmm/common/hybrid_vsock.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/socket.h>

#include <thread>

#include "base/io.h"

namespace vmctl::vmm {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// The host side of a VMM's vsock socket for one connection: reads the CONNECT line, then sends
// `reply` (nothing when empty) and closes, or keeps the connection until the client hangs up.
class FakeVsock {
 public:
  FakeVsock(const std::filesystem::path& path, std::string reply, bool close)
      : listener_(*ListenUnix(path, 0600)) {
    thread_ = std::thread([this, reply = std::move(reply), close] {
      UniqueFd conn(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
      while (line_.empty() || line_.back() != '\n') {
        auto byte = ReadSome(conn.get(), 1);
        if (!byte.ok() || byte->empty()) return;
        line_ += *byte;
      }
      if (!reply.empty()) (void)WriteAll(conn.get(), reply);
      if (close) return;
      while (true) {
        auto data = ReadSome(conn.get(), 4096);
        if (!data.ok() || data->empty()) return;
      }
    });
  }
  ~FakeVsock() { Join(); }
  void Join() {
    if (thread_.joinable()) thread_.join();
  }
  const std::string& line() const { return line_; }  // after Join

 private:
  UniqueFd listener_;
  std::thread thread_;
  std::string line_;
};

class HybridVsockTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/vmctl-vsock-XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    dir_ = dir;
    socket_ = dir_ / "vsock.sock";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::filesystem::path dir_, socket_;
};

TEST_F(HybridVsockTest, HandshakeLeavesTheGuestsFirstBytesInTheStream) {
  FakeVsock vmm(socket_, "OK 1073741824\nhello from the guest", false);
  auto stream = ConnectHybridVsock(socket_, 1024, seconds(5));
  ASSERT_TRUE(stream.ok()) << stream.error().message();
  std::string received;
  while (received.size() < 20) {
    auto data = ReadSome(stream->get(), 64);
    ASSERT_TRUE(data.ok() && !data->empty());
    received += *data;
  }
  EXPECT_EQ(received, "hello from the guest");
  stream->reset();
  vmm.Join();
  EXPECT_EQ(vmm.line(), "CONNECT 1024\n");
}

TEST_F(HybridVsockTest, NoGuestListenerIsUnavailable) {
  FakeVsock vmm(socket_, "", true);
  auto stream = ConnectHybridVsock(socket_, 1024, seconds(5));
  ASSERT_FALSE(stream.ok());
  EXPECT_EQ(stream.error().code(), ErrorCode::kUnavailable);
  EXPECT_NE(stream.error().message().find("connection closed"), std::string::npos)
      << stream.error().message();
}

TEST_F(HybridVsockTest, AnswerOtherThanOkIsUnavailable) {
  for (const char* reply : {"ERR connection refused\n", "OK\n", "OK x\n"}) {
    FakeVsock vmm(socket_, reply, true);
    auto stream = ConnectHybridVsock(socket_, 1024, seconds(5));
    ASSERT_FALSE(stream.ok()) << reply;
    EXPECT_EQ(stream.error().code(), ErrorCode::kUnavailable);
    EXPECT_NE(stream.error().message().find("CONNECT answered"), std::string::npos)
        << stream.error().message();
  }
}

TEST_F(HybridVsockTest, EndlessAnswerIsUnavailable) {
  FakeVsock vmm(socket_, std::string(200, 'x'), true);
  auto stream = ConnectHybridVsock(socket_, 1024, seconds(5));
  ASSERT_FALSE(stream.ok());
  EXPECT_EQ(stream.error().code(), ErrorCode::kUnavailable);
}

TEST_F(HybridVsockTest, SilentVmmIsUnavailable) {
  FakeVsock vmm(socket_, "", false);
  auto stream = ConnectHybridVsock(socket_, 1024, milliseconds(100));
  ASSERT_FALSE(stream.ok());
  EXPECT_EQ(stream.error().code(), ErrorCode::kUnavailable);
  EXPECT_NE(stream.error().message().find("no answer"), std::string::npos);
}

TEST_F(HybridVsockTest, MissingSocketIsUnavailable) {
  auto stream = ConnectHybridVsock(socket_, 1024, seconds(1));
  ASSERT_FALSE(stream.ok());
  EXPECT_EQ(stream.error().code(), ErrorCode::kUnavailable);
}

}  // namespace
}  // namespace vmctl::vmm
