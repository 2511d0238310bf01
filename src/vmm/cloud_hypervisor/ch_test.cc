// Cloud Hypervisor cannot run without KVM, so the driver is verified against the reference
// OpenAPI spec only: golden request bodies, schema validation of every body, and full launch and
// control flows against fake_vmm, which replays the spec's documented answers.
#include <gtest/gtest.h>

#include <functional>

#include "agent/client.h"
#include "testing/openapi/driver_fixture.h"
#include "vmm/cloud_hypervisor/backend.h"
#include "vmm/cloud_hypervisor/ch_api.h"

namespace vmctl::vmm::cloud_hypervisor {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;
using vmctl::testing::CodeOf;

class ChTest : public vmctl::testing::DriverTest {
 protected:
  void SetUp() override { SetUpSpec("cloud-hypervisor-openapi.yaml"); }

  std::unique_ptr<Backend> FakeBackend() { return NewCloudHypervisorBackend({VMCTL_FAKE_VMM}); }

  std::unique_ptr<Instance> Launch() {
    auto instance = FakeBackend()->Launch(Spec(DiskSpec::Format::kQcow2));
    EXPECT_TRUE(instance.ok()) << instance.error().message();
    return instance.ok() ? std::move(instance).value() : nullptr;
  }

  void ExpectValid(const std::string& endpoint, const json& body) {
    auto valid = spec_.ValidateRequest("PUT", "/api/v1/" + endpoint, body);
    EXPECT_TRUE(valid.ok()) << endpoint << ": " << valid.error().message();
  }
};

TEST_F(ChTest, VmConfigMatchesGoldenAndTheSpec) {
  json config = VmConfigFor(Spec(DiskSpec::Format::kQcow2));
  ExpectGolden(WithFixedPaths(config), "src/vmm/cloud_hypervisor/testdata/vm_create.json");
  ExpectValid("vm.create", config);
  EXPECT_EQ(config["payload"]["cmdline"], "root=/dev/vda rw panic=-1 console=ttyS0");
  EXPECT_EQ(config["serial"], json({{"mode", "File"}, {"file", (dir_ / "console.log").string()}}));
  EXPECT_EQ(config["console"], json({{"mode", "Off"}}));
  EXPECT_EQ(config["memory"]["size"], 1024LL * 1024 * 1024);
}

TEST_F(ChTest, MinimalVmConfigMatchesGoldenAndTheSpec) {
  json config = VmConfigFor(MinimalSpec());
  ExpectGolden(WithFixedPaths(config), "src/vmm/cloud_hypervisor/testdata/vm_create_minimal.json");
  ExpectValid("vm.create", config);
  EXPECT_EQ(config["payload"]["cmdline"], "console=ttyS0");
  EXPECT_FALSE(config["payload"].contains("initramfs"));
  EXPECT_FALSE(config.contains("net"));
}

TEST_F(ChTest, OtherBodiesMatchGoldenAndTheSpec) {
  json bodies = {{"vm.resize cpus and memory", ResizeBody(4, int64_t{2} << 30)},
                 {"vm.resize memory", ResizeBody(std::nullopt, int64_t{1} << 30)},
                 {"vm.resize cpus", ResizeBody(3, std::nullopt)},
                 {"vm.resize-disk", ResizeDiskBody(1, int64_t{3} << 30)},
                 {"vm.snapshot", SnapshotBody("/var/lib/vmctl/snapshots/s1")},
                 {"vm.restore", RestoreBody("/var/lib/vmctl/snapshots/s1")}};
  ExpectGolden(bodies, "src/vmm/cloud_hypervisor/testdata/other_bodies.json");
  for (const auto& [name, body] : bodies.items()) ExpectValid(name.substr(0, name.find(' ')), body);
}

TEST_F(ChTest, ValidatorCatchesWrongBodies) {
  const json good = VmConfigFor(Spec(DiskSpec::Format::kRaw));
  struct Case {
    std::string what;
    std::function<void(json&)> mutate;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"wrong type", [](json& c) { c["cpus"]["boot_vcpus"] = "2"; }, "expected an integer"},
      {"missing required", [](json& c) { c.erase("payload"); }, "missing required 'payload'"},
      {"missing nested required", [](json& c) { c["memory"].erase("size"); },
       "body.memory: missing required 'size'"},
      {"misspelt field", [](json& c) { c["memory"]["sise"] = 1; }, "unknown property 'sise'"},
      {"enum", [](json& c) { c["serial"]["mode"] = "file"; }, "is not one of"},
      {"enum via $ref", [](json& c) { c["disks"][0]["image_type"] = "QCOW2"; }, "is not one of"},
      {"minimum", [](json& c) { c["vsock"]["cid"] = 2; }, "below the minimum"},
      {"int16 range", [](json& c) { c["disks"][0]["pci_segment"] = 40000; }, "does not fit int16"},
      {"uint8 range", [](json& c) { c["net"][0]["pci_device_id"] = -1; }, "does not fit uint8"},
      {"array item", [](json& c) { c["disks"][1]["path"] = 7; }, "body.disks[1].path"},
      {"array expected", [](json& c) { c["net"] = c["net"][0]; }, "expected an array"},
      {"boolean expected", [](json& c) { c["disks"][0]["readonly"] = "false"; },
       "expected a boolean"},
  };
  for (const auto& c : cases) {
    json bad = good;
    c.mutate(bad);
    auto r = spec_.ValidateRequest("PUT", "/api/v1/vm.create", bad);
    ASSERT_FALSE(r.ok()) << c.what;
    EXPECT_NE(r.error().message().find(c.message), std::string::npos)
        << c.what << ": " << r.error().message();
  }
  EXPECT_FALSE(spec_.ValidateRequest("PUT", "/api/v1/vm.restore", json::object()).ok())
      << "source_url is required";
  EXPECT_FALSE(spec_.ValidateRequest("PUT", "/api/v1/vm.resize", {{"desired_vcpus", 0}}).ok());
  EXPECT_FALSE(spec_.ValidateRequest("PUT", "/api/v1/vm.boot", {{"now", true}}).ok())
      << "vm.boot takes no body";
  EXPECT_FALSE(spec_.ValidateRequest("PUT", "/api/v1/vm.create", nullptr).ok())
      << "vm.create requires a body";
  EXPECT_EQ(CodeOf(spec_.ValidateRequest("PUT", "/api/v1/vm.start", nullptr)),
            ErrorCode::kNotFound);
}

