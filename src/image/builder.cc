#include "image/builder.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <openssl/evp.h>
#include <sys/file.h>
#include <unistd.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "base/io.h"
#include "base/process.h"
#include "base/unique_fd.h"
#include "image/agent_init.h"
#include "image/guest_files.h"
#include "image/in_root.h"
#include "image/oci.h"

namespace vmctl::image {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// Bump when the recipe below changes in a way the hashed inputs do not capture.
constexpr std::string_view kRecipeVersion = "vmctl-image-v4";
// Bump when the mmdebstrap invocation changes (names the cached root filesystem tarballs).
constexpr std::string_view kRootfsRecipe = "debian-bookworm-v1";
// udev is required: without it boot stalls 90 s on dev-ttyS0.device (see the KVM-less notes).
constexpr std::string_view kPackages =
    "systemd-sysv,udev,openssh-server,iproute2,e2fsprogs,kmod,ca-certificates,iputils-ping,"
    "procps,less,sudo,curl,netbase";
// Modules the initramfs needs to mount the root disk and expose the agent channel.
const std::vector<std::string> kInitramfsModules = {
    "virtio_pci", "virtio_mmio",    "virtio_blk",
    "virtio_net", "virtio_console", "vmw_vsock_virtio_transport",
    "ext4"};
// Module trees copied into the root filesystem (network, storage, filesystems, dm-thin).
const std::vector<std::string> kRootfsModuleDirs = {
    "kernel/drivers/virtio", "kernel/drivers/block", "kernel/drivers/net", "kernel/drivers/char",
    "kernel/drivers/md",     "kernel/drivers/scsi",  "kernel/fs",          "kernel/net",
    "kernel/crypto",         "kernel/lib",           "kernel/arch"};

void Step(const BuildOptions& o, const std::string& line) {
  if (o.progress) o.progress(line);
}

Error StepError(std::string_view step, const Error& e) {
  return Error(e.code(), fmt::format("image build failed at '{}': {}", step, e.message()));
}

// A directory removed on destruction unless released.
class TempDir {
 public:
  explicit TempDir(fs::path path) : path_(std::move(path)) {
    std::error_code ec;
    fs::remove_all(path_, ec);
    fs::create_directories(path_, ec);
  }
  ~TempDir() {
    if (!path_.empty()) {
      std::error_code ec;
      fs::remove_all(path_, ec);
    }
  }
  const fs::path& path() const { return path_; }
  void Release() { path_.clear(); }

