#include "vmm/qemu/qmp_client.h"

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <thread>

#include "base/io.h"

namespace vmctl::vmm::qemu {
namespace {

using nlohmann::json;

// A scripted QMP server on one end of a socketpair: it answers each request line with the lines
// the script gives for that command (with the request's id filled in).
class FakeQmp {
 public:
  explicit FakeQmp(std::map<std::string, std::vector<json>> script) {
    int sv[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    client_ = UniqueFd(sv[0]);
    server_ = UniqueFd(sv[1]);
    thread_ = std::thread([this, script = std::move(script)] {
      (void)WriteAll(server_.get(), R"({"QMP": {"version": {}, "capabilities": []}})" "\r\n");
      std::string buffer;
      for (;;) {
        auto data = ReadSome(server_.get(), 4096);
        if (!data.ok() || data->empty()) return;
        buffer += *data;
        size_t nl;
        while ((nl = buffer.find('\n')) != std::string::npos) {
          json request = json::parse(buffer.substr(0, nl));
          buffer.erase(0, nl + 1);
          std::string cmd = request["execute"];
          if (cmd == "hangup") {
            server_.reset();
            return;
          }
          auto it = script.find(cmd);
          std::vector<json> answers =
              it == script.end() ? std::vector<json>{json{{"return", json::object()}}} : it->second;
          for (auto answer : answers) {
            if (!answer.contains("event")) answer["id"] = request["id"];
            (void)WriteAll(server_.get(), answer.dump() + "\r\n");
          }
        }
      }
    });
  }
  ~FakeQmp() {
    ::shutdown(client_.get(), SHUT_RDWR);
    thread_.join();
  }
  UniqueFd TakeClient() { return std::move(client_); }

 private:
  UniqueFd client_, server_;
  std::thread thread_;
};

TEST(QmpClientTest, NegotiatesAndMatchesAnswersAcrossEvents) {
  FakeQmp server({{"query-status",
                   {json{{"event", "RESUME"}, {"data", json::object()}},
                    json{{"return", {{"status", "running"}, {"running", true}}}}}}});
  auto qmp = QmpClient::FromStream(server.TakeClient(), std::chrono::seconds(5));
  ASSERT_TRUE(qmp.ok()) << qmp.error().message();
  auto status = (*qmp)->Execute("query-status");
  ASSERT_TRUE(status.ok()) << status.error().message();
  EXPECT_EQ((*status)["status"], "running");
  ASSERT_EQ((*qmp)->events().size(), 1u);
  EXPECT_EQ((*qmp)->events()[0]["event"], "RESUME");
}

TEST(QmpClientTest, ErrorAnswersBecomeErrors) {
  FakeQmp server({{"cont", {json{{"error", {{"class", "GenericError"},
                                           {"desc", "Migration is not finalized yet"}}}}}}});
  auto qmp = QmpClient::FromStream(server.TakeClient(), std::chrono::seconds(5));
  ASSERT_TRUE(qmp.ok());
  auto r = (*qmp)->Execute("cont");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(r.error().message().find("Migration is not finalized yet"), std::string::npos);
}

TEST(QmpClientTest, ServerDisconnectIsUnavailable) {
  FakeQmp server({});
  auto qmp = QmpClient::FromStream(server.TakeClient(), std::chrono::seconds(5));
  ASSERT_TRUE(qmp.ok());
  auto r = (*qmp)->Execute("hangup");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kUnavailable);
}

}  // namespace
}  // namespace vmctl::vmm::qemu
