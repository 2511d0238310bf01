#include "vmm/qemu/qmp_client.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/socket.h>

#include <functional>
#include <mutex>
#include <thread>

#include "base/io.h"

namespace vmctl::vmm::qemu {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;

constexpr std::string_view kGreeting =
    R"({"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}}, "capabilities": []}})";

// What the fake server sends back for one request: raw lines, or hang up when empty.
using Script = std::function<std::vector<std::string>(const json& request)>;

// The usual answer: {"return": value} with the request's id.
std::string Return(const json& request, json value = json::object()) {
  return json{{"return", std::move(value)}, {"id", request["id"]}}.dump();
}

// How the fake server opens the session.
enum class Opening { kGreet, kSilent, kHangUp };

// A QMP server on one end of a socketpair, speaking QEMU's framing (one JSON object per line,
// "\r\n" terminated). It sends the greeting, then answers each request line with script(request).
class FakeQmp {
 public:
  explicit FakeQmp(Script script, Opening opening = Opening::kGreet) {
    int sv[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    client_ = UniqueFd(sv[0]);
    server_ = UniqueFd(sv[1]);
    thread_ = std::thread([this, script = std::move(script), opening] {
      if (opening == Opening::kHangUp) {
        ::shutdown(server_.get(), SHUT_RDWR);
        return;
      }
      if (opening == Opening::kGreet) {
        (void)WriteAll(server_.get(), std::string(kGreeting) + "\r\n");
      }
      std::string buffer;
      for (;;) {
        auto data = ReadSome(server_.get(), 4096);
        if (!data.ok() || data->empty()) return;
        buffer += *data;
        for (size_t nl; (nl = buffer.find('\n')) != std::string::npos;) {
          json request = json::parse(buffer.substr(0, nl));
          buffer.erase(0, nl + 1);
          {
            std::lock_guard lock(mu_);
            requests_.push_back(request);
          }
          std::vector<std::string> lines = script(request);
          if (lines.empty()) {
            ::shutdown(server_.get(), SHUT_RDWR);
            return;
          }
          for (const auto& line : lines) (void)WriteAll(server_.get(), line + "\r\n");
        }
      }
    });
  }
  ~FakeQmp() {
    // Unblocks the server's read whether or not the client still holds its end.
    ::shutdown(server_.get(), SHUT_RDWR);
    thread_.join();
  }

  UniqueFd TakeClient() { return std::move(client_); }
  std::vector<json> requests() {
    std::lock_guard lock(mu_);
    return requests_;
  }

 private:
  UniqueFd client_, server_;
  std::mutex mu_;
  std::vector<json> requests_;
  std::thread thread_;
};

// Answers qmp_capabilities and then defers to `then`.
Script AfterCapabilities(Script then) {
  return [then = std::move(then)](const json& request) -> std::vector<std::string> {
    if (request["execute"] == "qmp_capabilities") return {Return(request)};
    return then(request);
  };
}

Result<std::unique_ptr<QmpClient>> Negotiate(FakeQmp& server) {
  return QmpClient::FromStream(server.TakeClient(), std::chrono::seconds(10));
}

TEST(QmpClientTest, NegotiatesCapabilitiesBeforeAnyCommand) {
  FakeQmp server(AfterCapabilities([](const json& request) -> std::vector<std::string> {
    return {Return(request, {{"status", "running"}, {"running", true}})};
  }));
  auto qmp = Negotiate(server);
  ASSERT_TRUE(qmp.ok()) << qmp.error().message();
  auto status = (*qmp)->Execute("query-status");
  ASSERT_TRUE(status.ok()) << status.error().message();
  EXPECT_EQ((*status)["status"], "running");
  auto requests = server.requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0]["execute"], "qmp_capabilities");
  EXPECT_EQ(requests[1]["execute"], "query-status");
  EXPECT_NE(requests[0]["id"], requests[1]["id"]);
  EXPECT_FALSE(requests[1].contains("arguments"));
}