 private:
  fs::path path_;
};

Result<std::string> Run(std::string_view step, const std::vector<std::string>& argv,
                        std::chrono::minutes timeout = std::chrono::minutes(15)) {
  auto out = RunCommandChecked(argv, RunOptions{.timeout = timeout});
  if (!out.ok()) return StepError(step, out.error());
  return out->out;
}

struct KernelPackage {
  std::string name;     // linux-image-6.1.0-56-amd64
  std::string version;  // 6.1.192-2
  std::string release;  // 6.1.0-56-amd64 (uname -r)
};

Result<KernelPackage> ResolveKernel() {
  auto depends = RunCommand({"apt-cache", "depends", "linux-image-amd64"});
  if (!depends.ok() || depends->out.find("Depends: linux-image-") == std::string::npos) {
    // Empty package lists on a fresh machine: refresh once.
    VMCTL_TRY(Run("apt-get update", {"apt-get", "update", "-qq"}));
    depends = RunCommand({"apt-cache", "depends", "linux-image-amd64"});
  }
  if (!depends.ok()) return StepError("resolve kernel", depends.error());
  auto at = depends->out.find("Depends: linux-image-");
  if (at == std::string::npos) {
    return NotFound("image build failed at 'resolve kernel': apt knows no linux-image-amd64");
  }
  KernelPackage k;
  k.name = depends->out.substr(at + 9, depends->out.find('\n', at) - at - 9);
  k.release = k.name.substr(std::string("linux-image-").size());
  VMCTL_ASSIGN_OR_RETURN(std::string show,
                         Run("resolve kernel", {"apt-cache", "show", "--no-all-versions", k.name}));
  auto v = show.find("\nVersion: ");
  if (v == std::string::npos) return NotFound("no version for " + k.name);
  k.version = show.substr(v + 10, show.find('\n', v + 1) - v - 10);
  return k;
}

// Downloads (cached) and unpacks the kernel package into dir: boot/vmlinuz-*, lib/modules/*.
Result<void> UnpackKernel(const BuildOptions& o, const KernelPackage& k, const fs::path& dir) {
  fs::path debs = o.cache_dir / "debs";
  fs::create_directories(debs);
  fs::path deb = debs / fmt::format("{}_{}_amd64.deb", k.name, k.version);
  if (!fs::exists(deb)) {
    Step(o, fmt::format("Downloading {} {}", k.name, k.version));
    TempDir download(debs / ".download");
    auto out =
        RunCommandChecked({"apt-get", "download", k.name + "=" + k.version},
                          RunOptions{.timeout = std::chrono::minutes(10), .cwd = download.path()});
    if (!out.ok()) return StepError("download kernel", out.error());
    for (const auto& f : fs::directory_iterator(download.path())) {
      if (f.path().extension() == ".deb") fs::rename(f.path(), deb);
    }
    if (!fs::exists(deb)) return NotFound("image build failed at 'download kernel': no .deb");
  }
  Step(o, "Unpacking the kernel and its modules");
  VMCTL_TRY(Run("unpack kernel", {"dpkg-deb", "-x", deb.string(), dir.string()}));
  // Debian generates modules.dep in postinst; we never install the package, so do it here.
  VMCTL_TRY(Run("depmod", {"depmod", "-b", dir.string(), k.release}));
  return Ok();
}

// Copies a module into dest (decompressing .ko.xz) and returns its file name.
Result<std::string> CopyModule(const fs::path& source, const fs::path& dest_dir) {
  std::string name = source.filename().string();
  if (name.ends_with(".xz")) {
    std::string plain = name.substr(0, name.size() - 3);
    VMCTL_ASSIGN_OR_RETURN(std::string data,
                           Run("decompress module", {"xz", "-dc", source.string()}));
    VMCTL_TRY(WriteFileAtomic(dest_dir / plain, data));
    return plain;
  }
  fs::copy_file(source, dest_dir / name, fs::copy_options::overwrite_existing);
  return name;
}

Result<void> BuildInitramfs(const BuildOptions& o, const fs::path& kernel_root,
                            const std::string& release, const fs::path& out) {
  Step(o, "Building the initramfs (busybox + virtio/ext4/vsock modules)");
  std::vector<std::string> argv = {"modprobe",       "-S", release, "-d", kernel_root.string(),
                                   "--show-depends", "-a"};
  argv.insert(argv.end(), kInitramfsModules.begin(), kInitramfsModules.end());
  VMCTL_ASSIGN_OR_RETURN(std::string depends, Run("resolve initramfs modules", argv));
  TempDir tree(out.parent_path() / "initramfs.tree");
  for (auto d : {"bin", "dev", "proc", "sys", "newroot", "lib/modules"}) {
    fs::create_directories(tree.path() / d);
  }
  fs::copy_file("/bin/busybox", tree.path() / "bin/busybox");
  VMCTL_TRY(WriteFileAtomic(tree.path() / "init", kInitScript, 0755));
  std::string order;
  for (const auto& module : ParseShowDepends(depends)) {
    VMCTL_ASSIGN_OR_RETURN(std::string name, CopyModule(module, tree.path() / "lib/modules"));
    order += name + "\n";
  }
  VMCTL_TRY(WriteFileAtomic(tree.path() / "lib/modules/order", order));
  VMCTL_TRY(Run("pack initramfs",
                {"sh", "-c", "cd \"$0\" && find . | cpio -o -H newc --quiet | gzip -6 > \"$1\"",
                 tree.path().string(), out.string()}));
  return Ok();
}

std::string DebianPackages(const ImageSource& source) {
  std::string packages(kPackages);
  for (const auto& p : source.packages) packages += "," + p;
  return packages;
}

// The mmdebstrap output, cached by recipe so that only changed guest files or agent re-assemble.
Result<fs::path> DebianRootfs(const BuildOptions& o, const ImageSource& source) {
  const std::string packages = DebianPackages(source);
  std::string key =
      Sha256Hex(fmt::format("{}|{}|{}", kRootfsRecipe, source.suite, packages)).substr(0, 16);
  fs::path tar = o.cache_dir / fmt::format("rootfs-{}.tar", key);
  if (fs::exists(tar)) return tar;
  Step(o, fmt::format("Running mmdebstrap for Debian {} (a minute or more)", source.suite));
  fs::path partial = tar.string() + ".partial";
  std::error_code ec;
  fs::remove(partial, ec);
  auto out =
      RunCommandChecked({"mmdebstrap", "--mode=root", "--variant=minbase", "--quiet",
                         "--format=tar", "--include=" + packages, source.suite, partial.string()},
                        RunOptions{.timeout = std::chrono::minutes(20)});
  if (!out.ok()) {
    fs::remove(partial, ec);
    return StepError("mmdebstrap", out.error());
  }
  fs::rename(partial, tar);
  return tar;
}

Result<void> InstallUnits(const fs::path& root) {
  const fs::path units = "etc/systemd/system";
  VMCTL_TRY(WriteInRoot(root, units / "vmctl-agent.service", kAgentUnit));
  VMCTL_TRY(WriteInRoot(root, units / "vmctl-growfs.service", kGrowfsUnit));
  VMCTL_TRY(WriteInRoot(root, units / "vmctl-ssh-keygen.service", kSshKeygenUnit));
  VMCTL_TRY(SymlinkInRoot(root, "../vmctl-agent.service",
                          units / "sysinit.target.wants/vmctl-agent.service"));
  VMCTL_TRY(SymlinkInRoot(root, "../vmctl-growfs.service",
                          units / "sysinit.target.wants/vmctl-growfs.service"));
  VMCTL_TRY(SymlinkInRoot(root, "../vmctl-ssh-keygen.service",
                          units / "multi-user.target.wants/vmctl-ssh-keygen.service"));
  // Timers and jobs that cost boot time and add nothing in a short-lived VM.
  for (auto unit : {"apt-daily.timer", "apt-daily-upgrade.timer", "e2scrub_all.timer",
                    "fstrim.timer", "e2scrub_reap.service", "systemd-timesyncd.service"}) {
    VMCTL_TRY(SymlinkInRoot(root, "/dev/null", units / unit));
  }
  return Ok();
}

// The kernel modules VMs load after boot, with their depmod indexes: built in `stage` (depmod -b
// follows links, so it never runs on the image's tree) and copied into a fresh directory there.
Result<void> InstallModules(const fs::path& root, const fs::path& kernel_root,
                            const std::string& release, const fs::path& stage) {
  fs::path source = kernel_root / "lib/modules" / release;
  fs::path staged = stage / "lib/modules" / release;
  std::error_code ec;
  fs::create_directories(staged, ec);
  for (const auto& dir : kRootfsModuleDirs) {
    if (!fs::exists(source / dir)) continue;
    fs::create_directories(staged / dir, ec);
    fs::copy(source / dir, staged / dir,
             fs::copy_options::recursive | fs::copy_options::overwrite_existing, ec);
    if (ec) return Internal(fmt::format("cannot stage modules {}: {}", dir, ec.message()));
  }
  for (const auto& f : fs::directory_iterator(source)) {
    if (f.is_regular_file() && f.path().filename().string().starts_with("modules.") &&
        f.path().extension() != ".bin") {
      fs::copy_file(f.path(), staged / f.path().filename(), fs::copy_options::overwrite_existing);
    }
  }
  VMCTL_TRY(Run("depmod rootfs", {"depmod", "-b", stage.string(), release}));
  VMCTL_ASSIGN_OR_RETURN(fs::path target, InRoot(root, fs::path("lib/modules") / release));
  fs::remove_all(target, ec);
  fs::create_directories(target.parent_path(), ec);
  fs::copy(staged, target, fs::copy_options::recursive, ec);
  if (ec) return Internal(fmt::format("cannot install modules: {}", ec.message()));
  return Ok();
}

// Installs the agent and kernel modules, and with systemd the units that start the agent, grow
// the root filesystem and make host keys (the agent does all that itself where it is init).
// Every path in the image is resolved by InRoot: images may hold links meant to escape.
Result<void> CustomizeTree(const BuildOptions& o, const fs::path& root, const fs::path& kernel_root,
                           const std::string& release, bool systemd, const fs::path& stage) {
  Step(o, systemd ? "Installing the guest agent, units and kernel modules"
                  : "Installing the guest agent and kernel modules");
  auto agent = ReadFile(o.agent_binary);
  if (!agent.ok()) return agent.error();
  VMCTL_TRY(WriteInRoot(root, "usr/local/sbin/vmctl-agent", *agent, 0755));
  if (systemd) VMCTL_TRY(InstallUnits(root));
  // Each VM generates its own host keys on first boot.
  VMCTL_ASSIGN_OR_RETURN(fs::path ssh, InRoot(root, "etc/ssh"));
  std::error_code ec;
  for (const auto& f : fs::directory_iterator(ssh, ec)) {
    if (f.path().filename().string().starts_with("ssh_host_")) fs::remove(f.path(), ec);
  }
  VMCTL_TRY(WriteInRoot(root, "etc/hostname", "vmctl\n"));
  VMCTL_TRY(WriteInRoot(root, "etc/fstab", "/dev/vda / ext4 rw,errors=remount-ro 0 1\n"));
  // An empty machine-id makes systemd generate a fresh one per VM.
  VMCTL_TRY(WriteInRoot(root, "etc/machine-id", ""));
  return InstallModules(root, kernel_root, release, stage);
}

Result<int64_t> TreeBytes(const fs::path& root) {
  VMCTL_ASSIGN_OR_RETURN(std::string du, Run("measure rootfs", {"du", "-sb", root.string()}));
  return std::stoll(du);
}

// Hex SHA-256 of a file's content, streamed.
Result<std::string> FileSha256(const fs::path& path) {
  VMCTL_ASSIGN_OR_RETURN(std::string out,
                         Run("hash the image source", {"sha256sum", path.string()}));
  return out.substr(0, 64);
}

// What identifies the source's content, for the build cache key.
Result<std::string> SourceKey(const ImageSource& source) {
  switch (source.kind) {
    case ImageSource::Kind::kDebian:
      return fmt::format("debian {} {}", source.suite, DebianPackages(source));
    case ImageSource::Kind::kOci: {
      std::error_code ec;
      if (fs::is_directory(source.path, ec)) {
        // Blobs are content-addressed and verified on unpacking: the index names the content.
        auto index = ReadFile(fs::path(source.path) / "index.json");
        if (!index.ok()) {
          return InvalidArgument(fmt::format(
              "{} is neither an OCI image layout (no index.json) nor an archive", source.path));
        }
        return "oci-layout " + Sha256Hex(*index);
      }
      if (!fs::is_regular_file(source.path, ec)) {
        return NotFound(fmt::format("no OCI image at {}", source.path));
      }
      VMCTL_ASSIGN_OR_RETURN(std::string digest, FileSha256(source.path));
      return "oci-archive " + digest;
    }
    case ImageSource::Kind::kDockerfile:
      break;
  }
  return InvalidArgument("a Dockerfile is built before it has a key");
}

// Builds a Dockerfile with buildah or docker and exports the result as an archive that
// UnpackOciImage reads. kFailedPrecondition when neither tool can build here.
Result<void> BuildDockerfile(const BuildOptions& o, const ImageSource& source,
                             const fs::path& archive) {
  std::error_code ec;
  if (!fs::is_regular_file(source.path, ec)) {
    return NotFound(fmt::format("no Dockerfile at {}", source.path));
  }
  const std::string context =
      source.context.empty() ? fs::path(source.path).parent_path().string() : source.context;
  const std::string tag = fmt::format("localhost/vmctl-build-{}", ::getpid());
  if (FindProgram("buildah")) {
    Step(o, fmt::format("Building {} with buildah", source.path));
    VMCTL_TRY(Run("buildah build",
                  {"buildah", "build", "--quiet", "-f", source.path, "-t", tag, context},
                  std::chrono::minutes(60)));
    auto pushed = Run("buildah push", {"buildah", "push", tag, "oci-archive:" + archive.string()});
    (void)RunCommand({"buildah", "rmi", tag});
    if (!pushed.ok()) return pushed.error();
    return Ok();
  }
  std::string docker_problem = "docker is not installed";
  if (FindProgram("docker")) {
    auto info = RunCommand({"docker", "info", "--format", "{{.ServerVersion}}"},
                           RunOptions{.timeout = std::chrono::seconds(20)});
    if (info.ok() && info->exit_code == 0) {
      Step(o, fmt::format("Building {} with docker {}", source.path, info->out));
      VMCTL_TRY(Run("docker build",
                    {"docker", "build", "--quiet", "-f", source.path, "-t", tag, context},
                    std::chrono::minutes(60)));
      auto saved = Run("docker save", {"docker", "save", "-o", archive.string(), tag});
      (void)RunCommand({"docker", "rmi", tag});
      if (!saved.ok()) return saved.error();
      return Ok();
    }
    std::string why = info.ok() ? info->err + info->out : info.error().message();
    while (!why.empty() && why.back() == '\n') why.pop_back();
    docker_problem = "docker is installed but cannot build (`docker info`: " + why + ")";
  }
  return FailedPrecondition(fmt::format(
      "building from a Dockerfile needs buildah or a running Docker engine; buildah is not "
      "installed and {}. Install buildah (apt-get install buildah), or build the image elsewhere "
      "and use `vmctl image build NAME --from-oci ARCHIVE` with its `docker save` or OCI archive",
      docker_problem));
}

// vmctl's initramfs hands over to /sbin/init, and the agent and units it installs are systemd
// units.
// systemd images boot it as init; any other image boots with the agent as init.
bool HasSystemd(const fs::path& root) {
  std::error_code ec;
  fs::path init = root / "sbin/init";
  auto status = fs::symlink_status(init, ec);
  if (!fs::exists(status)) return false;
  fs::path target = fs::is_symlink(status) ? fs::read_symlink(init, ec) : init;
  return target.filename() == "systemd" || fs::exists(root / "lib/systemd/systemd", ec) ||
         fs::exists(root / "usr/lib/systemd/systemd", ec);
}

json ConfigJson(const ImageSource& source, const OciConfig* oci) {
  json config = {{"user", "root"}, {"env", json::array()}, {"exposed_ports", json::array()}};
  if (oci != nullptr) {
    if (!oci->user.empty()) config["user"] = oci->user;
    config["env"] = oci->env;
    config["exposed_ports"] = oci->exposed_ports;
    config["entrypoint"] = oci->entrypoint;
    config["cmd"] = oci->cmd;
    config["working_dir"] = oci->working_dir;
  }
  config["source"] = DescribeImageSource(source);
  return config;
}

}  // namespace

