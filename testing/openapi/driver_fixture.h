#ifndef VMCTL_TESTING_OPENAPI_DRIVER_FIXTURE_H_
#define VMCTL_TESTING_OPENAPI_DRIVER_FIXTURE_H_

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "base/io.h"
#include "base/process.h"
#include "testing/openapi/spec.h"
#include "vmm/vmm.h"

namespace vmctl::testing {

// Shared by the Cloud Hypervisor and Firecracker driver tests: a runtime directory, a launch
// spec, the reference spec, golden-file comparison and the fake VMM's request record.
class DriverTest : public ::testing::Test {
 protected:
  void SetUpSpec(const std::string& spec_file) {
    dir_ = std::filesystem::path("/tmp") /
           ("drv-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    spec_path_ = std::filesystem::path(VMCTL_REFERENCE_DIR) / spec_file;
    auto spec = OpenApiSpec::Load(spec_path_);
    ASSERT_TRUE(spec.ok()) << spec.error().message();
    spec_ = std::move(spec).value();
    ::setenv("FAKE_VMM_SPEC", spec_path_.c_str(), 1);
    ::setenv("FAKE_VMM_RECORD", (dir_ / "requests.jsonl").c_str(), 1);
    ::unsetenv("FAKE_VMM_FAIL");
    ::unsetenv("FAKE_VMM_EXIT_AT_START");
  }
  // A test that fails half-way may leave its VMM running: whatever still uses this test's
  // directory is killed by PID before the directory goes.
  void TearDown() override {
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
      std::string name = entry.path().filename().string();
      if (name.find_first_not_of("0123456789") != std::string::npos) continue;
      auto process = ProcessRef::Of(std::stoi(name));
      if (!process.ok() || process->pid == ::getpid()) continue;
      for (const auto& arg : process->Cmdline()) {
        if (arg.find(dir_.string() + "/") != std::string::npos) {
          (void)process->Kill();
          break;
        }
      }
    }
    std::filesystem::remove_all(dir_);
  }

  vmm::LaunchSpec Spec(vmm::DiskSpec::Format format) const {
    vmm::LaunchSpec spec;
    spec.vm_id = "0123456789ab";
    spec.vm_name = "demo";
    spec.cpus = 2;
    spec.memory_mib = 1024;
    spec.kernel = "/images/h/vmlinux";
    spec.initramfs = "/images/h/initramfs.cpio.gz";
    spec.kernel_cmdline = "root=/dev/vda rw panic=-1";
    spec.disks = {{dir_ / "root.img", format, false}};
    spec.net = vmm::NetSpec{"vm0123456789ab", "02:00:01:23:45:67"};
    spec.runtime_dir = dir_;
    spec.console_log = dir_ / "console.log";
    spec.vmm_log = dir_ / "vmm.log";
    return spec;
  }

  // Golden files use fixed paths, so a spec rooted in /state is rendered for them.
  static nlohmann::json WithFixedPaths(nlohmann::json j, const std::filesystem::path& dir) {
    std::string text = j.dump();
    std::string from = dir.string();
    for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at)) {
      text.replace(at, from.size(), "/state/vms/0123456789ab");
    }
    return nlohmann::json::parse(text);
  }

  static void ExpectGolden(const nlohmann::json& actual, const std::string& relative) {
    std::filesystem::path path = std::filesystem::path(VMCTL_SOURCE_DIR) / relative;
    if (std::getenv("UPDATE_GOLDEN")) {
      std::ofstream(path) << actual.dump(2) << "\n";
      return;
    }
    auto expected = ReadFile(path);
    ASSERT_TRUE(expected.ok()) << "missing " << path << " (run with UPDATE_GOLDEN=1)";
    EXPECT_EQ(actual, nlohmann::json::parse(*expected)) << relative;
  }

  std::vector<nlohmann::json> Recorded() const {
    std::vector<nlohmann::json> out;
    std::ifstream in(dir_ / "requests.jsonl");
    std::string line;
    while (std::getline(in, line)) out.push_back(nlohmann::json::parse(line));
    return out;
  }

  std::filesystem::path dir_, spec_path_;
  OpenApiSpec spec_;
};

}  // namespace vmctl::testing

#endif  // VMCTL_TESTING_OPENAPI_DRIVER_FIXTURE_H_
