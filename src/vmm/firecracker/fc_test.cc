// Firecracker cannot run without KVM, so the driver is verified against the reference Swagger spec
// only: golden requests, schema validation of every body, and full launch and control flows
// against fake_vmm, which replays the spec's documented answers.
#include <gtest/gtest.h>

#include "agent/client.h"
#include "testing/openapi/driver_fixture.h"
#include "vmm/firecracker/backend.h"
#include "vmm/firecracker/fc_api.h"

namespace vmctl::vmm::firecracker {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;
using vmctl::testing::CodeOf;

json AsJson(const std::vector<Request>& requests) {
  json out = json::array();
  for (const auto& r : requests) {
    out.push_back({{"method", r.method}, {"path", r.path}, {"body", r.body}});
  }
  return out;
}

class FcTest : public vmctl::testing::DriverTest {
 protected:
  void SetUp() override { SetUpSpec("firecracker-swagger.yaml"); }

  std::unique_ptr<Backend> FakeBackend() { return NewFirecrackerBackend({VMCTL_FAKE_VMM}); }

  std::unique_ptr<Instance> Launch() {
    auto instance = FakeBackend()->Launch(Spec(DiskSpec::Format::kRaw));
    EXPECT_TRUE(instance.ok()) << instance.error().message();
    return instance.ok() ? std::move(instance).value() : nullptr;
  }