TEST_F(ChTest, ErrorBodiesBecomeClearErrors) {
  auto chain = ErrorFromResponse("vm.boot", 500,
                                 R"(["Error from API","The VM could not boot","Invalid payload"])");
  EXPECT_EQ(chain.message(),
            "cloud-hypervisor vm.boot: Error from API: The VM could not boot: Invalid payload");
  EXPECT_EQ(chain.code(), ErrorCode::kInternal);
  auto text = ErrorFromResponse("vm.pause", 405, "VM is not running\n");
  EXPECT_EQ(text.message(), "cloud-hypervisor vm.pause: VM is not running");
  EXPECT_EQ(text.code(), ErrorCode::kFailedPrecondition);
  EXPECT_EQ(ErrorFromResponse("vm.create", 400, "").message(),
            "cloud-hypervisor vm.create: HTTP 400");
  EXPECT_EQ(ErrorFromResponse("vm.create", 400, "").code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(ErrorFromResponse("vm.boot", 404, "[]").code(), ErrorCode::kFailedPrecondition);
  EXPECT_EQ(ErrorFromResponse("vm.resize", 429, "").code(), ErrorCode::kFailedPrecondition);
  EXPECT_EQ(ErrorFromResponse("vm.resize", 503, "").code(), ErrorCode::kInternal);
}

TEST_F(ChTest, CapabilitiesAndName) {
  auto backend = FakeBackend();
  EXPECT_EQ(backend->name(), "cloud-hypervisor");
  Capabilities c = backend->capabilities();
  EXPECT_TRUE(c.pause_resume && c.snapshot_restore && c.resize_cpus && c.resize_memory &&
              c.graceful_shutdown && c.qcow2_disks && c.needs_kvm);
  EXPECT_EQ(c.agent_transport, Capabilities::AgentTransport::kHybridVsock);
}

TEST_F(ChTest, LaunchPauseResumeAndShutdownAgainstTheSpec) {
  const LaunchSpec spec = Spec(DiskSpec::Format::kQcow2);
  auto launched = FakeBackend()->Launch(spec);
  ASSERT_TRUE(launched.ok()) << launched.error().message();
  auto& vm = *launched;
  EXPECT_EQ(vm->handle().api_socket, dir_ / "api.sock");
  EXPECT_EQ(vm->handle().agent_socket, dir_ / "vsock.sock");
  EXPECT_EQ(*vm->QueryStatus(), "Running");
  ASSERT_TRUE(vm->Pause().ok());
  EXPECT_EQ(*vm->QueryStatus(), "Paused");
  ASSERT_TRUE(vm->Resume().ok());
  EXPECT_EQ(*vm->QueryStatus(), "Running");
  ASSERT_TRUE(vm->ResizeDisk(0, spec.disks[0], int64_t{4} << 30).ok());
  ASSERT_TRUE(vm->RequestShutdown().ok());
  ASSERT_TRUE(vm->WaitExit(seconds(10)).ok());
  EXPECT_FALSE(vm->Alive());
  EXPECT_TRUE(vm->Kill().ok()) << "killing an exited VMM is fine";

  EXPECT_EQ(Calls(), (std::vector<std::string>{
                         "GET /api/v1/vmm.ping", "PUT /api/v1/vm.create", "PUT /api/v1/vm.boot",
                         "GET /api/v1/vm.info", "PUT /api/v1/vm.pause", "GET /api/v1/vm.info",
                         "PUT /api/v1/vm.resume", "GET /api/v1/vm.info",
                         "PUT /api/v1/vm.resize-disk", "PUT /api/v1/vm.power-button"}));
  EXPECT_EQ(Recorded()[1]["body"], VmConfigFor(spec));
  ExpectAllConformant();
  EXPECT_EQ(Leftovers(), std::set<std::string>{});
}

TEST_F(ChTest, AgentOverHybridVsock) {
  auto vm = Launch();
  ASSERT_TRUE(vm);
  auto stream = vm->ConnectAgent();
  ASSERT_TRUE(stream.ok()) << stream.error().message();
  auto agent = agent::NewAgentClient(std::move(stream).value());
  auto hello = agent->WaitHello(seconds(5));
  ASSERT_TRUE(hello.ok()) << hello.error().message();
  EXPECT_EQ(hello->kernel, "fake-kernel");

  Control("vsock-refuse");
  auto refused = vm->ConnectAgent();
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code(), ErrorCode::kUnavailable);
  Control("vsock-reply ERR no listener");
  auto answered = vm->ConnectAgent();
  ASSERT_FALSE(answered.ok());
  EXPECT_EQ(answered.error().code(), ErrorCode::kUnavailable);
  EXPECT_NE(answered.error().message().find("'ERR no listener'"), std::string::npos)
      << answered.error().message();
  EXPECT_TRUE(vm->Kill().ok());
}