TEST(QmpClientTest, PassesArguments) {
  FakeQmp server(AfterCapabilities([](const json& request) -> std::vector<std::string> {
    return {Return(request, request["arguments"])};
  }));
  auto qmp = Negotiate(server);
  ASSERT_TRUE(qmp.ok());
  auto r = (*qmp)->Execute("migrate", {{"uri", "exec:cat > /tmp/x"}});
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ((*r)["uri"], "exec:cat > /tmp/x");
}

TEST(QmpClientTest, SkipsAndQueuesEventsAndStaleAnswers) {
  FakeQmp server(AfterCapabilities([](const json& request) -> std::vector<std::string> {
    return {
        R"({"timestamp": {"seconds": 1, "microseconds": 2}, "event": "STOP"})",
        // An answer to an earlier command that timed out.
        json{{"return", {{"status", "stale"}}}, {"id", -1}}.dump(),
        R"({"timestamp": {"seconds": 1, "microseconds": 3}, "event": "RESUME"})",
        Return(request, {{"status", "running"}}),
        R"({"event": "RESET", "data": {"guest": true, "reason": "guest-reset"}})",
    };
  }));
  auto qmp = Negotiate(server);
  ASSERT_TRUE(qmp.ok());
  auto status = (*qmp)->Execute("query-status");
  ASSERT_TRUE(status.ok()) << status.error().message();
  EXPECT_EQ((*status)["status"], "running");

  // RESET came after the answer: it is read by the next command.
  auto events = (*qmp)->TakeEvents();
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0]["event"], "STOP");
  EXPECT_EQ(events[1]["event"], "RESUME");
  EXPECT_TRUE((*qmp)->TakeEvents().empty());

  ASSERT_TRUE((*qmp)->Execute("query-status").ok());
  events = (*qmp)->TakeEvents();
  ASSERT_GE(events.size(), 1u);
  EXPECT_EQ(events[0]["event"], "RESET");
  EXPECT_EQ(events[0]["data"]["reason"], "guest-reset");
}

TEST(QmpClientTest, KeepsOnlyTheNewestEvents) {
  FakeQmp server(AfterCapabilities([](const json& request) -> std::vector<std::string> {
    std::vector<std::string> lines;
    for (size_t i = 0; i < QmpClient::kMaxEvents + 10; ++i) {
      lines.push_back(json{{"event", "RTC_CHANGE"}, {"data", {{"offset", i}}}}.dump());
    }
    lines.push_back(Return(request));
    return lines;
  }));
  auto qmp = Negotiate(server);
  ASSERT_TRUE(qmp.ok());
  ASSERT_TRUE((*qmp)->Execute("query-status").ok());
  auto events = (*qmp)->TakeEvents();
  ASSERT_EQ(events.size(), QmpClient::kMaxEvents);
  EXPECT_EQ(events.front()["data"]["offset"], 10);
}

TEST(QmpClientTest, ErrorAnswersBecomeErrorsWithQemuDescription) {
  FakeQmp server(AfterCapabilities([](const json& request) -> std::vector<std::string> {
    if (request["execute"] == "cont") {
      return {json{{"error", {{"class", "GenericError"}, {"desc", "Migration is not finalized"}}},
                   {"id", request["id"]}}
                  .dump()};
    }
    if (request["execute"] == "device_del") {
      return {json{{"error", {{"class", "DeviceNotFound"}, {"desc", "Device 'x' not found"}}},
                   {"id", request["id"]}}
                  .dump()};
    }
    return {json{
        {"error",
         {{"class", "CommandNotFound"}, {"desc", "The command frobnicate has not been found"}}},
        {"id", request["id"]}}
                .dump()};
  }));
  auto qmp = Negotiate(server);
  ASSERT_TRUE(qmp.ok());

  auto r = (*qmp)->Execute("cont");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_EQ(r.error().message(), "QEMU cont failed: Migration is not finalized (GenericError)");

  r = (*qmp)->Execute("device_del", {{"id", "x"}});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kNotFound);

  r = (*qmp)->Execute("frobnicate");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kUnimplemented);
  EXPECT_NE(r.error().message().find("has not been found"), std::string::npos);

  // The session survives error answers.
  EXPECT_EQ(server.requests().size(), 4u);
}

