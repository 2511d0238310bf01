#ifndef VMCTL_TESTING_OPENAPI_DRIVER_FIXTURE_H_
#define VMCTL_TESTING_OPENAPI_DRIVER_FIXTURE_H_

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "base/io.h"
#include "base/process.h"
#include "testing/openapi/spec.h"
#include "vmm/vmm.h"

namespace vmctl::testing {

// The error code of a failed result; nullopt when it succeeded.
template <typename T>
std::optional<ErrorCode> CodeOf(const Result<T>& result) {
  if (result.ok()) return std::nullopt;
  return result.error().code();
}

// Shared by the Cloud Hypervisor and Firecracker driver tests: a runtime directory, a launch
// spec, the reference spec, golden files, and fake_vmm's control and request files (see
// fake_vmm.cc).
class DriverTest : public ::testing::Test {
 protected:
  void SetUpSpec(const std::string& spec_file) {
    char dir[] = "/tmp/vmctl-drv-XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    dir_ = dir;
    auto spec = OpenApiSpec::Load(std::filesystem::path(VMCTL_REFERENCE_DIR) / spec_file);
    ASSERT_TRUE(spec.ok()) << spec.error().message();
    spec_ = std::move(spec).value();
  }

  // A test that fails half-way may leave its VMM running: whatever still names this test's
  // directory on its command line is killed by PID before the directory goes.
  void TearDown() override {
    for (const auto& process : ProcessesUsingDir()) (void)process.Kill();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  std::vector<ProcessRef> ProcessesUsingDir() const {
    std::vector<ProcessRef> out;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
      const std::string name = entry.path().filename().string();
      if (name.find_first_not_of("0123456789") != std::string::npos) continue;
      auto process = ProcessRef::Of(std::stoi(name));
      if (!process.ok() || process->pid == ::getpid() || !process->Alive()) continue;
      for (const auto& arg : process->Cmdline()) {
        if (arg.rfind(dir_.string() + "/", 0) == 0) {
          out.push_back(*process);
          break;
        }
      }
    }
    return out;
  }

  // Two disks (the root in `root_format`, a raw read-only data disk) and a NIC.
  vmm::LaunchSpec Spec(vmm::DiskSpec::Format root_format) const {
    vmm::LaunchSpec spec;
    spec.vm_id = "0123456789ab";
    spec.vm_name = "demo";
    spec.cpus = 2;
    spec.memory_mib = 1024;
    spec.kernel = "/images/h/vmlinux";
    spec.initramfs = "/images/h/initramfs.cpio.gz";
    spec.kernel_cmdline = "root=/dev/vda rw panic=-1";
    spec.disks = {{dir_ / "root.img", root_format, false},
                  {dir_ / "data.img", vmm::DiskSpec::Format::kRaw, true}};
    spec.net = vmm::NetSpec{"vm0123456789ab", "02:00:01:23:45:67"};
    spec.runtime_dir = dir_;
    spec.console_log = dir_ / "console.log";
    spec.vmm_log = dir_ / "vmm.log";
    return spec;
  }

  // The least a VM can be: no initramfs, command line, data disk or NIC.
  vmm::LaunchSpec MinimalSpec() const {
    vmm::LaunchSpec spec = Spec(vmm::DiskSpec::Format::kRaw);
    spec.cpus = 1;
    spec.memory_mib = 128;
    spec.initramfs.clear();
    spec.kernel_cmdline.clear();
    spec.disks.resize(1);
    spec.net.reset();
    return spec;
  }

  // Golden files use a fixed runtime directory.
  nlohmann::json WithFixedPaths(const nlohmann::json& j) const {
    std::string text = j.dump();
    const std::string from = dir_.string();
    for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at)) {
      text.replace(at, from.size(), "/run/vmctl/vms/0123456789ab");
    }
    return nlohmann::json::parse(text);
  }

  // Compares with a file under the source tree; UPDATE_GOLDEN=1 rewrites it instead.
  static void ExpectGolden(const nlohmann::json& actual, const std::string& relative) {
    std::filesystem::path path = std::filesystem::path(VMCTL_SOURCE_DIR) / relative;
    if (std::getenv("UPDATE_GOLDEN")) {
      std::ofstream(path) << actual.dump(2) << "\n";
      return;
    }
    auto expected = ReadFile(path);
    ASSERT_TRUE(expected.ok()) << "missing " << path << " (run with UPDATE_GOLDEN=1)";
    EXPECT_EQ(actual, nlohmann::json::parse(*expected)) << relative << " differs; actual:\n"
                                                        << actual.dump(2);
  }

  // Replaces fake_vmm's control file (read before every request).
  void Control(const std::string& directives) const {
    std::ofstream(dir_ / "fake_vmm.control", std::ios::trunc) << directives << "\n";
  }

  std::vector<nlohmann::json> Recorded() const {
    std::vector<nlohmann::json> out;
    std::ifstream in(dir_ / "fake_vmm.requests.jsonl");
    std::string line;
    while (std::getline(in, line)) out.push_back(nlohmann::json::parse(line));
    return out;
  }

  // "METHOD PATH" of every request fake_vmm received, in order.
  std::vector<std::string> Calls() const {
    std::vector<std::string> out;
    for (const auto& r : Recorded()) {
      out.push_back(r["method"].get<std::string>() + " " + r["path"].get<std::string>());
    }
    return out;
  }

  // Every request the driver sent conforms to the spec, and so does every answer it got.
  void ExpectAllConformant() const {
    for (const auto& r : Recorded()) {
      EXPECT_EQ(r["request_error"], "") << r.dump();
      EXPECT_EQ(r["answer_error"], "") << r.dump();
    }
  }

  // Files in the runtime directory other than the logs and fake_vmm's own.
  std::set<std::string> Leftovers() const {
    std::set<std::string> out;
    for (const auto& entry : std::filesystem::directory_iterator(dir_)) {
      const std::string name = entry.path().filename().string();
      if (name == "console.log" || name == "vmm.log" || name.rfind("fake_vmm.", 0) == 0) continue;
      out.insert(name);
    }
    return out;
  }

  std::filesystem::path dir_;
  OpenApiSpec spec_;
};

}  // namespace vmctl::testing

#endif  // VMCTL_TESTING_OPENAPI_DRIVER_FIXTURE_H_