TEST_F(ChTest, AdoptReattachesToARunningVmm) {
  auto vm = Launch();
  ASSERT_TRUE(vm);
  auto adopted = FakeBackend()->Adopt(vm->handle());
  ASSERT_TRUE(adopted.ok()) << adopted.error().message();
  EXPECT_EQ(*(*adopted)->QueryStatus(), "Running");

  std::filesystem::remove(dir_ / "api.sock");
  auto deaf = FakeBackend()->Adopt(vm->handle());
  ASSERT_FALSE(deaf.ok());
  EXPECT_EQ(deaf.error().code(), ErrorCode::kUnavailable);

  ASSERT_TRUE((*adopted)->Kill().ok()) << "falls back to SIGKILL when the API is gone";
  EXPECT_FALSE(vm->Alive());
  auto gone = FakeBackend()->Adopt(vm->handle());
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(Leftovers(), std::set<std::string>{});
}

TEST_F(ChTest, KillShutsTheVmmDownAndRemovesItsFiles) {
  auto vm = Launch();
  ASSERT_TRUE(vm);
  EXPECT_EQ(Leftovers(), (std::set<std::string>{"api.sock", "api.sock.lock", "vsock.sock"}));
  ASSERT_TRUE(vm->Kill().ok());
  EXPECT_FALSE(vm->Alive());
  EXPECT_EQ(Calls().back(), "PUT /api/v1/vmm.shutdown");
  EXPECT_EQ(Leftovers(), std::set<std::string>{});

  auto status = vm->QueryStatus();
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().code(), ErrorCode::kUnavailable) << status.error().message();
  EXPECT_EQ(CodeOf(vm->Pause()), ErrorCode::kUnavailable);
}