std::string Sha256Hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha256(), nullptr);
  std::string hex;
  for (unsigned i = 0; i < len; ++i) hex += fmt::format("{:02x}", digest[i]);
  return hex;
}

Result<std::string> ExtractVmlinux(std::string_view bzimage) {
  static constexpr std::string_view kXzMagic("\xFD\x37\x7A\x58\x5A\x00", 6);
  for (size_t at = bzimage.find(kXzMagic); at != std::string_view::npos;
       at = bzimage.find(kXzMagic, at + 1)) {
    // --single-stream stops at the end of the first stream and ignores what follows it.
    auto out = RunCommand({"xz", "-dc", "--single-stream"},
                          RunOptions{.stdin_data = std::string(bzimage.substr(at))});
    if (out.ok() && out->out.size() > 4 &&
        out->out.compare(0, 4,
                         "\x7F"
                         "ELF") == 0) {
      return std::move(out->out);
    }
  }
  return NotFound("no XZ-compressed ELF kernel found in the bzImage");
}

std::vector<std::string> ParseShowDepends(std::string_view output) {
  std::vector<std::string> modules;
  std::set<std::string> seen;
  std::istringstream lines{std::string(output)};
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind("insmod ", 0) != 0) continue;
    std::string path = line.substr(7);
    path = path.substr(0, path.find(' '));
    if (seen.insert(path).second) modules.push_back(path);
  }
  return modules;
}