  void ExpectValid(const std::vector<Request>& requests) {
    for (const auto& r : requests) {
      auto valid = spec_.ValidateRequest(r.method, r.path, r.body);
      EXPECT_TRUE(valid.ok()) << r.method << " " << r.path << ": " << valid.error().message();
    }
  }
};

TEST_F(FcTest, BootSequenceMatchesGoldenAndTheSpec) {
  auto sequence = BootSequence(Spec(DiskSpec::Format::kRaw));
  ASSERT_TRUE(sequence.ok()) << sequence.error().message();
  ExpectGolden(WithFixedPaths(AsJson(*sequence)),
               "src/vmm/firecracker/testdata/boot_sequence.json");
  ExpectValid(*sequence);
  EXPECT_EQ(sequence->front().path, "/boot-source");
  EXPECT_EQ(sequence->front().body["boot_args"],
            "root=/dev/vda rw panic=-1 console=ttyS0 reboot=k");
  EXPECT_EQ(sequence->back().body, json({{"action_type", "InstanceStart"}}));
}

TEST_F(FcTest, MinimalBootSequenceMatchesGoldenAndTheSpec) {
  auto sequence = BootSequence(MinimalSpec());
  ASSERT_TRUE(sequence.ok()) << sequence.error().message();
  ExpectGolden(WithFixedPaths(AsJson(*sequence)),
               "src/vmm/firecracker/testdata/boot_sequence_minimal.json");
  ExpectValid(*sequence);
  EXPECT_EQ(sequence->front().body, json({{"kernel_image_path", "/images/h/vmlinux"},
                                          {"boot_args", "console=ttyS0 reboot=k"}}));
}

TEST_F(FcTest, OtherRequestsMatchGoldenAndTheSpec) {
  std::vector<Request> requests = {
      PauseRequest(true),
      PauseRequest(false),
      CtrlAltDelRequest(),
      UpdateDriveRequest(1, "/var/lib/vmctl/disks/0123456789ab/data.img"),
      SnapshotCreateRequest("/var/lib/vmctl/s1/vm.snap", "/var/lib/vmctl/s1/vm.mem"),
      SnapshotLoadRequest("/var/lib/vmctl/s1/vm.snap", "/var/lib/vmctl/s1/vm.mem", true)};
  ExpectGolden(AsJson(requests), "src/vmm/firecracker/testdata/other_requests.json");
  ExpectValid(requests);
}

TEST_F(FcTest, RefusesWhatFirecrackerCannotDo) {
  auto qcow2 = BootSequence(Spec(DiskSpec::Format::kQcow2));
  ASSERT_FALSE(qcow2.ok());
  EXPECT_EQ(qcow2.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(qcow2.error().message(), "firecracker accepts raw disk images only, and " +
                                         (dir_ / "root.img").string() +
                                         " is qcow2 (provision the disk as a raw copy instead)");
  for (int cpus : {0, 33}) {
    LaunchSpec spec = Spec(DiskSpec::Format::kRaw);
    spec.cpus = cpus;
    EXPECT_EQ(CodeOf(BootSequence(spec)), ErrorCode::kInvalidArgument) << cpus;
  }
  auto launched = FakeBackend()->Launch(Spec(DiskSpec::Format::kQcow2));
  EXPECT_EQ(CodeOf(launched), ErrorCode::kInvalidArgument);
  EXPECT_TRUE(Recorded().empty()) << "refused before any process starts";
  EXPECT_FALSE(FakeBackend()->capabilities().qcow2_disks);
}

TEST_F(FcTest, ValidatorCatchesWrongBodies) {
  struct Case {
    Request request;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{"PUT", "/machine-config", {{"vcpu_count", 2}}}, "missing required 'mem_size_mib'"},
      {{"PUT", "/machine-config", {{"vcpu_count", 64}, {"mem_size_mib", 128}}},
       "above the maximum"},
      {{"PUT", "/machine-config", {{"vcpu_count", 2}, {"mem_size_mib", "128"}}},
       "expected an integer"},
      {{"PATCH", "/vm", {{"state", "Stopped"}}}, "is not one of"},
      {{"PUT", "/drives/rootfs", {{"drive_id", "rootfs"}, {"is_root_device", 1}}},
       "expected a boolean"},
      {{"PUT", "/drives/rootfs", {{"drive_id", "data"}, {"is_root_device", false}}},
       "but the path says"},
      {{"PUT", "/drives/rootfs", {{"drive_id", "rootfs"}, {"is_root_device", false}, {"ro", true}}},
       "unknown property 'ro'"},
      {{"PUT", "/vsock", {{"guest_cid", 2}, {"uds_path", "/v.sock"}}}, "below the minimum"},
      {{"PUT", "/snapshot/create", {{"snapshot_path", "/s"}}}, "missing required 'mem_file_path'"},
      {{"PUT",
        "/snapshot/load",
        {{"snapshot_path", "/s"},
         {"mem_backend", {{"backend_type", "Disk"}, {"backend_path", "/m"}}}}},
       "is not one of"},
      {{"PUT", "/actions", nullptr}, "requires a body"},
      {{"PUT",
        "/mmds/config",
        {{"network_interfaces", json::array()}, {"ipv4_address", "10.0.0.1"}}},
       "does not match"},
  };
  for (const auto& c : cases) {
    auto r = spec_.ValidateRequest(c.request.method, c.request.path, c.request.body);
    ASSERT_FALSE(r.ok()) << c.request.path << " " << c.request.body.dump();
    EXPECT_NE(r.error().message().find(c.message), std::string::npos)
        << c.request.body.dump() << ": " << r.error().message();
  }
}

TEST_F(FcTest, FaultMessagesBecomeClearErrors) {
  const Request boot{"PUT", "/boot-source", {}};
  auto bad_input = ErrorFromResponse(
      boot, 400, R"({"fault_message":"Boot source error: The kernel file cannot be opened"})");
  EXPECT_EQ(bad_input.message(),
            "firecracker PUT /boot-source: Boot source error: The kernel file cannot be opened");
  EXPECT_EQ(bad_input.code(), ErrorCode::kInvalidArgument);
  auto late = ErrorFromResponse(
      boot, 400,
      R"({"fault_message":"The requested operation is not supported after starting the microVM."})");
  EXPECT_EQ(late.code(), ErrorCode::kFailedPrecondition);
  auto internal = ErrorFromResponse(boot, 500, R"({"fault_message":"Internal error"})");
  EXPECT_EQ(internal.code(), ErrorCode::kInternal);
  EXPECT_EQ(internal.message(), "firecracker PUT /boot-source: Internal error");
  EXPECT_EQ(ErrorFromResponse(boot, 400, "").message(), "firecracker PUT /boot-source: HTTP 400");
  EXPECT_EQ(ErrorFromResponse(boot, 400, "bad\n").message(), "firecracker PUT /boot-source: bad");
}

TEST_F(FcTest, LaunchPauseResumeAndShutdownAgainstTheSpec) {
  const LaunchSpec spec = Spec(DiskSpec::Format::kRaw);
  auto launched = FakeBackend()->Launch(spec);
  ASSERT_TRUE(launched.ok()) << launched.error().message();
  auto& vm = *launched;
  EXPECT_EQ(*vm->QueryStatus(), "Running");
  ASSERT_TRUE(vm->Pause().ok());
  EXPECT_EQ(*vm->QueryStatus(), "Paused");
  ASSERT_TRUE(vm->Resume().ok());
  EXPECT_EQ(*vm->QueryStatus(), "Running");
  ASSERT_TRUE(vm->ResizeDisk(0, spec.disks[0], int64_t{4} << 30).ok());
  ASSERT_TRUE(vm->RequestShutdown().ok());
  ASSERT_TRUE(vm->WaitExit(seconds(10)).ok());
  EXPECT_TRUE(vm->Kill().ok()) << "killing an exited VMM is fine";

  std::vector<std::string> expected = {"GET /"};
  auto sequence = *BootSequence(spec);
  for (const auto& r : sequence) expected.push_back(r.method + " " + r.path);
  for (const auto* call : {"GET /", "PATCH /vm", "GET /", "PATCH /vm", "GET /",
                           "PATCH /drives/rootfs", "PUT /actions"}) {
    expected.push_back(call);
  }
  EXPECT_EQ(Calls(), expected);
  auto recorded = Recorded();
  for (size_t i = 0; i < sequence.size(); ++i) EXPECT_EQ(recorded[i + 1]["body"], sequence[i].body);
  EXPECT_EQ(recorded.back()["body"], json({{"action_type", "SendCtrlAltDel"}}));
  ExpectAllConformant();
  EXPECT_EQ(Leftovers(), std::set<std::string>{});
}

TEST_F(FcTest, AgentOverHybridVsock) {
  auto vm = Launch();
  ASSERT_TRUE(vm);
  auto stream = vm->ConnectAgent();
  ASSERT_TRUE(stream.ok()) << stream.error().message();
  auto agent = agent::NewAgentClient(std::move(stream).value());
  EXPECT_TRUE(agent->WaitHello(seconds(5)).ok());

  Control("vsock-refuse");
  EXPECT_EQ(CodeOf(vm->ConnectAgent()), ErrorCode::kUnavailable);
  Control("vsock-reply OK");
  EXPECT_EQ(CodeOf(vm->ConnectAgent()), ErrorCode::kUnavailable) << "OK without a port";
  EXPECT_TRUE(vm->Kill().ok());
}

TEST_F(FcTest, AdoptReattachesToARunningVmm) {
  auto vm = Launch();
  ASSERT_TRUE(vm);
  auto adopted = FakeBackend()->Adopt(vm->handle());
  ASSERT_TRUE(adopted.ok()) << adopted.error().message();
  EXPECT_EQ(*(*adopted)->QueryStatus(), "Running");
  std::filesystem::remove(dir_ / "api.sock");
  EXPECT_EQ(CodeOf(FakeBackend()->Adopt(vm->handle())), ErrorCode::kUnavailable);
  ASSERT_TRUE((*adopted)->Kill().ok());
  EXPECT_EQ(CodeOf(FakeBackend()->Adopt(vm->handle())), ErrorCode::kNotFound);
}

TEST_F(FcTest, KillEndsTheProcessAndRemovesItsFiles) {
  auto vm = Launch();
  ASSERT_TRUE(vm);
  EXPECT_EQ(Leftovers(), (std::set<std::string>{"api.sock", "vsock.sock"}));
  const size_t calls = Calls().size();
  ASSERT_TRUE(vm->Kill().ok());
  EXPECT_FALSE(vm->Alive());
  EXPECT_EQ(Calls().size(), calls) << "Firecracker has no quit call: SIGKILL";
  EXPECT_EQ(Leftovers(), std::set<std::string>{});
  EXPECT_EQ(CodeOf(vm->QueryStatus()), ErrorCode::kUnavailable);
}

TEST_F(FcTest, DocumentedErrorFailsLaunchAndLeavesNothing) {
  Control("fail PUT /boot-source");
  auto vm = FakeBackend()->Launch(Spec(DiskSpec::Format::kRaw));
  ASSERT_FALSE(vm.ok());
  EXPECT_EQ(vm.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(vm.error().message(),
            "firecracker PUT /boot-source: Boot source cannot be created due to bad input");
  EXPECT_EQ(Leftovers(), std::set<std::string>{});
  EXPECT_TRUE(ProcessesUsingDir().empty());
}

TEST_F(FcTest, ErrorsAfterLaunchAreClear) {
  auto vm = Launch();
  ASSERT_TRUE(vm);
  Client api(vm->handle().api_socket);
  auto late = api.Send(BootSequence(Spec(DiskSpec::Format::kRaw))->front());
  ASSERT_FALSE(late.ok()) << "/boot-source is pre-boot only";
  EXPECT_EQ(late.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_EQ(late.error().message(),
            "firecracker PUT /boot-source: The requested operation is not supported after "
            "starting the microVM.");

  Control("fail PATCH /vm");
  auto pause = vm->Pause();
  ASSERT_FALSE(pause.ok());
  EXPECT_EQ(pause.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(pause.error().message().find("firecracker PATCH /vm: "), std::string::npos);
  Control("fail PATCH /vm 500");
  EXPECT_EQ(CodeOf(vm->Pause()), ErrorCode::kInternal);

  Control("hang PATCH /vm");
  Request pause_quickly = PauseRequest(true);
  pause_quickly.timeout = milliseconds(200);
  EXPECT_EQ(CodeOf(api.Send(pause_quickly)), ErrorCode::kDeadlineExceeded);
  EXPECT_TRUE(vm->Kill().ok());
  ExpectAllConformant();
}

TEST_F(FcTest, SnapshotRequestsReachTheVmmAsSpecified) {
  auto vm = Launch();
  ASSERT_TRUE(vm);
  Client api(vm->handle().api_socket);
  ASSERT_TRUE(vm->Pause().ok());
  ASSERT_TRUE(api.Send(SnapshotCreateRequest(dir_ / "vm.snap", dir_ / "vm.mem")).ok());
  EXPECT_EQ(CodeOf(api.Send(SnapshotLoadRequest(dir_ / "vm.snap", dir_ / "vm.mem", true))),
            ErrorCode::kFailedPrecondition)
      << "loading is for a fresh process only";
  EXPECT_TRUE(vm->Kill().ok());
  ExpectAllConformant();
}

TEST_F(FcTest, VmmDyingAtStartReportsItsOutputAndLeavesNothing) {
  ASSERT_TRUE(WriteFileAtomic(dir_ / "console.log", "[    0.000000] an older boot\n").ok());
  Control("exit-at-start Error creating the Kvm object: No such file or directory");
  auto vm = FakeBackend()->Launch(Spec(DiskSpec::Format::kRaw));
  ASSERT_FALSE(vm.ok());
  EXPECT_EQ(vm.error().code(), ErrorCode::kUnavailable);
  EXPECT_NE(vm.error().message().find(
                "exited during start: Error creating the Kvm object: No such file or directory"),
            std::string::npos)
      << vm.error().message();
  EXPECT_EQ(vm.error().message().find("older boot"), std::string::npos) << vm.error().message();
  EXPECT_EQ(Leftovers(), std::set<std::string>{});
}

TEST_F(FcTest, VmmCrashingAtInstanceStartLeavesNothing) {
  Control("crash PUT /actions");
  auto vm = FakeBackend()->Launch(Spec(DiskSpec::Format::kRaw));
  ASSERT_FALSE(vm.ok());
  EXPECT_EQ(vm.error().code(), ErrorCode::kUnavailable) << vm.error().message();
  EXPECT_EQ(Leftovers(), std::set<std::string>{});
  EXPECT_TRUE(ProcessesUsingDir().empty());
}

}  // namespace
}  // namespace vmctl::vmm::firecracker
