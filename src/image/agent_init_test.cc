#include "image/agent_init.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include "base/io.h"
#include "base/process.h"

namespace vmctl::image {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

TEST(ParseLddTest, LibrariesLoaderAndMissingSonames) {
  constexpr char kOutput[] =
      "\tlinux-vdso.so.1 (0x00007ffd)\n"
      "\tlibcrypto.so.3 => /lib/x86_64-linux-gnu/libcrypto.so.3 (0x00007f2f)\n"
      "\tlibwrap.so.0 => not found\n"
      "\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f2e)\n"
      "\t/lib64/ld-linux-x86-64.so.2 (0x00007f30)\n";
  std::vector<std::string> missing;
  auto paths = ParseLdd(kOutput, &missing);
  EXPECT_EQ(paths, (std::vector<std::string>{"/lib/x86_64-linux-gnu/libcrypto.so.3",
                                             "/lib/x86_64-linux-gnu/libc.so.6",
                                             "/lib64/ld-linux-x86-64.so.2"}));
  EXPECT_EQ(missing, std::vector<std::string>{"libwrap.so.0"});
}

TEST(PlanServicesTest, TheImagesCommandThenHostKeysThenSshd) {
  json config = {{"user", "app:www"},
                 {"env", {"PATH=/app/bin:/usr/bin", "MODE=prod"}},
                 {"entrypoint", {"/app/run"}},
                 {"cmd", {"--port", "8080"}},
                 {"working_dir", "/app"}};
  auto plan = PlanServices(config);
  ASSERT_EQ(plan.services.size(), 3u);
  EXPECT_EQ(plan.services[1].argv, (std::vector<std::string>{"/opt/vmctl/bin/ssh-keygen", "-A"}));
  EXPECT_TRUE(plan.services[1].wait);
  EXPECT_EQ(plan.services[2].argv[0], "/opt/vmctl/bin/sshd");
  EXPECT_TRUE(plan.services[2].restart);
  const auto& app = plan.services[0];
  EXPECT_EQ(app.argv, (std::vector<std::string>{"/app/run", "--port", "8080"}));
  EXPECT_EQ(app.user, "app:www");
  EXPECT_EQ(app.cwd, "/app");
  EXPECT_EQ(app.env.size(), 2u);
  EXPECT_FALSE(app.restart);

  auto no_command = PlanServices({{"user", "root"}, {"entrypoint", json::array()}});
  EXPECT_EQ(no_command.services.size(), 2u);
}

// The bundled sshd and tools run in a root that has nothing but busybox: no libc of its own.
TEST(PrepareAgentInitTest, BundledToolsRunInAnImageWithoutLibc) {
  if (!AgentInitInputsKey().ok()) GTEST_SKIP() << AgentInitInputsKey().error().message();
  fs::path root = fs::path("/tmp") / ("agent-init-" + std::to_string(::getpid()));
  fs::remove_all(root);
  fs::create_directories(root / "bin");
  fs::create_directories(root / "etc");
  fs::copy_file("/bin/busybox", root / "bin/busybox");
  fs::create_symlink("busybox", root / "bin/sh");
  ASSERT_TRUE(WriteFileAtomic(root / "etc/passwd", "root:x:0:0:root:/root:/bin/sh\n").ok());
  // An absolute link means the image's own directory, never the host's.
  fs::path host_dir = fs::path("/tmp") / ("agent-init-escape-" + std::to_string(::getpid()));
  fs::create_directories(root / host_dir.relative_path());
  fs::create_symlink(host_dir, root / "opt");
  auto prepared = PrepareAgentInit(root, {{"cmd", {"sh"}}});
  ASSERT_TRUE(prepared.ok()) << prepared.error().message();
  EXPECT_FALSE(fs::exists(host_dir));
  EXPECT_TRUE(fs::exists(root / host_dir.relative_path() / "vmctl/bin/sshd"));
  auto passwd = ReadFile(root / "etc/passwd");
  EXPECT_NE(passwd->find("\nsshd:x:100:65534:"), std::string::npos) << *passwd;
  auto plan = agent::ParseInitPlan(*ReadFile(root / "etc/vmctl/init.json"));
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->services.front().argv, std::vector<std::string>{"sh"});
  // chroot with a private /dev is enough for the tools to load and check their configuration.
  auto run = [&](const std::string& command) {
    return RunCommand({"unshare", "--mount", "sh", "-c",
                       "mount -t devtmpfs none " + (root / "dev").string() + " && chroot " +
                           root.string() + " " + command});
  };
  auto keygen = run("/opt/vmctl/bin/ssh-keygen -A");
  ASSERT_TRUE(keygen.ok());
  EXPECT_EQ(keygen->exit_code, 0) << keygen->err;
  EXPECT_TRUE(fs::exists(root / "etc/ssh/ssh_host_ed25519_key"));
  fs::create_directories(root / "run/sshd");  // the agent makes it at boot
  auto sshd = run("/opt/vmctl/bin/sshd -t -f /opt/vmctl/etc/sshd_config");
  ASSERT_TRUE(sshd.ok());
  EXPECT_EQ(sshd->exit_code, 0) << sshd->err;
  auto mkfs = run("/opt/vmctl/bin/mkfs.ext4 -V");
  ASSERT_TRUE(mkfs.ok());
  EXPECT_EQ(mkfs->exit_code, 0) << mkfs->err;
  auto ip = run("/opt/vmctl/bin/ip -V");
  ASSERT_TRUE(ip.ok());
  EXPECT_EQ(ip->exit_code, 0) << ip->err;
  fs::remove_all(root);
}

}  // namespace
}  // namespace vmctl::image