Result<ImageRecord> BuildImage(const ImageSource& requested, const BuildOptions& o) {
  VMCTL_TRY(ValidateImageSource(requested));
  std::error_code ec;
  fs::create_directories(o.cache_dir, ec);
  if (ec) return Internal(fmt::format("cannot create {}: {}", o.cache_dir.string(), ec.message()));
  UniqueFd lock(::open((o.cache_dir / "lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (!lock.valid()) return ErrnoError("open the image cache lock", errno);
  if (::flock(lock.get(), LOCK_EX | LOCK_NB) != 0) {
    Step(o, "Waiting for another image build to finish");
    ::flock(lock.get(), LOCK_EX);
  }
  TempDir work(o.cache_dir / fmt::format(".build-{}", ::getpid()));

  // A Dockerfile becomes an OCI archive first; from there on it is an OCI build.
  ImageSource source = requested;
  if (source.kind == ImageSource::Kind::kDockerfile) {
    fs::path archive = work.path() / "dockerfile-image.tar";
    VMCTL_TRY(BuildDockerfile(o, source, archive));
    source = ImageSource{.kind = ImageSource::Kind::kOci, .path = archive.string()};
  }

  VMCTL_ASSIGN_OR_RETURN(KernelPackage kernel, ResolveKernel());
  auto agent = ReadFile(o.agent_binary);
  if (!agent.ok()) return StepError("read agent binary", agent.error());
  VMCTL_ASSIGN_OR_RETURN(std::string source_key, SourceKey(source));
  // Missing host tools fail only builds that need them (images without systemd).
  auto init_inputs = AgentInitInputsKey();
  std::string hash = Sha256Hex(
      fmt::format("{}\n{}\n{} {}\n{}\n{}\n{}\n{}\n{}\n{}", kRecipeVersion, source_key, kernel.name,
                  kernel.version, kInitScript, kAgentUnit, kGrowfsUnit, kSshKeygenUnit,
                  Sha256Hex(*agent), init_inputs.ok() ? *init_inputs : "unavailable"));
  fs::path final_dir = o.cache_dir / hash.substr(0, 24);
  fs::path manifest = final_dir / "manifest.json";
  if (fs::exists(manifest)) {
    auto text = ReadFile(manifest);
    json m = text.ok() ? json::parse(*text, nullptr, false) : json();
    if (m.is_object()) {
      Step(o, fmt::format("Image {} is up to date (cached in {})", DescribeImageSource(requested),
                          final_dir.string()));
      ImageRecord r{"",
                    m.value("input_hash", ""),
                    final_dir.string(),
                    m.value("kernel", ""),
                    m.value("initramfs", ""),
                    m.value("rootfs", ""),
                    m.value("kernel_version", ""),
                    m.value("source", ""),
                    m.value("size_bytes", int64_t{0}),
                    m.value("created_at", int64_t{0}),
                    m.value("config", json::object())};
      return r;
    }
  }
  Step(o, fmt::format("Building image from {} (inputs {}): kernel {} {}",
                      DescribeImageSource(requested), hash.substr(0, 12), kernel.name,
                      kernel.version));
  fs::path out = work.path() / "image";
  fs::create_directories(out);

  fs::path kernel_root = work.path() / "kernel";
  VMCTL_TRY(UnpackKernel(o, kernel, kernel_root));
  Step(o, "Extracting the uncompressed kernel (PVH boot)");
  auto bzimage = ReadFile(kernel_root / "boot" / ("vmlinuz-" + kernel.release));
  if (!bzimage.ok()) return StepError("extract kernel", bzimage.error());
  auto vmlinux = ExtractVmlinux(*bzimage);
  if (!vmlinux.ok()) return StepError("extract kernel", vmlinux.error());
  VMCTL_TRY(WriteFileAtomic(out / kImageKernelFile, *vmlinux));

  VMCTL_TRY(BuildInitramfs(o, kernel_root, kernel.release, out / kImageInitramfsFile));

  fs::path tree = work.path() / "rootfs";
  json config;
  if (source.kind == ImageSource::Kind::kDebian) {
    VMCTL_ASSIGN_OR_RETURN(fs::path base, DebianRootfs(o, source));
    Step(o, "Assembling the root filesystem");
    fs::create_directories(tree);
    VMCTL_TRY(Run("unpack rootfs",
                  {"tar", "-xf", base.string(), "-C", tree.string(), "--numeric-owner"}));
    config = ConfigJson(requested, nullptr);
  } else {
    Step(o, fmt::format("Unpacking the OCI image {}", source.path));
    fs::create_directories(tree);
    auto unpacked = UnpackOciImage(source.path, tree, OciLimits{}, o.progress);
    if (!unpacked.ok()) return StepError("unpack OCI image", unpacked.error());
    config = ConfigJson(requested, &*unpacked);
  }
  if (HasSystemd(tree)) {
    config["init"] = "systemd";
  } else {
    Step(o, "No systemd in the image: the agent will be its init (bundling sshd, ip, e2fsprogs)");
    config["init"] = "agent";
    VMCTL_TRY(PrepareAgentInit(tree, config));
  }
  VMCTL_TRY(CustomizeTree(o, tree, kernel_root, kernel.release, config["init"] == "systemd",
                          work.path() / "modules"));
  VMCTL_ASSIGN_OR_RETURN(int64_t bytes, TreeBytes(tree));
  // Headroom for ext4 metadata; VMs grow the filesystem to their disk size at boot.
  int64_t size_mib = bytes / (1 << 20) * 5 / 4 + 128;
  Step(o, fmt::format("Making the ext4 root filesystem ({} MiB)", size_mib));
  VMCTL_TRY(Run("mkfs.ext4", {"mkfs.ext4", "-q", "-F", "-L", "root", "-d", tree.string(),
                              (out / kImageRootfsFile).string(), fmt::format("{}M", size_mib)}));

  int64_t size_bytes = 0;
  for (const auto& f : fs::directory_iterator(out))
    size_bytes += static_cast<int64_t>(f.file_size());
  ImageRecord record{"",
                     hash,
                     final_dir.string(),
                     (final_dir / kImageKernelFile).string(),
                     (final_dir / kImageInitramfsFile).string(),
                     (final_dir / kImageRootfsFile).string(),
                     kernel.release,
                     DescribeImageSource(requested),
                     size_bytes,
                     std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count(),
                     config};
  VMCTL_TRY(WriteFileAtomic(out / "manifest.json", ToJson(record).dump(2)));
  // A stale directory without a manifest is a build that died after the rename; replace it.
  fs::remove_all(final_dir, ec);
  fs::rename(out, final_dir, ec);
  if (ec) return Internal(fmt::format("cannot move the image into place: {}", ec.message()));
  Step(o, fmt::format("Image built: {} MiB in {}", size_bytes >> 20, final_dir.string()));
  return record;
}

}  // namespace vmctl::image