TEST_F(ChTest, DocumentedBootErrorFailsLaunchAndLeavesNothing) {
  Control("fail PUT /api/v1/vm.boot");
  auto vm = FakeBackend()->Launch(Spec(DiskSpec::Format::kRaw));
  ASSERT_FALSE(vm.ok());
  EXPECT_EQ(vm.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_EQ(vm.error().message(),
            "cloud-hypervisor vm.boot: Error from API: The VM instance could not boot because it "
            "is not created yet");
  EXPECT_EQ(Leftovers(), std::set<std::string>{});
  EXPECT_TRUE(ProcessesUsingDir().empty());
}

TEST_F(ChTest, ErrorsAfterLaunchAreClear) {
  auto vm = Launch();
  ASSERT_TRUE(vm);
  auto resumed = vm->Resume();
  ASSERT_FALSE(resumed.ok()) << "resuming a running VM breaks the spec's state rules";
  EXPECT_EQ(resumed.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(resumed.error().message().find("could not resume because it is not paused"),
            std::string::npos)
      << resumed.error().message();

  Control("fail GET /api/v1/vm.info");
  auto status = vm->QueryStatus();
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().code(), ErrorCode::kInternal) << status.error().message();

  Control("hang GET /api/v1/vm.info");
  auto hung = Client(vm->handle().api_socket, milliseconds(200)).Info();
  ASSERT_FALSE(hung.ok());
  EXPECT_EQ(hung.error().code(), ErrorCode::kDeadlineExceeded) << hung.error().message();
  EXPECT_TRUE(vm->Kill().ok());
  ExpectAllConformant();
}

TEST_F(ChTest, ClientBodiesReachTheVmmAsSpecified) {
  auto vm = Launch();
  ASSERT_TRUE(vm);
  Client api(vm->handle().api_socket);
  ASSERT_TRUE(api.Resize(4, int64_t{2} << 30).ok());
  EXPECT_EQ(CodeOf(api.Resize(std::nullopt, std::nullopt)), ErrorCode::kInvalidArgument);
  ASSERT_TRUE(api.Pause().ok());
  ASSERT_TRUE(api.Snapshot(dir_ / "snap").ok());
  EXPECT_EQ(CodeOf(api.Reboot()), ErrorCode::kFailedPrecondition)
      << "a paused VM cannot reboot (405)";
  ASSERT_TRUE(api.Resume().ok());
  ASSERT_TRUE(api.Reboot().ok());
  ASSERT_TRUE(api.Shutdown().ok());
  EXPECT_EQ(*vm->QueryStatus(), "Shutdown");
  ASSERT_TRUE(api.Delete().ok());
  ASSERT_TRUE(api.Restore(dir_ / "snap").ok());
  EXPECT_EQ(*vm->QueryStatus(), "Paused");
  ASSERT_TRUE(api.ShutdownVmm().ok());
  ASSERT_TRUE(vm->WaitExit(seconds(10)).ok());

  auto recorded = Recorded();
  auto body_of = [&](const std::string& endpoint) {
    for (const auto& r : recorded) {
      if (r["path"] == "/api/v1/" + endpoint) return r["body"];
    }
    return json();
  };
  EXPECT_EQ(body_of("vm.resize"), json({{"desired_vcpus", 4}, {"desired_ram", int64_t{2} << 30}}));
  EXPECT_EQ(body_of("vm.snapshot"),
            json({{"destination_url", "file://" + (dir_ / "snap").string()}}));
  EXPECT_EQ(body_of("vm.restore"), json({{"source_url", "file://" + (dir_ / "snap").string()}}));
  ExpectAllConformant();
}

TEST_F(ChTest, VmmDyingAtStartReportsItsOutputAndLeavesNothing) {
  ASSERT_TRUE(WriteFileAtomic(dir_ / "vmm.log", "an older run's complaint\n").ok());
  Control("exit-at-start Error: no /dev/kvm");
  auto vm = FakeBackend()->Launch(Spec(DiskSpec::Format::kRaw));
  ASSERT_FALSE(vm.ok());
  EXPECT_EQ(vm.error().code(), ErrorCode::kUnavailable);
  EXPECT_NE(vm.error().message().find("exited during start: Error: no /dev/kvm"), std::string::npos)
      << vm.error().message();
  EXPECT_EQ(vm.error().message().find("older run"), std::string::npos) << vm.error().message();
  EXPECT_EQ(Leftovers(), std::set<std::string>{});
}

TEST_F(ChTest, VmmCrashingDuringBootLeavesNothing) {
  Control("crash PUT /api/v1/vm.boot");
  auto vm = FakeBackend()->Launch(Spec(DiskSpec::Format::kRaw));
  ASSERT_FALSE(vm.ok());
  EXPECT_EQ(vm.error().code(), ErrorCode::kUnavailable) << vm.error().message();
  EXPECT_EQ(Leftovers(), std::set<std::string>{});
  EXPECT_TRUE(ProcessesUsingDir().empty());
}

TEST_F(ChTest, MissingBinaryIsNotFound) {
  auto vm = NewCloudHypervisorBackend({"/nonexistent/cloud-hypervisor"})
                ->Launch(Spec(DiskSpec::Format::kRaw));
  ASSERT_FALSE(vm.ok());
  EXPECT_EQ(vm.error().code(), ErrorCode::kNotFound) << vm.error().message();
}

TEST_F(ChTest, TooLongRuntimeDirIsRefusedBeforeStarting) {
  LaunchSpec spec = Spec(DiskSpec::Format::kRaw);
  spec.runtime_dir = dir_ / std::string(100, 'x');
  auto vm = FakeBackend()->Launch(spec);
  ASSERT_FALSE(vm.ok());
  EXPECT_EQ(vm.error().code(), ErrorCode::kInvalidArgument) << vm.error().message();
  EXPECT_TRUE(Recorded().empty());
}

}  // namespace
}  // namespace vmctl::vmm::cloud_hypervisor