// Found by fuzzing QMP replies: a non-string class or desc threw from json::value.
TEST(QmpClientTest, ErrorAnswersOfTheWrongShapeAreStillErrors) {
  FakeQmp server(AfterCapabilities([](const json& request) -> std::vector<std::string> {
    return {json{{"error", {{"class", 1}, {"desc", {"x"}}}}, {"id", request["id"]}}.dump()};
  }));
  auto qmp = Negotiate(server);
  ASSERT_TRUE(qmp.ok());
  auto r = (*qmp)->Execute("cont");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_EQ(r.error().message(), "QEMU cont failed: no description (GenericError)");
}

TEST(QmpClientTest, ServerDisconnectIsUnavailable) {
  FakeQmp server(AfterCapabilities([](const json&) { return std::vector<std::string>{}; }));
  auto qmp = Negotiate(server);
  ASSERT_TRUE(qmp.ok());
  auto r = (*qmp)->Execute("query-status");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kUnavailable) << r.error().message();
  // Every later command fails the same way instead of blocking.
  r = (*qmp)->Execute("query-status");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kUnavailable) << r.error().message();
}

TEST(QmpClientTest, DisconnectBeforeGreetingIsUnavailable) {
  FakeQmp server([](const json&) { return std::vector<std::string>{}; }, Opening::kHangUp);
  auto qmp = Negotiate(server);
  ASSERT_FALSE(qmp.ok());
  EXPECT_EQ(qmp.error().code(), ErrorCode::kUnavailable) << qmp.error().message();
}

TEST(QmpClientTest, SilentMonitorIsUnavailable) {
  // A monitor busy with another client accepts the connection but never greets.
  FakeQmp server([](const json&) { return std::vector<std::string>{}; }, Opening::kSilent);
  auto qmp = QmpClient::FromStream(server.TakeClient(), milliseconds(100));
  ASSERT_FALSE(qmp.ok());
  EXPECT_EQ(qmp.error().code(), ErrorCode::kUnavailable);
  EXPECT_NE(qmp.error().message().find("no greeting"), std::string::npos);
}

TEST(QmpClientTest, ConnectsOverUnixSocketAndReportsMissingSocket) {
  char dir_template[] = "/tmp/qmp-test-XXXXXX";
  ASSERT_NE(::mkdtemp(dir_template), nullptr);
  std::filesystem::path dir(dir_template);
  std::filesystem::path socket = dir / "qmp.sock";

  auto missing = QmpClient::Connect(socket, std::chrono::seconds(1));
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code(), ErrorCode::kUnavailable);
  EXPECT_NE(missing.error().message().find(socket.string()), std::string::npos);

  auto listener = ListenUnix(socket, 0600);
  ASSERT_TRUE(listener.ok()) << listener.error().message();
  std::thread server([&] {
    UniqueFd conn(::accept4(listener->get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!conn.valid()) return;
    (void)WriteAll(conn.get(), std::string(kGreeting) + "\r\n");
    // Answer qmp_capabilities (id 1), then wait for the client to hang up.
    (void)ReadSome(conn.get(), 4096);
    (void)WriteAll(conn.get(), R"({"return": {}, "id": 1})"
                               "\r\n");
    while (true) {
      auto data = ReadSome(conn.get(), 4096);
      if (!data.ok() || data->empty()) return;
    }
  });
  {
    auto qmp = QmpClient::Connect(socket, std::chrono::seconds(10));
    EXPECT_TRUE(qmp.ok()) << qmp.error().message();
  }
  server.join();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace vmctl::vmm::qemu
