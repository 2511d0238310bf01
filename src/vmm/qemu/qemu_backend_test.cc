// Backend behaviour that needs no guest: accelerator choice, flag parsing, and start failures
// (with stand-in programs instead of QEMU). Real boots are in qemu_vm_test.cc.
#include "vmm/qemu/qemu_backend.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>

#include <atomic>
#include <nlohmann/json.hpp>
#include <thread>

#include "base/io.h"
#include "base/process.h"

namespace vmctl::vmm::qemu {
namespace {

namespace fs = std::filesystem;
using std::chrono::seconds;

TEST(ResolveAccelTest, AutoPicksKvmOnlyWhenTheDeviceOpensReadWrite) {
  // /dev/null stands in for a usable /dev/kvm.
  AccelDecision usable = ResolveAccel(AccelMode::kAuto, "/dev/null");
  EXPECT_EQ(usable.accel, Accel::kKvm);
  EXPECT_NE(usable.reason.find("/dev/null is usable"), std::string::npos) << usable.reason;

  AccelDecision missing = ResolveAccel(AccelMode::kAuto, "/nonexistent/kvm");
  EXPECT_EQ(missing.accel, Accel::kTcg);
  EXPECT_NE(missing.reason.find("/nonexistent/kvm"), std::string::npos) << missing.reason;
  EXPECT_NE(missing.reason.find("No such file"), std::string::npos) << missing.reason;
}

TEST(ResolveAccelTest, AKvmDeviceQemuCannotUseMeansTcg) {
  auto broken = [] { return Result<void>(Unavailable("error: failed to set MSR 0x10a to 0x69")); };
  AccelDecision automatic = ResolveAccel(AccelMode::kAuto, "/dev/null", broken);
  EXPECT_EQ(automatic.accel, Accel::kTcg);
  EXPECT_NE(automatic.reason.find("failed to set MSR"), std::string::npos) << automatic.reason;
  AccelDecision forced = ResolveAccel(AccelMode::kKvm, "/dev/null", broken);
  EXPECT_EQ(forced.accel, Accel::kKvm);
  EXPECT_NE(forced.reason.find("will fail"), std::string::npos) << forced.reason;
  EXPECT_EQ(ResolveAccel(AccelMode::kAuto, "/dev/null", [] { return Result<void>(Ok()); }).accel,
            Accel::kKvm);
}

// The real probe against this host's QEMU: it passes only where a vCPU on KVM runs the firmware
// in time, and a failure says why (on these hosts: too slow, or QEMU's MSR error).
TEST(ProbeKvmTest, RunsQemuAndReportsItsError) {
  auto missing = ProbeKvm("/nonexistent/qemu");
  EXPECT_FALSE(missing.ok());
  if (!FindProgram("qemu-system-x86_64")) GTEST_SKIP() << "no qemu-system-x86_64";
  auto probed = ProbeKvm("qemu-system-x86_64");
  if (!probed.ok()) {
    EXPECT_FALSE(probed.error().message().empty());
  }
}

TEST(ResolveAccelTest, ExplicitChoiceIsKeptAndAnUnusableKvmIsFlagged) {
  EXPECT_EQ(ResolveAccel(AccelMode::kTcg, "/dev/null").accel, Accel::kTcg);
  AccelDecision kvm = ResolveAccel(AccelMode::kKvm, "/nonexistent/kvm");
  EXPECT_EQ(kvm.accel, Accel::kKvm);
  EXPECT_NE(kvm.reason.find("will fail"), std::string::npos) << kvm.reason;
}

TEST(ParseTest, AcceleratorAndMachineFlags) {
  EXPECT_EQ(*ParseAccelMode("auto"), AccelMode::kAuto);
  EXPECT_EQ(*ParseAccelMode("kvm"), AccelMode::kKvm);
  EXPECT_EQ(*ParseAccelMode("tcg"), AccelMode::kTcg);
  EXPECT_EQ(ParseAccelMode("hvf").error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(*ParseMachine("q35"), Machine::kQ35);
  EXPECT_EQ(*ParseMachine("microvm"), Machine::kMicrovm);
  EXPECT_EQ(ParseMachine("pc").error().code(), ErrorCode::kInvalidArgument);
}

TEST(QemuBackendTest, Capabilities) {
  auto backend = NewQemuBackend({});
  EXPECT_EQ(backend->name(), "qemu");
  Capabilities c = backend->capabilities();
  EXPECT_TRUE(c.pause_resume);
  EXPECT_TRUE(c.graceful_shutdown);
  EXPECT_TRUE(c.qcow2_disks);
  EXPECT_TRUE(c.online_disk_resize);
  EXPECT_FALSE(c.snapshot_restore);
  EXPECT_FALSE(c.needs_kvm);
  EXPECT_EQ(c.agent_transport, Capabilities::AgentTransport::kVirtioSerial);
}

class QemuBackendStartTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir_template[] = "/tmp/vqb-XXXXXX";
    ASSERT_NE(::mkdtemp(dir_template), nullptr);
    dir_ = dir_template;
  }
  void TearDown() override {
    if (spawned_.pid > 0) {
      (void)spawned_.Signal(SIGKILL);
      (void)spawned_.WaitExit(seconds(10));
    }
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  LaunchSpec Spec() const {
    LaunchSpec spec;
    spec.vm_id = "unit";
    spec.kernel = dir_ / "vmlinux";
    spec.runtime_dir = dir_;
    spec.console_log = dir_ / "console.log";
    spec.vmm_log = dir_ / "vmm.log";
    return spec;
  }

  // A stand-in "QEMU": a shell script with the given body.
  fs::path Script(const std::string& body) const {
    fs::path path = dir_ / "fake-qemu";
    EXPECT_TRUE(WriteFileAtomic(path, "#!/bin/sh\n" + body + "\n", 0755).ok());
    return path;
  }

  fs::path dir_;
  ProcessRef spawned_;
};

TEST_F(QemuBackendStartTest, MissingBinaryIsNotFound) {
  auto backend = NewQemuBackend({.binary = (dir_ / "no-such-qemu").string()});
  auto r = backend->Launch(Spec());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kNotFound) << r.error().message();
  EXPECT_NE(r.error().message().find("no-such-qemu"), std::string::npos) << r.error().message();
}

TEST_F(QemuBackendStartTest, EarlyExitReportsOnlyThisRunsOutput) {
  ASSERT_TRUE(WriteFileAtomic(Spec().vmm_log, "old run: something unrelated\n").ok());
  auto backend =
      NewQemuBackend({.binary = Script("echo \"fake-qemu: could not open kernel file\" >&2\n"
                                       "echo 'second line' >&2\n"
                                       "exit 1")
                                    .string()});
  auto r = backend->Launch(Spec());
  ASSERT_FALSE(r.ok());
  const std::string& message = r.error().message();
  EXPECT_NE(message.find("exited during start"), std::string::npos) << message;
  EXPECT_NE(message.find("fake-qemu: could not open kernel file"), std::string::npos) << message;
  EXPECT_NE(message.find("second line"), std::string::npos) << message;
  EXPECT_EQ(message.find("old run"), std::string::npos) << message;
}

TEST_F(QemuBackendStartTest, OverlongSocketPathIsRejectedBeforeStarting) {
  LaunchSpec spec = Spec();
  spec.runtime_dir = dir_ / std::string(100, 'd');
  auto backend = NewQemuBackend({.binary = Script("exit 1").string()});
  auto r = backend->Launch(spec);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_FALSE(fs::exists(spec.vmm_log)) << "nothing was started";
}

TEST_F(QemuBackendStartTest, AdoptChecksTheProcessThenItsMonitor) {
  InstanceHandle handle{{}, dir_ / "qmp.sock", dir_ / "agent.sock"};
  auto backend = NewQemuBackend({});

  // A live process without a QMP socket.
  auto sleeper = SpawnDetached({"sleep", "600"}, {.log_file = dir_ / "sleep.log"});
  ASSERT_TRUE(sleeper.ok()) << sleeper.error().message();
  spawned_ = *sleeper;
  handle.process = spawned_;
  auto r = backend->Adopt(handle);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kUnavailable) << r.error().message();

