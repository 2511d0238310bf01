#include "acme/client.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "acme/hook_publisher.h"
#include "acme/https_client.h"
#include "base/io.h"
#include "base/unique_fd.h"

namespace vmctl::acme {
namespace {

TEST(HttpsUrlTest, Splits) {
  auto u = ParseHttpsUrl("https://acme-v02.api.letsencrypt.org/directory");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->host, "acme-v02.api.letsencrypt.org");
  EXPECT_EQ(u->port, "443");
  EXPECT_EQ(u->target, "/directory");
  u = ParseHttpsUrl("https://127.0.0.1:14000");
  EXPECT_EQ(u->port, "14000");
  EXPECT_EQ(u->target, "/");
  u = ParseHttpsUrl("https://[::1]:8443/a?b=c");
  EXPECT_EQ(u->host, "::1");
  EXPECT_EQ(u->target, "/a?b=c");
  u = ParseHttpsUrl("https://h?x");
  EXPECT_EQ(u->target, "/?x");
}

TEST(HttpsUrlTest, Rejects) {
  for (const char* url : {"http://h/", "https://", "https://:443/", "https://u@h/", "https://h/#f",
                          "https://h:0/", "https://h:65536/", "https://h:x/", "https://h:/",
                          "https://[::1/", "https://[::1]x/", "https://h/a b", "HTTPS://h/"}) {
    EXPECT_FALSE(ParseHttpsUrl(url).ok()) << url;
  }
}

TEST(RetryAfterTest, SecondsOrDate) {
  auto now = std::chrono::system_clock::from_time_t(784111777);  // Sun, 06 Nov 1994 08:49:37 GMT
  EXPECT_EQ(ParseRetryAfter("3", now), std::chrono::seconds(3));
  EXPECT_EQ(ParseRetryAfter(" 0 ", now), std::chrono::seconds(0));
  EXPECT_EQ(ParseRetryAfter("Sun, 06 Nov 1994 08:50:07 GMT", now), std::chrono::seconds(30));
  EXPECT_EQ(ParseRetryAfter("Sun, 06 Nov 1994 08:00:00 GMT", now), std::chrono::seconds(0));
  EXPECT_EQ(ParseRetryAfter("Sun, 06 Nov 3988 08:09:37 GMT", now), std::chrono::hours(24));
  EXPECT_EQ(ParseRetryAfter("99999999999999999999999", now), std::chrono::hours(24));
  EXPECT_FALSE(ParseRetryAfter("", now));
  EXPECT_FALSE(ParseRetryAfter("-1", now));
  EXPECT_FALSE(ParseRetryAfter("soon", now));
  EXPECT_FALSE(ParseRetryAfter("Sun, 06 Nov 1994 08:50:07 GMTx", now));
}

TEST(HttpChallengesTest, AddLookupRemove) {
  HttpChallenges c;
  c.Add("tok", "tok.thumb");
  EXPECT_EQ(c.Lookup("tok"), "tok.thumb");
  EXPECT_FALSE(c.Lookup("other"));
  c.Remove("tok");
  EXPECT_FALSE(c.Lookup("tok"));
}

class HookTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("acme-hook-" + std::to_string(getpid()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::filesystem::path Script(const std::string& body) {
    auto path = dir_ / "hook";
    ASSERT_RESULT_OK(WriteFileAtomic(path, "#!/bin/sh\n" + body, 0755));
    return path;
  }
  static void ASSERT_RESULT_OK(const Result<void>& r) {
    ASSERT_TRUE(r.ok()) << r.error().message();
  }
  std::filesystem::path dir_;
};

TEST_F(HookTest, RunsWithOpNameAndValue) {
  auto out = dir_ / "calls";
  HookPublisher hook(Script("echo \"$1 $2 $3\" >> " + out.string() + "\n"));
  ASSERT_TRUE(hook.Add("_acme-challenge.a.test", "v1").ok());
  ASSERT_TRUE(hook.Remove("_acme-challenge.a.test", "v1").ok());
  EXPECT_EQ(*ReadFile(out), "add _acme-challenge.a.test v1\ndel _acme-challenge.a.test v1\n");
}

TEST_F(HookTest, FailureAndTimeoutAreErrors) {
  HookPublisher failing(Script("echo 'zone is locked' >&2\nexit 3\n"));
  auto r = failing.Add("n", "v");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kUnavailable);
  EXPECT_NE(r.error().message().find("failed (exit 3): zone is locked"), std::string::npos)
      << r.error().message();
  HookPublisher slow(Script("sleep 10\n"), std::chrono::milliseconds(200));
  EXPECT_EQ(slow.Add("n", "v").error().code(), ErrorCode::kDeadlineExceeded);
  HookPublisher missing(dir_ / "nope");
  EXPECT_FALSE(missing.Add("n", "v").ok());
}

TEST(HttpsClientTest, BadBundleIsAClearError) {
  auto c = HttpsClient::Create({"/nonexistent/bundle.pem"});
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().message().find("/nonexistent/bundle.pem"), std::string::npos);
}

TEST(HttpsClientTest, AServerThatNeverAnswersTimesOut) {
  // A listening socket nobody accepts on: the kernel completes the TCP handshake, TLS never.
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  ASSERT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(fd.get(), 4), 0);
  ASSERT_EQ(::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len), 0);
  auto client = HttpsClient::Create({.timeout = std::chrono::milliseconds(300)});
  ASSERT_TRUE(client.ok());
  auto start = std::chrono::steady_clock::now();
  auto res = (*client)->Request(
      "GET", "https://127.0.0.1:" + std::to_string(ntohs(addr.sin_port)) + "/dir");
  ASSERT_FALSE(res.ok());
  EXPECT_EQ(res.error().code(), ErrorCode::kDeadlineExceeded);
  EXPECT_NE(res.error().message().find("TLS handshake GET https://127.0.0.1:"), std::string::npos)
      << res.error().message();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
}

}  // namespace
}  // namespace vmctl::acme
