// Bad input and faults (Milestone 1, section 6): each gives one clear error line, a distinct exit
// code, and leaves the database consistent with no process, socket or file behind.
#include <gtest/gtest.h>

#include <fstream>

#include "base/io.h"
#include "tests/e2e/daemon.h"

namespace vmctl::e2e {
namespace {

using nlohmann::json;

void ExpectNothingLeft(const TestDaemon& d) {
  auto db = d.state_dir() / "vmctl.db";
  EXPECT_EQ(Sql(db, "select count(*) from vms where state not in ('failed')"), "0");
  EXPECT_TRUE(d.ProcessesUsingStateDir().empty());
  // Failed VMs keep their disk and console log for inspection; nothing else may exist.
  std::error_code ec;
  for (const auto& vm : std::filesystem::directory_iterator(d.state_dir() / "vms", ec)) {
    for (const auto& f : std::filesystem::directory_iterator(vm.path())) {
      auto name = f.path().filename().string();
      EXPECT_TRUE(name == "root.qcow2" || name == "console.log" || name == "vmm.log")
          << "left behind: " << f.path();
    }
  }
}

TEST(BadInputTest, InvalidRequestsGetClearErrorsAndChangeNothing) {
  TestDaemon d({"--max-memory-mib", "1024"});
  d.Start();
  struct Case {
    std::vector<std::string> args;
    int exit_code;
    std::string message;
  };
  std::vector<Case> cases = {
      {{"create", ""}, 2, "must not be empty"},
      {{"create", std::string(33, 'a')}, 2, "too long"},
      {{"create", "../etc"}, 2, "must start with a lowercase letter"},
      {{"create", "a b"}, 2, "only lowercase letters"},
      {{"create", "Demo"}, 2, "must start with a lowercase letter"},
      {{"create", "x;reboot"}, 2, "only lowercase letters"},
      {{"create", "x$(id)"}, 2, "only lowercase letters"},
      {{"create", "ok", "--memory", "64M"}, 2, "memory must be between"},
      {{"create", "ok", "--memory", "lots"}, 2, "bad size"},
      {{"create", "ok", "--cpus", "0"}, 2, "cpus must be between"},
      {{"create", "ok", "--cpus", "65"}, 2, "cpus must be between"},
      {{"create", "ok", "--root-disk", "100M"}, 2, "root disk must be between"},
      {{"create", "ok", "--root-disk", "600M"}, 2, "smaller than image"},
      {{"create", "ok", "--disk", "10M"}, 2, "disk must be 0 (none) or between"},
      {{"resize", "ghost", "--disk", "2G"}, 3, "no VM named 'ghost'"},
      {{"resize", "ghost"}, 2, "give --disk SIZE"},
      {{"image", "build", "x", "--from-oci", "/nonexistent/image.tar"}, 3, "no OCI image at"},
      {{"image", "build", "Bad/Name"}, 2, "image name"},
      {{"image", "build", "x", "--packages", "curl;reboot"}, 2, "not a package name"},
      {{"image", "rm", "nope"}, 3, "no image 'nope'"},
      {{"create", "ok", "--memory", "2G"}, 6, "quota exceeded"},
      {{"create", "ok", "--image", "nope"}, 3, "image 'nope' not found"},
      {{"show", "ghost"}, 3, "no VM named 'ghost'"},
      {{"exec", "ghost", "--", "true"}, 3, "no VM named 'ghost'"},
      {{"rm", "ghost"}, 3, "no VM named 'ghost'"},
      {{"start", "ghost"}, 3, "no VM named 'ghost'"},
      {{"image", "build", "custom"}, 3, "no recipe for image 'custom'"},
  };
  for (const auto& c : cases) {
    auto out = d.Vmctl(c.args);
    std::string shown;
    for (const auto& a : c.args) shown += a + " ";
    EXPECT_EQ(out.exit_code, c.exit_code) << shown << "\n" << out.err;
    EXPECT_NE(out.err.find(c.message), std::string::npos) << shown << "\n" << out.err;
    EXPECT_EQ(std::count(out.err.begin(), out.err.end(), '\n'), 1) << "one line: " << out.err;
  }
  ExpectNothingLeft(d);
  EXPECT_EQ(Sql(d.state_dir() / "vmctl.db", "select count(*) from vms"), "0");
}

TEST(BadInputTest, MalformedApiRequestsAreRejected) {
  TestDaemon d;
  d.Start();
  auto curl = [&](const std::vector<std::string>& args) {
    std::vector<std::string> argv = {
        "curl", "-s", "-w", "\n%{http_code}", "--unix-socket", d.socket().string()};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCommand(argv)->out;
  };
  auto bad_json = curl({"-X", "POST", "-d", "{\"name\": ", "http://vmctl/v1/vms"});
  EXPECT_NE(bad_json.find("not valid JSON"), std::string::npos) << bad_json;
  EXPECT_TRUE(bad_json.ends_with("\n400")) << bad_json;
  auto wrong_type =
      curl({"-X", "POST", "-d", R"({"name":"a","cpus":"many"})", "http://vmctl/v1/vms"});
  EXPECT_NE(wrong_type.find("'cpus' must be an integer"), std::string::npos) << wrong_type;
  auto unknown = curl({"http://vmctl/v1/nothing"});
  EXPECT_TRUE(unknown.ends_with("\n404")) << unknown;
  auto method = curl({"-X", "PUT", "http://vmctl/v1/vms"});
  EXPECT_TRUE(method.ends_with("\n405")) << method;
  auto parsed = json::parse(bad_json.substr(0, bad_json.rfind('\n')), nullptr, false);
  ASSERT_TRUE(parsed.is_object());
  EXPECT_EQ(parsed["error"]["code"], "invalid_argument");
  ExpectNothingLeft(d);
}

TEST(BadInputTest, ImageWithMissingKernelIsRefused) {
  TestDaemon d;
  d.Start();
  auto db = d.state_dir() / "vmctl.db";
  // An image whose kernel file vanished (e.g. deleted from the cache by hand).
  Sql(db,
      "insert into images (name, input_hash, dir, kernel, initramfs, rootfs, kernel_version, "
      "source, size_bytes, created_at, config) select 'broken', input_hash, dir, "
      "'/nonexistent/vmlinux', initramfs, rootfs, kernel_version, source, size_bytes, created_at, "
      "config from images where name='default'");
  auto out = d.Vmctl({"create", "vm", "--image", "broken"});
  EXPECT_EQ(out.exit_code, 5) << out.err;
  EXPECT_NE(out.err.find("missing its kernel"), std::string::npos) << out.err;
  ExpectNothingLeft(d);
  EXPECT_EQ(Sql(db, "select count(*) from vms"), "0");
}

TEST(BadInputTest, VmmDyingDuringBootMarksFailedWithConsoleTail) {
  TestDaemon d;
  d.Start();
  auto db = d.state_dir() / "vmctl.db";
  // A build whose root filesystem is zeros: the initramfs cannot mount it, says so on the console
  // and powers off, so QEMU exits in the middle of the boot.
  auto build = d.state_dir() / "images" / "noroot-build";
  std::filesystem::create_directories(build);
  auto default_dir = Sql(db, "select dir from images where name='default'");
  for (const char* f : {"vmlinux", "initramfs.cpio.gz"}) {
    std::filesystem::create_hard_link(std::filesystem::path(default_dir) / f, build / f);
  }
  auto zeros = build / "rootfs.ext4";
  { std::ofstream(zeros).close(); }
  std::filesystem::resize_file(zeros, 64 << 20);
  Sql(db,
      "insert into images (name, input_hash, dir, kernel, initramfs, rootfs, kernel_version, "
      "source, size_bytes, created_at, config) select 'noroot', input_hash, '" +
          build.string() + "', '" + (build / "vmlinux").string() + "', '" +
          (build / "initramfs.cpio.gz").string() + "', '" + zeros.string() +
          "', kernel_version, source, size_bytes, created_at, config from images where "
          "name='default'");
  auto out = d.Vmctl({"create", "doomed", "--image", "noroot"});
  EXPECT_NE(out.exit_code, 0);
  EXPECT_NE(out.err.find("last console output"), std::string::npos) << out.err;
  auto vm = d.Show("doomed");
  ASSERT_TRUE(vm.has_value());
  EXPECT_EQ((*vm)["state"], "failed");
  EXPECT_FALSE((*vm)["error"].get<std::string>().empty());
  EXPECT_EQ((*vm)["pid"], 0);
  ExpectNothingLeft(d);
  ASSERT_EQ(d.Vmctl({"rm", "doomed"}).exit_code, 0);
  EXPECT_EQ(Sql(db, "select count(*) from vms"), "0");
}

TEST(BadInputTest, AgentTimeoutMarksFailedAndKillsTheVmm) {
  // Far shorter than a TCG boot of the default image, so the agent cannot answer in time.
  TestDaemon d({"--boot-timeout", "2"});
  d.Start();
  auto out = d.Vmctl({"create", "slow"});
  EXPECT_EQ(out.exit_code, 8) << out.err;
  EXPECT_NE(out.err.find("did not answer within 2 s"), std::string::npos) << out.err;
  EXPECT_EQ((*d.Show("slow"))["state"], "failed");
  ExpectNothingLeft(d);
}

}  // namespace
}  // namespace vmctl::e2e
