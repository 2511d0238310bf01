// Storage and images end to end: data disks that persist, disks that grow, reflink clones on XFS,
// and VMs booted from OCI images, with a real daemon and real QEMU guests.
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "base/io.h"
#include "tests/e2e/daemon.h"
#include "tests/e2e/oci_layout.h"

namespace vmctl::e2e {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using std::chrono::seconds;

constexpr int64_t kMib = int64_t{1} << 20;

// Size of the filesystem mounted at `path` in the VM, in MiB.
int64_t GuestFsMib(const TestDaemon& d, const std::string& vm, const std::string& path) {
  auto out = d.Vmctl({"exec", vm, "--", "sh", "-c", "df -P -k " + path + " | tail -1"});
  std::istringstream fields(out.out);
  std::string device;
  int64_t kib = 0;
  fields >> device >> kib;
  return kib / 1024;
}

json DiskOf(const json& vm, const std::string& role) {
  for (const auto& d : vm.value("disks", json::array())) {
    if (d.value("role", "") == role) return d;
  }
  return json::object();
}

TEST(StorageTest, TheDataDiskPersistsAndGoesWithTheVm) {
  TestDaemon d;
  d.Start();
  auto created = d.Vmctl({"create", "keep", "--disk", "256M"});
  ASSERT_EQ(created.exit_code, 0) << created.err;
  EXPECT_NE(created.err.find("Formatted and mounted a"), std::string::npos) << created.err;
  auto mounted = d.Vmctl({"exec", "keep", "--", "findmnt", "-n", "-o", "SOURCE,FSTYPE", "/data"});
  EXPECT_EQ(Trim(mounted.out), "/dev/vdb ext4") << mounted.err;
  EXPECT_GT(GuestFsMib(d, "keep", "/data"), 200);
  ASSERT_EQ(
      d.Vmctl({"exec", "keep", "--", "sh", "-c", "echo precious > /data/kept && sync"}).exit_code,
      0);

  auto vm = d.Show("keep");
  ASSERT_TRUE(vm);
  json data = DiskOf(*vm, "data");
  EXPECT_EQ(data.value("size_bytes", int64_t{0}), 256 * kMib) << vm->dump();
  EXPECT_GT(data.value("allocated_bytes", int64_t{0}), 0);
  EXPECT_LT(data.value("allocated_bytes", int64_t{0}), 64 * kMib) << "a fresh disk is sparse";
  auto shown = d.Vmctl({"show", "keep"});
  EXPECT_NE(shown.out.find("data disk:"), std::string::npos) << shown.out;
  EXPECT_NE(shown.out.find("MiB allocated"), std::string::npos) << shown.out;

  ASSERT_EQ(d.Vmctl({"stop", "keep"}).exit_code, 0);
  auto started = d.Vmctl({"start", "keep"});
  ASSERT_EQ(started.exit_code, 0) << started.err;
  EXPECT_NE(started.err.find("Mounted the 2"), std::string::npos)
      << "never formatted twice: " << started.err;
  EXPECT_EQ(d.Vmctl({"exec", "keep", "--", "cat", "/data/kept"}).out, "precious\n");

  d.Kill9();
  d.Start();
  EXPECT_EQ(d.Vmctl({"exec", "keep", "--", "cat", "/data/kept"}).out, "precious\n");

  // qcow2 cannot grow while QEMU holds it: the size is kept for the next start.
  auto resized = d.Vmctl({"resize", "keep", "--disk", "512M"});
  ASSERT_EQ(resized.exit_code, 0) << resized.err;
  EXPECT_NE(resized.err.find("grow at the next start"), std::string::npos) << resized.err;
  auto shrink = d.Vmctl({"resize", "keep", "--disk", "128M"});
  EXPECT_EQ(shrink.exit_code, 2);
  EXPECT_NE(shrink.err.find("cannot shrink"), std::string::npos) << shrink.err;
  auto restarted = d.Vmctl({"restart", "keep"});
  ASSERT_EQ(restarted.exit_code, 0) << restarted.err;
  EXPECT_NE(restarted.err.find("Grew the data disk from 256 to 512 MiB"), std::string::npos)
      << restarted.err;
  EXPECT_GT(GuestFsMib(d, "keep", "/data"), 450);
  EXPECT_EQ(d.Vmctl({"exec", "keep", "--", "cat", "/data/kept"}).out, "precious\n");

  std::string id = vm->value("id", "");
  ASSERT_TRUE(fs::exists(d.state_dir() / "disks" / id));
  ASSERT_EQ(d.Vmctl({"rm", "keep"}).exit_code, 0);
  EXPECT_FALSE(fs::exists(d.state_dir() / "disks" / id)) << "the disks go with the VM";
}

// An XFS filesystem in a file, loop-mounted in this test process's private mount namespace (the
// daemon inherits it), so nothing stays mounted if the test dies.
class XfsMount {
 public:
  explicit XfsMount(const fs::path& dir) : dir_(dir) {
    static const bool unshared = ::unshare(CLONE_NEWNS) == 0 &&
                                 ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) == 0;
    EXPECT_TRUE(unshared);
    fs::create_directories(dir_ / "mnt");
    image_ = dir_ / "xfs.img";
    EXPECT_TRUE(WriteFileAtomic(image_, "").ok());
    fs::resize_file(image_, 4096 * kMib);
    auto mkfs = RunCommandChecked({"mkfs.xfs", "-q", image_.string()});
    EXPECT_TRUE(mkfs.ok()) << mkfs.error().message();
    auto mounted = RunCommandChecked({"mount", "-o", "loop", image_.string(), mount().string()});
    EXPECT_TRUE(mounted.ok()) << mounted.error().message();
  }
  ~XfsMount() {
    (void)RunCommand({"umount", mount().string()});
    // The loop device of exactly this file, never one found by name.
    auto loops = RunCommand({"losetup", "-j", image_.string()});
    if (loops.ok()) {
      std::istringstream lines(loops->out);
      std::string line;
      while (std::getline(lines, line)) {
        (void)RunCommand({"losetup", "-d", line.substr(0, line.find(':'))});
      }
    }
  }
  fs::path mount() const { return dir_ / "mnt"; }

