// Firecracker cannot run without KVM, so the driver is verified against the reference Swagger
// spec: golden request sequence, schema validation of every body, and full launch/control flows
// against fake_vmm, which serves the documented responses.
#include <gtest/gtest.h>

#include "agent/client.h"
#include "testing/openapi/driver_fixture.h"
#include "vmm/firecracker/backend.h"
#include "vmm/firecracker/fc_api.h"

namespace vmctl::vmm::firecracker {
namespace {

using nlohmann::json;

class FcTest : public vmctl::testing::DriverTest {
 protected:
  void SetUp() override { SetUpSpec("firecracker-swagger.yaml"); }
  std::unique_ptr<Backend> FakeBackend() { return NewFirecrackerBackend({VMCTL_FAKE_VMM}); }
};

json AsJson(const std::vector<Request>& requests) {
  json out = json::array();
  for (const auto& r : requests)
    out.push_back({{"method", r.method}, {"path", r.path}, {"body", r.body}});
  return out;
}

TEST_F(FcTest, BootSequenceMatchesGoldenAndEveryBodyValidates) {
  auto sequence = BootSequence(Spec(DiskSpec::Format::kRaw));
  ASSERT_TRUE(sequence.ok()) << sequence.error().message();
  ExpectGolden(WithFixedPaths(AsJson(*sequence), dir_),
               "src/vmm/firecracker/testdata/boot_sequence.json");
  std::vector<Request> all = *sequence;
  all.push_back(PauseRequest(true));
  all.push_back(PauseRequest(false));
  all.push_back(CtrlAltDelRequest());
  all.push_back(SnapshotCreateRequest("/s/vm.snap", "/s/vm.mem"));
  all.push_back(SnapshotLoadRequest("/s/vm.snap", "/s/vm.mem", true));
  for (const auto& r : all) {
    auto valid = spec_.ValidateRequest(r.method, r.path, r.body);
    EXPECT_TRUE(valid.ok()) << r.method << " " << r.path << ": " << valid.error().message();
  }
  EXPECT_EQ(sequence->back().body["action_type"], "InstanceStart");
}

TEST_F(FcTest, RefusesWhatFirecrackerCannotDo) {
  auto qcow2 = BootSequence(Spec(DiskSpec::Format::kQcow2));
  ASSERT_FALSE(qcow2.ok());
  EXPECT_EQ(qcow2.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(qcow2.error().message().find("raw disks only"), std::string::npos);
  auto spec = Spec(DiskSpec::Format::kRaw);
  spec.cpus = 33;
  EXPECT_FALSE(BootSequence(spec).ok());
}

TEST_F(FcTest, ValidatorCatchesBadBodies) {
  EXPECT_FALSE(spec_.ValidateRequest("PUT", "/machine-config", {{"vcpu_count", 2}}).ok())
      << "mem_size_mib is required";
  EXPECT_FALSE(
      spec_.ValidateRequest("PUT", "/machine-config", {{"vcpu_count", 64}, {"mem_size_mib", 128}})
          .ok())
      << "at most 32 vCPUs";
  EXPECT_FALSE(spec_.ValidateRequest("PATCH", "/vm", {{"state", "Stopped"}}).ok());
  EXPECT_FALSE(
      spec_.ValidateRequest("PUT", "/drives/x", {{"drive_id", "x"}, {"is_root_device", 1}}).ok());
}

TEST_F(FcTest, FaultMessagesBecomeClearErrors) {
  auto e = ErrorFromResponse({"PUT", "/boot-source", {}}, 400,
                             R"({"fault_message":"The kernel file cannot be opened"})");
  EXPECT_EQ(e.message(), "firecracker PUT /boot-source: The kernel file cannot be opened");
  EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
}

TEST_F(FcTest, LaunchControlAndAgentAgainstTheSpec) {
  auto instance = FakeBackend()->Launch(Spec(DiskSpec::Format::kRaw));
  ASSERT_TRUE(instance.ok()) << instance.error().message();
  EXPECT_EQ(*(*instance)->QueryStatus(), "Running");
  ASSERT_TRUE((*instance)->Pause().ok());
  EXPECT_EQ(*(*instance)->QueryStatus(), "Paused");
  ASSERT_TRUE((*instance)->Resume().ok());
  EXPECT_EQ(*(*instance)->QueryStatus(), "Running");
  auto stream = (*instance)->ConnectAgent();
  ASSERT_TRUE(stream.ok()) << stream.error().message();
  auto agent = agent::NewAgentClient(std::move(stream).value());
  EXPECT_TRUE(agent->WaitHello(std::chrono::seconds(5)).ok());

  auto adopted = NewFirecrackerBackend({VMCTL_FAKE_VMM})->Adopt((*instance)->handle());
  ASSERT_TRUE(adopted.ok()) << adopted.error().message();
  ASSERT_TRUE((*adopted)->RequestShutdown().ok());
  EXPECT_TRUE((*adopted)->WaitExit(std::chrono::seconds(10)).ok());
  for (const auto& r : Recorded()) EXPECT_TRUE(r["valid"].get<bool>()) << r.dump();
  EXPECT_EQ(Recorded().back()["body"]["action_type"], "SendCtrlAltDel");
}

TEST_F(FcTest, DocumentedErrorFailsLaunchAndLeavesNothing) {
  ::setenv("FAKE_VMM_FAIL", "PUT /boot-source", 1);
  auto instance = FakeBackend()->Launch(Spec(DiskSpec::Format::kRaw));
  ASSERT_FALSE(instance.ok());
  EXPECT_NE(instance.error().message().find("firecracker PUT /boot-source: Boot source cannot be "
                                            "created due to bad input"),
            std::string::npos)
      << instance.error().message();
  EXPECT_FALSE(std::filesystem::exists(dir_ / "api.sock"));
}

TEST_F(FcTest, VmmDyingAtStartReportsItsOutput) {
  ::setenv("FAKE_VMM_EXIT_AT_START", "Error creating the Kvm object", 1);
  auto instance = FakeBackend()->Launch(Spec(DiskSpec::Format::kRaw));
  ASSERT_FALSE(instance.ok());
  EXPECT_NE(instance.error().message().find("Error creating the Kvm object"), std::string::npos)
      << instance.error().message();
}

}  // namespace
}  // namespace vmctl::vmm::firecracker