  ASSERT_TRUE(spawned_.Signal(SIGKILL).ok());
  ASSERT_TRUE(spawned_.WaitExit(seconds(10)).ok());
  r = backend->Adopt(handle);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kNotFound) << r.error().message();
}

TEST_F(QemuBackendStartTest, InstanceReconnectsWhenItsMonitorConnectionDrops) {
  InstanceHandle handle{{}, dir_ / "qmp.sock", dir_ / "agent.sock"};
  auto listener = ListenUnix(handle.api_socket, 0600);
  ASSERT_TRUE(listener.ok()) << listener.error().message();
  // A QMP monitor that answers one query-status per connection, then hangs up.
  std::atomic<int> connections = 0;
  std::thread monitor([fd = listener->get(), &connections] {
    for (;;) {
      UniqueFd conn(::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC));
      if (!conn.valid()) return;
      ++connections;
      (void)WriteAll(conn.get(), R"({"QMP": {"version": {}, "capabilities": []}})"
                                 "\r\n");
      std::string buffer;
      for (int answered = 0; answered < 2;) {
        auto data = ReadSome(conn.get(), 4096);
        if (!data.ok() || data->empty()) break;
        buffer += *data;
        for (size_t nl; answered < 2 && (nl = buffer.find('\n')) != std::string::npos;) {
          auto request = nlohmann::json::parse(buffer.substr(0, nl));
          buffer.erase(0, nl + 1);
          nlohmann::json answer = {{"id", request["id"]}, {"return", nlohmann::json::object()}};
          if (request["execute"] == "query-status") answer["return"]["status"] = "running";
          (void)WriteAll(conn.get(), answer.dump() + "\r\n");
          ++answered;
        }
      }
    }
  });
  auto sleeper = SpawnDetached({"sleep", "600"}, {.log_file = dir_ / "sleep.log"});
  ASSERT_TRUE(sleeper.ok()) << sleeper.error().message();
  spawned_ = *sleeper;
  handle.process = spawned_;

  auto backend = NewQemuBackend({});
  auto instance = backend->Adopt(handle);
  ASSERT_TRUE(instance.ok()) << instance.error().message();
  auto first = (*instance)->QueryStatus();
  ASSERT_TRUE(first.ok()) << first.error().message();
  auto second = (*instance)->QueryStatus();
  ASSERT_TRUE(second.ok()) << second.error().message();
  EXPECT_EQ(*second, "running");
  instance->reset();
  // Makes the monitor's accept fail so its thread ends.
  ::shutdown(listener->get(), SHUT_RDWR);
  monitor.join();
  EXPECT_EQ(connections, 2);
}

}  // namespace
}  // namespace vmctl::vmm::qemu
