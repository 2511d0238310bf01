// Cloud Hypervisor cannot run without KVM, so the driver is verified against the reference
// OpenAPI spec: golden request bodies, schema validation of every body, and full launch/control
// flows against fake_vmm, which serves the documented responses.
#include <gtest/gtest.h>
#include <signal.h>

#include "agent/client.h"
#include "testing/openapi/driver_fixture.h"
#include "vmm/cloud_hypervisor/backend.h"
#include "vmm/cloud_hypervisor/ch_api.h"
#include "vmm/common/http_unix.h"

namespace vmctl::vmm::cloud_hypervisor {
namespace {

using nlohmann::json;

class ChTest : public vmctl::testing::DriverTest {
 protected:
  void SetUp() override { SetUpSpec("cloud-hypervisor-openapi.yaml"); }
  std::unique_ptr<Backend> FakeBackend() { return NewCloudHypervisorBackend({VMCTL_FAKE_VMM}); }
};

TEST_F(ChTest, VmConfigMatchesGoldenAndValidates) {
  json config = VmConfigFor(Spec(DiskSpec::Format::kQcow2));
  ExpectGolden(WithFixedPaths(config, dir_), "src/vmm/cloud_hypervisor/testdata/vm_create.json");
  auto valid = spec_.ValidateRequest("PUT", "/api/v1/vm.create", config);
  EXPECT_TRUE(valid.ok()) << valid.error().message();
  EXPECT_EQ(config["serial"]["mode"], "File");
  EXPECT_EQ(config["console"]["mode"], "Off");
}

TEST_F(ChTest, OtherBodiesValidate) {
  struct Case {
    std::string endpoint;
    json body;
  };
  for (const auto& c :
       {Case{"vm.resize", ResizeBody(4, 2LL << 30)}, Case{"vm.resize", ResizeBody(0, 1LL << 30)},
        Case{"vm.snapshot", SnapshotBody("/state/snap")},
        Case{"vm.restore", RestoreBody("/state/snap")}}) {
    auto valid = spec_.ValidateRequest("PUT", "/api/v1/" + c.endpoint, c.body);
    EXPECT_TRUE(valid.ok()) << c.endpoint << ": " << valid.error().message();
  }
  ExpectGolden({{"resize", ResizeBody(4, 2LL << 30)},
                {"snapshot", SnapshotBody("/state/snap")},
                {"restore", RestoreBody("/state/snap")}},
               "src/vmm/cloud_hypervisor/testdata/other_bodies.json");
}

TEST_F(ChTest, ValidatorCatchesBadBodies) {
  json good = VmConfigFor(Spec(DiskSpec::Format::kRaw));
  struct Case {
    std::string what;
    std::function<void(json&)> mutate;
    std::string message;
  };
  std::vector<Case> cases = {
      {"wrong type", [](json& c) { c["cpus"]["boot_vcpus"] = "2"; }, "expected integer"},
      {"missing required", [](json& c) { c.erase("payload"); }, "missing required 'payload'"},
      {"unknown field", [](json& c) { c["memory"]["sise"] = 1; }, "unknown property 'sise'"},
      {"enum", [](json& c) { c["serial"]["mode"] = "Bogus"; }, "is not one of"},
      {"minimum", [](json& c) { c["vsock"]["cid"] = 2; }, "below the minimum"},
  };
  for (const auto& c : cases) {
    json bad = good;
    c.mutate(bad);
    auto r = spec_.ValidateRequest("PUT", "/api/v1/vm.create", bad);
    ASSERT_FALSE(r.ok()) << c.what;
    EXPECT_NE(r.error().message().find(c.message), std::string::npos)
        << c.what << ": " << r.error().message();
  }
}

TEST_F(ChTest, ErrorBodiesBecomeClearErrors) {
  auto array = ErrorFromResponse("vm.boot", 500, R"(["Error booting VM","Invalid payload"])");
  EXPECT_EQ(array.message(), "cloud-hypervisor vm.boot: Error booting VM: Invalid payload");
  EXPECT_EQ(array.code(), ErrorCode::kInternal);
  auto text = ErrorFromResponse("vm.pause", 405, "VM is not running\n");
  EXPECT_EQ(text.message(), "cloud-hypervisor vm.pause: VM is not running");
  EXPECT_EQ(text.code(), ErrorCode::kFailedPrecondition);
  EXPECT_EQ(ErrorFromResponse("vm.create", 400, "").message(),
            "cloud-hypervisor vm.create: HTTP 400");
}

TEST_F(ChTest, LaunchControlAndAgentAgainstTheSpec) {
  auto backend = FakeBackend();
  auto instance = backend->Launch(Spec(DiskSpec::Format::kQcow2));
  ASSERT_TRUE(instance.ok()) << instance.error().message();
  EXPECT_EQ(*(*instance)->QueryStatus(), "Running");
  ASSERT_TRUE((*instance)->Pause().ok());
  EXPECT_EQ(*(*instance)->QueryStatus(), "Paused");
  ASSERT_TRUE((*instance)->Resume().ok());
  EXPECT_EQ(*(*instance)->QueryStatus(), "Running");

  auto stream = (*instance)->ConnectAgent();
  ASSERT_TRUE(stream.ok()) << stream.error().message();
  auto agent = agent::NewAgentClient(std::move(stream).value());
  auto hello = agent->WaitHello(std::chrono::seconds(5));
  ASSERT_TRUE(hello.ok()) << hello.error().message();
  EXPECT_EQ(hello->kernel, "fake-kernel");
  EXPECT_FALSE(ConnectHybridVsock((*instance)->handle().agent_socket, 9).ok())
      << "a port nobody listens on is refused";

  auto adopted = NewCloudHypervisorBackend({VMCTL_FAKE_VMM})->Adopt((*instance)->handle());
  ASSERT_TRUE(adopted.ok()) << adopted.error().message();
  ASSERT_TRUE((*adopted)->RequestShutdown().ok());
  EXPECT_TRUE((*adopted)->WaitExit(std::chrono::seconds(10)).ok());

  auto requests = Recorded();
  std::vector<std::string> calls;
  for (const auto& r : requests) {
    EXPECT_TRUE(r["valid"].get<bool>()) << r.dump();
    calls.push_back(r["method"].get<std::string>() + " " + r["path"].get<std::string>());
  }
  ASSERT_GE(calls.size(), 3u);
  EXPECT_NE(std::find(calls.begin(), calls.end(), "PUT /api/v1/vm.create"), calls.end());
  EXPECT_NE(std::find(calls.begin(), calls.end(), "PUT /api/v1/vm.boot"), calls.end());
  EXPECT_EQ(calls.back(), "PUT /api/v1/vm.power-button");
}

TEST_F(ChTest, KillStopsTheVmm) {
  auto instance = FakeBackend()->Launch(Spec(DiskSpec::Format::kRaw));
  ASSERT_TRUE(instance.ok()) << instance.error().message();
  ASSERT_TRUE((*instance)->Kill().ok());
  EXPECT_FALSE((*instance)->Alive());
  EXPECT_EQ(Recorded().back()["path"], "/api/v1/vmm.shutdown");
}

TEST_F(ChTest, DocumentedBootErrorFailsLaunchAndLeavesNothing) {
  ::setenv("FAKE_VMM_FAIL", "PUT /api/v1/vm.boot", 1);
  auto instance = FakeBackend()->Launch(Spec(DiskSpec::Format::kRaw));
  ASSERT_FALSE(instance.ok());
  EXPECT_EQ(instance.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(instance.error().message().find("could not boot because it is not created yet"),
            std::string::npos)
      << instance.error().message();
  EXPECT_FALSE(std::filesystem::exists(dir_ / "api.sock"));
  EXPECT_FALSE(std::filesystem::exists(dir_ / "vsock.sock"));
}

TEST_F(ChTest, VmmDyingAtStartReportsItsOutput) {
  ::setenv("FAKE_VMM_EXIT_AT_START", "Error: no /dev/kvm", 1);
  auto instance = FakeBackend()->Launch(Spec(DiskSpec::Format::kRaw));
  ASSERT_FALSE(instance.ok());
  EXPECT_NE(instance.error().message().find("exited during start: Error: no /dev/kvm"),
            std::string::npos)
      << instance.error().message();
  EXPECT_FALSE(std::filesystem::exists(dir_ / "api.sock"));
}

TEST_F(ChTest, MissingBinaryIsNotFound) {
  auto instance = NewCloudHypervisorBackend({"/nonexistent/cloud-hypervisor"})
                      ->Launch(Spec(DiskSpec::Format::kRaw));
  ASSERT_FALSE(instance.ok());
  EXPECT_EQ(instance.error().code(), ErrorCode::kNotFound);
}

}  // namespace
}  // namespace vmctl::vmm::cloud_hypervisor