 private:
  fs::path dir_, image_;
};

TEST(StorageTest, ReflinkClonesOnXfsGrowOnline) {
  TestDaemon d({"--storage", "reflink"});
  XfsMount xfs(d.dir());
  // The storage directory must be on XFS; the daemon gets it through --storage-dir.
  TestDaemon on_xfs({"--storage", "reflink", "--storage-dir", (xfs.mount() / "disks").string()});
  on_xfs.Start();
  EXPECT_NE(TailFile(on_xfs.log(), 8000).find("storage: reflink"), std::string::npos)
      << TailFile(on_xfs.log(), 8000);

  auto free_bytes = [&] {
    struct statvfs st {};
    ::statvfs(xfs.mount().c_str(), &st);
    return static_cast<int64_t>(st.f_bavail) * static_cast<int64_t>(st.f_frsize);
  };
  // The first VM copies the image onto the filesystem once (the base); later ones only clone it.
  ASSERT_EQ(on_xfs.Vmctl({"create", "first", "--disk", "0"}).exit_code, 0);
  const int64_t before = free_bytes();
  auto created = on_xfs.Vmctl({"create", "grow", "--disk", "256M"});
  ASSERT_EQ(created.exit_code, 0) << created.err;
  // A clone shares the image's blocks: the filesystem pays only for what the guest wrote.
  EXPECT_LT(before - free_bytes(), 160 * kMib) << "a 2 GiB root disk of a 665 MiB image";
  auto vm = on_xfs.Show("grow");
  ASSERT_TRUE(vm);
  EXPECT_EQ(vm->value("storage", ""), "reflink");
  json root = DiskOf(*vm, "root");
  EXPECT_EQ(root.value("format", ""), "raw");

  ASSERT_EQ(
      on_xfs.Vmctl({"exec", "grow", "--", "sh", "-c", "echo before > /data/f && sync"}).exit_code,
      0);
  auto grown = on_xfs.Vmctl({"resize", "grow", "--disk", "640M", "--root-disk", "3G"});
  ASSERT_EQ(grown.exit_code, 0) << grown.err;
  EXPECT_NE(grown.err.find("Grew the data disk to 640 MiB online"), std::string::npos) << grown.err;
  EXPECT_NE(grown.err.find("Grew the root disk to 3072 MiB online"), std::string::npos)
      << grown.err;
  // Seen by the running guest, without a restart.
  EXPECT_GT(GuestFsMib(on_xfs, "grow", "/data"), 580);
  EXPECT_GT(GuestFsMib(on_xfs, "grow", "/"), 2800);
  EXPECT_EQ(on_xfs.Vmctl({"exec", "grow", "--", "cat", "/data/f"}).out, "before\n");

  std::string id = vm->value("id", "");
  ASSERT_EQ(on_xfs.Vmctl({"rm", "grow"}).exit_code, 0);
  ASSERT_EQ(on_xfs.Vmctl({"rm", "first"}).exit_code, 0);
  EXPECT_FALSE(fs::exists(xfs.mount() / "disks" / id));
  on_xfs.Stop();

  // Reflink is never silently replaced: on a filesystem without it the daemon refuses to start.
  auto refused = d.StartExpectingFailure();
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_NE((refused.out + refused.err).find("reflink"), std::string::npos)
      << refused.out << refused.err;
}

