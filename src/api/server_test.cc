// The API server's connection handling against real Unix sockets, with the controller's services
// built on a real SQLite store and copy volumes; the VMM and host network are never reached.
#include "api/server.h"

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <future>
#include <mutex>
#include <thread>

#include "base/io.h"
#include "storage/backends.h"
#include "store/sqlite/sqlite_store.h"

namespace vmctl::api {
namespace {

using namespace std::chrono_literals;

class NoBackend : public vmm::Backend {
 public:
  std::string name() const override { return "none"; }
  vmm::Capabilities capabilities() const override { return {}; }
  Result<std::unique_ptr<vmm::Instance>> Launch(const vmm::LaunchSpec&) override {
    return Unimplemented("no VMM in this test");
  }
  Result<std::unique_ptr<vmm::Instance>> Adopt(const vmm::InstanceHandle&) override {
    return NotFound("no VMM in this test");
  }
};

class NoNetwork : public network::Network {
 public:
  const network::NetworkInfo& info() const override { return info_; }
  Result<void> Attach(const network::VmNic&) override { return Unimplemented("no network"); }
  Result<void> Detach(const network::VmNic&) override { return Ok(); }

 private:
  network::NetworkInfo info_;
};

// Blocks image builds until released, to hold a request in flight.
class Gate {
 public:
  void Enter() {
    std::unique_lock lock(mu_);
    entered_ = true;
    cv_.notify_all();
    cv_.wait(lock, [&] { return open_; });
  }
  bool WaitEntered() {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, 10s, [&] { return entered_; });
  }
  void Open() {
    std::lock_guard lock(mu_);
    open_ = true;
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool entered_ = false, open_ = false;
};

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("vmctl-api-server-test-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_ / "vms");
    auto store = OpenSqliteStore(dir_ / "vmctl.db");
    ASSERT_TRUE(store.ok()) << store.error().message();
    store_ = *std::move(store);
    volumes_ = storage::NewCopyBackend(dir_ / "disks");
    controller::VmServiceOptions options;
    options.state_dir = dir_;
    vms_ = std::make_unique<controller::VmService>(*store_, backend_, *volumes_, network_, options);
    images_ = std::make_unique<controller::ImageService>(
        *store_, *volumes_,
        [this](const controller::ImageBuildRequest&,
               const controller::Progress&) -> Result<ImageRecord> {
          gate_.Enter();
          return Unavailable("this test builds no images");
        },
        dir_ / "images");
  }

  void Start(int max_connections) {
    ServerOptions options;
    options.socket_path = dir_ / "api.sock";
    options.max_connections = max_connections;
    server_ = std::make_unique<Server>(*vms_, *images_, options);
    auto listening = server_->Listen();
    ASSERT_TRUE(listening.ok()) << listening.error().message();
    serving_ = std::async(std::launch::async, [this] { server_->Serve(); });
  }

  void TearDown() override {
    gate_.Open();
    if (server_) server_->Stop();
    // Serve() returns once stopped; only then may the server go.
    if (serving_.valid()) serving_.wait();
    server_.reset();
    images_.reset();
    vms_.reset();
    std::filesystem::remove_all(dir_);
  }

  UniqueFd Connect() {
    auto fd = ConnectUnix(dir_ / "api.sock");
    EXPECT_TRUE(fd.ok()) << fd.error().message();
    return fd.ok() ? *std::move(fd) : UniqueFd();
  }

  // Reads until the server closes the connection (or 10 s pass).
  static std::string ReadToEnd(int fd) {
    std::string all;
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < deadline) {
      if (!WaitReadable(fd, 100ms).ok()) continue;
      auto data = ReadSome(fd, 65536);
      if (!data.ok() || data->empty()) return all;
      all += *data;
    }
    return all + "<still open>";
  }

  static std::string Health(bool keep_alive) {
    return std::string("GET /v1/health HTTP/1.1\r\nHost: vmctl\r\n") +
           (keep_alive ? "" : "Connection: close\r\n") + "\r\n";
  }

  std::filesystem::path dir_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<storage::VolumeBackend> volumes_;
  NoBackend backend_;
  NoNetwork network_;
  Gate gate_;
  std::unique_ptr<controller::VmService> vms_;
  std::unique_ptr<controller::ImageService> images_;
  std::unique_ptr<Server> server_;
  std::future<void> serving_;
};

TEST_F(ServerTest, StopClosesIdleAndHalfSentConnectionsAndWaitsForInFlightRequests) {
  Start(16);
  UniqueFd kept_alive = Connect();
  ASSERT_TRUE(WriteAll(kept_alive.get(), Health(true)).ok());
  ASSERT_TRUE(WaitReadable(kept_alive.get(), 5s).ok());
  auto answer = ReadSome(kept_alive.get(), 65536);
  ASSERT_TRUE(answer.ok());
  EXPECT_NE(answer->find("200 OK"), std::string::npos) << *answer;
  UniqueFd half_sent = Connect();
  ASSERT_TRUE(WriteAll(half_sent.get(), "GET /v1/vms HTTP/1.1\r\nHost: vm").ok());
  UniqueFd silent = Connect();
  UniqueFd building = Connect();
  ASSERT_TRUE(
      WriteAll(building.get(),
               "POST /v1/images/default/build HTTP/1.1\r\nHost: vmctl\r\nContent-Length: 0\r\n\r\n")
          .ok());
  ASSERT_TRUE(gate_.WaitEntered());

  auto stopped = std::async(std::launch::async, [this] { server_->Stop(); });
  // The build's thread still uses the services: Stop waits for it.
  EXPECT_EQ(stopped.wait_for(500ms), std::future_status::timeout);
  gate_.Open();
  ASSERT_EQ(stopped.wait_for(10s), std::future_status::ready);
  ASSERT_EQ(serving_.wait_for(5s), std::future_status::ready);
  // Every connection is closed; the idle ones without waiting out the 60 s idle timeout.
  EXPECT_EQ(ReadToEnd(kept_alive.get()), "");
  EXPECT_EQ(ReadToEnd(half_sent.get()), "");
  EXPECT_EQ(ReadToEnd(silent.get()), "");
  EXPECT_EQ(ReadToEnd(building.get()).find("<still open>"), std::string::npos);
}

TEST_F(ServerTest, ConnectionsBeyondTheCapAreRefusedWith503UntilOneEnds) {
  Start(2);
  UniqueFd first = Connect();
  UniqueFd second = Connect();
  for (int fd : {first.get(), second.get()}) {
    ASSERT_TRUE(WriteAll(fd, Health(true)).ok());
    ASSERT_TRUE(WaitReadable(fd, 5s).ok());
    ASSERT_TRUE(ReadSome(fd, 65536).ok());
  }
  UniqueFd third = Connect();
  std::string refused = ReadToEnd(third.get());
  EXPECT_NE(refused.find("503 Service Unavailable"), std::string::npos) << refused;
  EXPECT_NE(refused.find("too many connections"), std::string::npos) << refused;

  first.reset();
  // The closed connection's thread notices and frees its place.
  bool served = false;
  for (int i = 0; i < 50 && !served; ++i) {
    UniqueFd again = Connect();
    // Until the place is free, the server may refuse and close before the request is written.
    served = WriteAll(again.get(), Health(false)).ok() &&
             ReadToEnd(again.get()).find("200 OK") != std::string::npos;
    if (!served) std::this_thread::sleep_for(100ms);
  }
  EXPECT_TRUE(served);
}

}  // namespace
}  // namespace vmctl::api
