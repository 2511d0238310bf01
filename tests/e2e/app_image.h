#ifndef VMCTL_TESTS_E2E_APP_IMAGE_H_
#define VMCTL_TESTS_E2E_APP_IMAGE_H_

#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "base/io.h"
#include "tests/e2e/daemon.h"
#include "tests/e2e/oci_layout.h"

namespace vmctl::e2e {

// The test daemon's own pages and the app VM's host, as the proxy serves them in its namespace.
inline constexpr char kApex[] = "https://vmctl.localhost:8443";
inline constexpr char kApp[] = "https://app.vmctl.localhost:8443";

// Builds image `name` on `d`: the test web app (testing/web_upstream, "hello from app") as init
// on port 80, with busybox beside it, from an OCI layout. Boots in seconds and needs no default
// image. Fails the test on error (call it under ASSERT_NO_FATAL_FAILURE).
inline void BuildWebAppImage(const TestDaemon& d, const std::string& name) {
  namespace fs = std::filesystem;
  fs::path work = d.dir() / (name + "-image");
  fs::path tree = work / "tree";
  fs::create_directories(tree / "bin");
  fs::create_directories(tree / "etc");
  fs::copy_file(TestDaemon::Binary().parent_path() / "web_upstream", tree / "bin/web_upstream");
  fs::copy_file("/bin/busybox", tree / "bin/busybox");
  fs::create_symlink("busybox", tree / "bin/sh");
  ASSERT_TRUE(WriteFileAtomic(tree / "etc/passwd", "root:x:0:0:root:/root:/bin/sh\n").ok());
  OciLayout layout(work / "layout");
  layout.AddLayer(tree);
  layout.Finish({{"Entrypoint", {"/bin/web_upstream", "--name", "app", "0.0.0.0:80"}},
                 {"ExposedPorts", {{"80/tcp", nlohmann::json::object()}}}});
  auto built = d.Vmctl({"image", "build", name, "--from-oci", layout.dir().string()}, "",
                       std::chrono::seconds(600));
  ASSERT_EQ(built.exit_code, 0) << built.err;
}

}  // namespace vmctl::e2e

#endif  // VMCTL_TESTS_E2E_APP_IMAGE_H_