// The Debian root filesystem that `make test` built the default image from: a bootable base
// layer without another mmdebstrap run.
fs::path CachedDebianRootfs() {
  const char* cache = std::getenv("VMCTL_IMAGE_CACHE");
  fs::path dir = cache && *cache ? cache : "/var/cache/vmctl/images";
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    std::string name = e.path().filename().string();
    if (name.starts_with("rootfs-") && name.ends_with(".tar")) return e.path();
  }
  return {};
}

void Write(const fs::path& file, const std::string& text) {
  fs::create_directories(file.parent_path());
  ASSERT_TRUE(WriteFileAtomic(file, text).ok());
}

TEST(ImageTest, OciImagesBootWithTheirLayersAndStayWhileUsed) {
  fs::path base = CachedDebianRootfs();
  ASSERT_FALSE(base.empty()) << "no cached Debian rootfs: run `make test` (it builds the image)";
  TestDaemon d;
  d.Start();
  fs::path work = d.dir() / "oci";
  OciLayout layout(work / "v1");
  layout.AddLayer(base);
  Write(work / "l2/etc/vmctl-oci-test", "layer2\n");
  Write(work / "l2/opt/gone", "deleted by layer 3\n");
  Write(work / "l2/opt/dir/x", "x\n");
  Write(work / "l2/opt/dir/y", "y\n");
  layout.AddLayer(work / "l2");
  Write(work / "l3/opt/.wh.gone", "");
  Write(work / "l3/opt/dir/z", "z\n");
  Write(work / "l3/opt/dir/.wh..wh..opq", "");
  Write(work / "l3/etc/.wh.motd", "");
  Write(work / "l3/usr/share/doc/.wh..wh..opq", "");
  Write(work / "l3/usr/share/doc/README", "only this\n");
  layout.AddLayer(work / "l3");
  layout.Finish();

  auto built =
      d.Vmctl({"image", "build", "ocitest", "--from-oci", layout.dir().string()}, "", seconds(600));
  ASSERT_EQ(built.exit_code, 0) << built.err;
  EXPECT_NE(built.err.find("Applying layer 3/3"), std::string::npos) << built.err;
  auto listed = d.Vmctl({"image", "ls"});
  EXPECT_NE(listed.out.find("oci:" + layout.dir().string()), std::string::npos) << listed.out;
  auto images = json::parse(d.Vmctl({"image", "ls", "--json"}).out, nullptr, false);
  json config;
  for (const auto& i : images) {
    if (i.value("name", "") == "ocitest") config = i["config"];
  }
  EXPECT_EQ(config.value("exposed_ports", json::array()), json({"8080/tcp"})) << images.dump();
  EXPECT_EQ(config.value("user", ""), "root");

  ASSERT_EQ(d.Vmctl({"create", "o1", "--image", "ocitest", "--disk", "0"}).exit_code, 0);
  auto sh = [&](const std::string& vm, const std::string& script) {
    return Trim(d.Vmctl({"exec", vm, "--", "sh", "-c", script}).out);
  };
  EXPECT_EQ(sh("o1", "cat /etc/vmctl-oci-test"), "layer2");
  EXPECT_EQ(sh("o1", "test -e /opt/gone && echo present || echo whited-out"), "whited-out");
  EXPECT_EQ(sh("o1", "ls /opt/dir | tr '\\n' ' '"), "z") << "opaque dir hides x and y";
  EXPECT_EQ(sh("o1", "test -e /etc/motd && echo present || echo whited-out"), "whited-out");
  EXPECT_EQ(sh("o1", "ls /usr/share/doc | tr '\\n' ' '"), "README");
  EXPECT_EQ(sh("o1", "test -d /data && echo data || echo no-data"), "no-data") << "--disk 0";

  auto in_use = d.Vmctl({"image", "rm", "ocitest"});
  EXPECT_EQ(in_use.exit_code, 5);
  EXPECT_NE(in_use.err.find("in use by 1 VM (o1)"), std::string::npos) << in_use.err;

  // A rebuild moves the name to a new build; o1 keeps booting the build it was cloned from.
  OciLayout v2(work / "v2");
  v2.AddLayer(base);
  v2.AddLayer(work / "l2");
  v2.AddLayer(work / "l3");
  Write(work / "l4/etc/vmctl-oci-v2", "v2\n");
  v2.AddLayer(work / "l4");
  v2.Finish();
  ASSERT_EQ(
      d.Vmctl({"image", "build", "ocitest", "--from-oci", v2.dir().string()}, "", seconds(600))
          .exit_code,
      0);
  ASSERT_EQ(d.Vmctl({"create", "o2", "--image", "ocitest", "--disk", "0"}).exit_code, 0);
  EXPECT_EQ(sh("o2", "cat /etc/vmctl-oci-v2"), "v2");
  ASSERT_EQ(d.Vmctl({"restart", "o1"}).exit_code, 0);
  EXPECT_EQ(sh("o1", "test -e /etc/vmctl-oci-v2 && echo v2 || echo v1"), "v1");
  EXPECT_NE(d.Show("o1")->value("image_dir", ""), d.Show("o2")->value("image_dir", ""));

  ASSERT_EQ(d.Vmctl({"rm", "o1"}).exit_code, 0);
  ASSERT_EQ(d.Vmctl({"rm", "o2"}).exit_code, 0);
  auto removed = d.Vmctl({"image", "rm", "ocitest"});
  ASSERT_EQ(removed.exit_code, 0) << removed.err;
  EXPECT_NE(removed.err.find("Removed image build"), std::string::npos) << removed.err;
  size_t builds = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(d.state_dir() / "images")) ++builds;
  EXPECT_EQ(builds, 1u) << "only the default image's build is left";
}

