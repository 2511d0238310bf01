#include "vmm/common/http_unix.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/socket.h>

#include <boost/beast/http.hpp>
#include <thread>

#include "base/io.h"

namespace vmctl::vmm {
namespace {

namespace http = boost::beast::http;
using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;

// One-shot HTTP server on a Unix socket: accepts one connection, reads one request, sends
// `answer` verbatim (nothing when empty), then closes if `close` or else waits for the client to
// hang up, as Firecracker's and Cloud Hypervisor's keep-alive servers do.
class OneShotServer {
 public:
  OneShotServer(const std::filesystem::path& path, std::string answer, bool close)
      : listener_(*ListenUnix(path, 0600)) {
    thread_ = std::thread([this, answer = std::move(answer), close] {
      UniqueFd conn(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
      http::request_parser<http::string_body> parser;
      parser.eager(true);
      std::string pending;
      while (!parser.is_done()) {
        auto data = ReadSome(conn.get(), 4096);
        if (!data.ok() || data->empty()) return;
        pending += *data;
        raw_request_ += *data;
        boost::beast::error_code ec;
        size_t used = parser.put(boost::asio::buffer(pending), ec);
        if (ec && ec != http::error::need_more) return;
        pending.erase(0, used);
      }
      request_ = parser.release();
      if (!answer.empty()) (void)WriteAll(conn.get(), answer);
      if (close) return;
      while (true) {
        auto data = ReadSome(conn.get(), 4096);
        if (!data.ok() || data->empty()) return;
      }
    });
  }
  ~OneShotServer() { Join(); }

  // Returns once the exchange is over (the client hung up, for keep-alive).
  void Join() {
    if (thread_.joinable()) thread_.join();
  }
  // Valid after Join.
  const http::request<http::string_body>& request() const { return request_; }
  const std::string& raw_request() const { return raw_request_; }

 private:
  UniqueFd listener_;
  std::thread thread_;
  http::request<http::string_body> request_;
  std::string raw_request_;
};

class HttpUnixTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/vmctl-http-XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    dir_ = dir;
    socket_ = dir_ / "api.sock";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::filesystem::path dir_, socket_;
};

TEST_F(HttpUnixTest, SendsJsonBodiesAndReadsAnswersOfAKeepAliveServer) {
  std::string answer_body = R"({"state":"Running"})";
  OneShotServer server(socket_,
                       "HTTP/1.1 200 OK\r\nServer: Firecracker API\r\nConnection: keep-alive\r\n"
                       "Content-Type: application/json\r\nContent-Length: " +
                           std::to_string(answer_body.size()) + "\r\n\r\n" + answer_body,
                       false);
  auto res = HttpUnix(socket_, "PATCH", "/vm", json{{"state", "Paused"}}, seconds(5));
  ASSERT_TRUE(res.ok()) << res.error().message();
  EXPECT_EQ(res->status, 200u);
  EXPECT_EQ(res->body, answer_body);
  server.Join();
  EXPECT_EQ(server.request().method(), http::verb::patch);
  EXPECT_EQ(server.request().target(), "/vm");
  EXPECT_EQ(server.request()[http::field::content_type], "application/json");
  EXPECT_EQ(server.request()[http::field::accept], "application/json");
  EXPECT_EQ(server.request().body(), R"({"state":"Paused"})");
}

TEST_F(HttpUnixTest, BodilessPutCarriesContentLengthZeroAnd204HasNoBody) {
  OneShotServer server(socket_, "HTTP/1.1 204 No Content\r\nServer: Cloud Hypervisor API\r\n\r\n",
                       false);
  auto res = HttpUnix(socket_, "PUT", "/api/v1/vm.boot", std::nullopt, seconds(5));
  ASSERT_TRUE(res.ok()) << res.error().message();
  EXPECT_EQ(res->status, 204u);
  EXPECT_EQ(res->body, "");
  server.Join();
  EXPECT_NE(server.raw_request().find("Content-Length: 0\r\n"), std::string::npos)
      << server.raw_request();
}

TEST_F(HttpUnixTest, ErrorStatusesAreAnswersNotTransportErrors) {
  OneShotServer server(
      socket_,
      "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 17\r\n\r\n[\"Error booting\"]", true);
  auto res = HttpUnix(socket_, "PUT", "/api/v1/vm.boot", std::nullopt, seconds(5));
  ASSERT_TRUE(res.ok()) << res.error().message();
  EXPECT_EQ(res->status, 500u);
  EXPECT_EQ(res->body, R"(["Error booting"])");
}

TEST_F(HttpUnixTest, ChunkedAnswersAreDecoded) {
  OneShotServer server(socket_,
                       "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                       "5\r\n{\"a\":\r\n2\r\n1}\r\n0\r\n\r\n",
                       false);
  auto res = HttpUnix(socket_, "GET", "/", std::nullopt, seconds(5));
  ASSERT_TRUE(res.ok()) << res.error().message();
  EXPECT_EQ(res->body, R"({"a":1})");
}

TEST_F(HttpUnixTest, MissingSocketIsUnavailable) {
  auto res = HttpUnix(socket_, "GET", "/", std::nullopt, seconds(5));
  ASSERT_FALSE(res.ok());
  EXPECT_EQ(res.error().code(), ErrorCode::kUnavailable) << res.error().message();
}

TEST_F(HttpUnixTest, ConnectionClosedBeforeTheAnswerIsUnavailable) {
  OneShotServer server(socket_, "", true);
  auto res = HttpUnix(socket_, "PUT", "/api/v1/vm.boot", std::nullopt, seconds(5));
  ASSERT_FALSE(res.ok());
  EXPECT_EQ(res.error().code(), ErrorCode::kUnavailable) << res.error().message();
  EXPECT_NE(res.error().message().find("closed the connection"), std::string::npos);
}

TEST_F(HttpUnixTest, TruncatedAnswerIsUnavailable) {
  OneShotServer server(socket_, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"a\"", true);
  auto res = HttpUnix(socket_, "GET", "/", std::nullopt, seconds(5));
  ASSERT_FALSE(res.ok());
  EXPECT_EQ(res.error().code(), ErrorCode::kUnavailable) << res.error().message();
}

TEST_F(HttpUnixTest, SilentServerIsDeadlineExceeded) {
  OneShotServer server(socket_, "", false);
  auto res = HttpUnix(socket_, "GET", "/", std::nullopt, milliseconds(100));
  ASSERT_FALSE(res.ok());
  EXPECT_EQ(res.error().code(), ErrorCode::kDeadlineExceeded) << res.error().message();
}

TEST_F(HttpUnixTest, NonHttpAnswerIsInternal) {
  OneShotServer server(socket_, "QMP greeting, not HTTP\r\n\r\n", true);
  auto res = HttpUnix(socket_, "GET", "/", std::nullopt, seconds(5));
  ASSERT_FALSE(res.ok());
  EXPECT_EQ(res.error().code(), ErrorCode::kInternal) << res.error().message();
}

TEST_F(HttpUnixTest, RefusesWhatCannotBeSent) {
  auto long_path = HttpUnix(dir_ / std::string(120, 'x'), "GET", "/", std::nullopt, seconds(1));
  ASSERT_FALSE(long_path.ok());
  EXPECT_EQ(long_path.error().code(), ErrorCode::kInvalidArgument);
  auto method = HttpUnix(socket_, "FETCH", "/", std::nullopt, seconds(1));
  ASSERT_FALSE(method.ok());
  EXPECT_EQ(method.error().code(), ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace vmctl::vmm