// An image of busybox alone, as many OCI images are: no systemd, no libc, no sshd. The agent is
// its init and brings sshd, ip and e2fsprogs along; the image's entrypoint runs as its user.
TEST(ImageTest, AnImageWithoutSystemdBootsWithTheAgentAsInit) {
  TestDaemon d;
  d.Start();
  fs::path work = d.dir() / "busybox";
  fs::path tree = work / "tree";
  fs::create_directories(tree / "bin");
  fs::copy_file("/bin/busybox", tree / "bin/busybox");
  auto applets = RunCommandChecked({"/bin/busybox", "--list"});
  ASSERT_TRUE(applets.ok());
  std::istringstream names(applets->out);
  for (std::string name; std::getline(names, name);) {
    if (!name.empty() && name != "busybox") fs::create_symlink("busybox", tree / "bin" / name);
  }
  Write(tree / "etc/passwd", "root:x:0:0:root:/root:/bin/sh\nwww:x:1000:1000::/www:/bin/sh\n");
  Write(tree / "etc/group", "root:x:0:\nwww:x:1000:\n");
  Write(tree / "www/index.html", "hello from busybox\n");
  OciLayout layout(work / "layout");
  layout.AddLayer(tree);
  layout.Finish({{"User", "www"},
                 {"WorkingDir", "/www"},
                 {"Entrypoint", {"/bin/httpd", "-f", "-p", "8080"}},
                 {"Cmd", {"-h", "/www"}}});

  auto built =
      d.Vmctl({"image", "build", "bb", "--from-oci", layout.dir().string()}, "", seconds(600));
  ASSERT_EQ(built.exit_code, 0) << built.err;
  EXPECT_NE(built.err.find("the agent will be its init"), std::string::npos) << built.err;
  auto created = d.Vmctl({"create", "bb", "--image", "bb"});
  ASSERT_EQ(created.exit_code, 0) << created.err;
  // Running once the agent as init has started every service of the image.
  EXPECT_NE(created.err.find("The guest finished booting (vmctl-agent: running)"),
            std::string::npos)
      << created.err;
  auto sh = [&](const std::string& script) {
    return Trim(d.Vmctl({"exec", "bb", "--", "sh", "-c", script}).out);
  };
  EXPECT_EQ(sh("cat /proc/1/comm"), "vmctl-agent");
  // The data disk was formatted by the bundled mkfs.ext4 and mounted.
  EXPECT_EQ(sh("grep -c ' /data ext4 ' /proc/mounts"), "1");
  EXPECT_GT(GuestFsMib(d, "bb", "/data"), 900);
  EXPECT_EQ(sh("echo kept > /data/file && sync && cat /data/file"), "kept");
  // The entrypoint serves from its working dir as its user, reachable on the VM's address.
  std::string address = d.Show("bb")->value("address", "");
  ASSERT_FALSE(address.empty());
  RunOutput page;
  auto deadline = std::chrono::steady_clock::now() + seconds(60);
  while (std::chrono::steady_clock::now() < deadline) {
    page = d.netns().Run({"curl", "-sS", "--max-time", "3", "http://" + address + ":8080/"});
    if (page.exit_code == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  EXPECT_EQ(Trim(page.out), "hello from busybox") << page.err;
  EXPECT_EQ(sh("stat -c %U /proc/$(pidof httpd)"), "www");

  // sshd with host keys made on this VM's first boot, and a login with a key.
  fs::path key = work / "id_ed25519";
  ASSERT_TRUE(
      RunCommandChecked({"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key.string()}).ok());
  ASSERT_EQ(d.Vmctl({"exec", "bb", "--", "sh", "-c",
                     "mkdir -p -m 700 /root/.ssh && cat > /root/.ssh/authorized_keys"},
                    *ReadFile(key.string() + ".pub"))
                .exit_code,
            0);
  // Host keys take seconds to make in an emulated guest on a loaded machine.
  std::string host_key =
      sh("for i in $(seq 120); do test -s /etc/ssh/ssh_host_ed25519_key.pub && "
         "pidof sshd >/dev/null && break; sleep 0.5; done; cat /etc/ssh/ssh_host_ed25519_key.pub");
  ASSERT_FALSE(host_key.empty());
  std::vector<std::string> ssh = {"ssh",
                                  "-i",
                                  key.string(),
                                  "-o",
                                  "StrictHostKeyChecking=no",
                                  "-o",
                                  "UserKnownHostsFile=/dev/null",
                                  "-o",
                                  "BatchMode=yes",
                                  "root@" + address,
                                  "cat /proc/1/comm; id -u"};
  RunOutput login;
  for (int i = 0; i < 50; ++i) {
    login = d.netns().Run(ssh);
    if (login.exit_code == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  EXPECT_EQ(Trim(login.out), "vmctl-agent\n0") << login.err;

  // A graceful stop through the agent as init; data and host keys stay.
  auto stopped = d.Vmctl({"stop", "bb"});
  ASSERT_EQ(stopped.exit_code, 0) << stopped.err;
  EXPECT_EQ(d.Show("bb")->value("state", ""), "stopped");
  ASSERT_EQ(d.Vmctl({"start", "bb"}).exit_code, 0);
  EXPECT_EQ(sh("cat /data/file"), "kept");
  EXPECT_EQ(sh("cat /etc/ssh/ssh_host_ed25519_key.pub"), host_key);
  ASSERT_EQ(d.Vmctl({"rm", "bb"}).exit_code, 0);
}

TEST(ImageTest, AMaliciousOciArchiveIsRefusedAndRegistersNothing) {
  TestDaemon d;
  d.Start();
  fs::path work = d.dir() / "evil";
  Write(work / "tree/etc/ok", "fine\n");
  OciLayout layout(work / "layout");
  layout.AddLayer(work / "tree");
  // A layer whose entry climbs out of the root.
  fs::path evil_tar = work / "evil.tar";
  Write(work / "escape/x", "pwned\n");
  // -P keeps the "../" that tar would otherwise strip.
  auto tar =
      RunCommandChecked({"tar", "-P", "-C", (work / "escape").string(), "-cf", evil_tar.string(),
                         "--transform", "s,^\\./x,../../escaped,", "./x"});
  ASSERT_TRUE(tar.ok()) << tar.error().message();
  layout.AddLayer(evil_tar);
  layout.Finish();
  auto archive = work / "evil-image.tar";
  ASSERT_TRUE(
      RunCommandChecked({"tar", "-C", layout.dir().string(), "-cf", archive.string(), "."}).ok());

  auto built =
      d.Vmctl({"image", "build", "evil", "--from-oci", archive.string()}, "", seconds(600));
  EXPECT_EQ(built.exit_code, 2) << built.err;
  EXPECT_NE(built.err.find(".."), std::string::npos) << built.err;
  EXPECT_EQ(d.Vmctl({"image", "ls"}).out.find("evil"), std::string::npos);
  EXPECT_FALSE(fs::exists(d.dir() / "escaped"));
  EXPECT_FALSE(fs::exists("/var/cache/vmctl/escaped"));
}

}  // namespace
}  // namespace vmctl::e2e
