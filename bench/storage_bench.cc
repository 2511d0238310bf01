// Storage benchmark (issue #4): the time to provision a VM's root disk and the bytes it really
// adds, for each volume backend and base image size; and the build time of the default image
// with nothing cached (cold), with the Debian rootfs and the kernel package cached (warm) and
// with everything cached (hit). The peer, in the same run, is the copy backend: a plain `cp
// --reflink=never` of the base per VM, what provisioning costs without any sharing. The other
// backends are quoted as ratios.
//
// qcow2 and copy run in a directory under --work-dir; reflink runs on an XFS filesystem in a
// sparse file there, loop-mounted in a private mount namespace. Everything the run creates is
// removed at the end, on errors and on SIGINT/SIGTERM too. Needs root.
// Usage: vmctl_storage_bench [--vms N] [--work-dir DIR] [--skip-cold] [--image-cache DIR]
//        [--vmctl PATH]   (Markdown on stdout, progress on stderr)
#include <fcntl.h>
#include <fmt/format.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <filesystem>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "base/io.h"
#include "base/process.h"
#include "base/unique_fd.h"
#include "bench/host.h"
#include "bench/stats.h"
#include "model/image.h"
#include "model/vm.h"
#include "storage/backends.h"

namespace vmctl::bench {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using storage::BaseImage;
using storage::VolumeBackend;

constexpr int64_t kMib = int64_t{1} << 20;
constexpr int64_t kGib = kMib << 10;
constexpr int64_t kBaseSizesMib[] = {64, 1024, 4096};
// Room left on the work directory's filesystem for everyone else.
constexpr int64_t kSpaceMargin = 4 * kGib;

volatile std::sig_atomic_t g_stop = 0;

// Checked between steps: returning an error unwinds through the destructors that unmount and
// delete, which exiting from a signal handler would skip.
Result<void> CheckStop() {
  if (g_stop) return Unavailable("interrupted");
  return Ok();
}

std::string Trimmed(const std::string& s) {
  size_t start = s.find_first_not_of(" \t\n");
  if (start == std::string::npos) return "";
  return s.substr(start, s.find_last_not_of(" \t\n") - start + 1);
}

std::string Bytes(int64_t b) {
  if (std::llabs(b) < kMib) return fmt::format("{:.0f} KiB", static_cast<double>(b) / 1024);
  if (std::llabs(b) < kGib) return fmt::format("{:.1f} MiB", static_cast<double>(b) / kMib);
  return fmt::format("{:.2f} GiB", static_cast<double>(b) / kGib);
}

std::string SizeName(int64_t mib) {
  return mib % 1024 == 0 ? fmt::format("{} GiB", mib / 1024) : fmt::format("{} MiB", mib);
}

void Progress(const std::string& line) { std::cerr << "==> " << line << std::endl; }

// A directory made for this run, deleted with its contents when it goes out of scope.
class TempDir {
 public:
  static Result<TempDir> Make(const fs::path& parent, const std::string& prefix) {
    std::string tmpl = (parent / (prefix + ".XXXXXX")).string();
    if (::mkdtemp(tmpl.data()) == nullptr) {
      return ErrnoError("creating a directory in " + parent.string(), errno);
    }
    return TempDir(tmpl);
  }
  TempDir(TempDir&& other) noexcept : path_(std::exchange(other.path_, {})) {}
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  TempDir& operator=(TempDir&&) = delete;
  ~TempDir() {
    if (path_.empty()) return;
    std::error_code ec;
    fs::remove_all(path_, ec);
    if (ec) std::cerr << "warning: cannot remove " << path_ << ": " << ec.message() << "\n";
  }
  const fs::path& path() const { return path_; }

 private:
  explicit TempDir(fs::path path) : path_(std::move(path)) {}
  fs::path path_;
};

// An XFS filesystem with reflink in a sparse file, loop-mounted in this process's private mount
// namespace. `mount -o loop` sets autoclear on the loop device, so even a killed run leaves
// nothing: the namespace dies with the process, which unmounts, which detaches the device.
class XfsMount {
 public:
  static Result<std::unique_ptr<XfsMount>> Make(const fs::path& dir, int64_t size_bytes) {
    if (!FindProgram("mkfs.xfs")) {
      return FailedPrecondition("mkfs.xfs is missing: scripts/setup.sh installs xfsprogs");
    }
    std::unique_ptr<XfsMount> m(new XfsMount(dir / "xfs.img", dir / "mnt"));
    UniqueFd fd(::open(m->image_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (!fd.valid()) return ErrnoError("creating " + m->image_.string(), errno);
    m->image_created_ = true;
    if (::ftruncate(fd.get(), size_bytes) != 0) {
      return ErrnoError("sizing " + m->image_.string(), errno);
    }
    fd.reset();
    VMCTL_TRY(RunCommandChecked({"mkfs.xfs", "-q", "-m", "reflink=1", m->image_.string()}));
    if (::mkdir(m->mnt_.c_str(), 0700) != 0) return ErrnoError("mkdir " + m->mnt_.string(), errno);
    VMCTL_TRY(RunCommandChecked({"mount", "-o", "loop", m->image_.string(), m->mnt_.string()}));
    m->mounted_ = true;
    VMCTL_ASSIGN_OR_RETURN(RunOutput source, RunCommandChecked({"findmnt", "-n", "-o", "SOURCE",
                                                                "--mountpoint", m->mnt_.string()}));
    m->device_ = Trimmed(source.out);
    return m;
  }
  XfsMount(const XfsMount&) = delete;
  XfsMount& operator=(const XfsMount&) = delete;
  ~XfsMount() {
    if (mounted_) {
      auto out = RunCommand({"umount", mnt_.string()});
      if (!out.ok() || out->exit_code != 0) {
        std::cerr << "warning: umount " << mnt_ << " failed: " << (out.ok() ? out->err : "")
                  << "\n";
      }
    }
    // Autoclear has normally detached it already; if not, detach it only while it still backs
    // our image, as a freed device number may be someone else's by now.
    if (!device_.empty()) {
      auto back = RunCommand({"losetup", "-n", "-O", "BACK-FILE", device_});
      if (back.ok() && back->exit_code == 0 && Trimmed(back->out) == image_.string()) {
        (void)RunCommand({"losetup", "-d", device_});
      }
    }
    std::error_code ec;
    fs::remove(mnt_, ec);
    if (image_created_) fs::remove(image_, ec);
  }
  const fs::path& mnt() const { return mnt_; }
  const std::string& device() const { return device_; }

 private:
  XfsMount(fs::path image, fs::path mnt) : image_(std::move(image)), mnt_(std::move(mnt)) {}

  fs::path image_, mnt_;
  std::string device_;
  bool image_created_ = false;
  bool mounted_ = false;
};

uint64_t SplitMix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9;
  z = (z ^ (z >> 27)) * 0x94d049bb133111eb;
  return z ^ (z >> 31);
}

// Pseudo-random content, all of it allocated: a sparse or compressible base would let the copy
// backend (cp --sparse=always) skip blocks and look cheaper than it is.
Result<void> WriteBase(const fs::path& path, int64_t mib) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
  if (!fd.valid()) return ErrnoError("creating " + path.string(), errno);
  std::vector<uint64_t> block(kMib / sizeof(uint64_t));
  uint64_t state = 0;
  for (int64_t i = 0; i < mib; ++i) {
    for (auto& word : block) word = SplitMix64(state);
    VMCTL_TRY(WriteAll(fd.get(), {reinterpret_cast<const char*>(block.data()), kMib}));
  }
  if (::fsync(fd.get()) != 0) return ErrnoError("fsync " + path.string(), errno);
  return Ok();
}

Result<void> Fsync(const fs::path& path, bool whole_filesystem = false) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoError("opening " + path.string(), errno);
  if ((whole_filesystem ? ::syncfs(fd.get()) : ::fsync(fd.get())) != 0) {
    return ErrnoError("syncing " + path.string(), errno);
  }
  return Ok();
}

// Free bytes of the filesystem holding `dir`, reserved blocks included (a drop is a drop).
Result<int64_t> FreeBytes(const fs::path& dir) {
  struct statvfs st {};
  if (::statvfs(dir.c_str(), &st) != 0) return ErrnoError("statvfs " + dir.string(), errno);
  return static_cast<int64_t>(st.f_bfree) * static_cast<int64_t>(st.f_frsize);
}

Result<int64_t> AvailableBytes(const fs::path& dir) {
  struct statvfs st {};
  if (::statvfs(dir.c_str(), &st) != 0) return ErrnoError("statvfs " + dir.string(), errno);
  return static_cast<int64_t>(st.f_bavail) * static_cast<int64_t>(st.f_frsize);
}

std::string FsType(const fs::path& dir) {
  auto out = RunCommand({"findmnt", "-n", "-o", "FSTYPE", "-T", dir.string()});
  return out.ok() && out->exit_code == 0 ? Trimmed(out->out) : "unknown";
}

struct Row {
  std::string backend;
  int64_t base_mib = 0;
  double prepare_ms = 0;
  std::vector<double> create_ms;   // CreateRootDisk, as the daemon calls it
  std::vector<double> durable_ms;  // the same plus fsync of the new disk
  int64_t allocated_per_vm = 0;    // st_blocks (qcow2: the overlay's own blocks)
  int64_t free_drop_per_vm = 0;    // statvfs before and after all creates, divided by the VMs
};

using BackendFactory = std::function<Result<std::unique_ptr<VolumeBackend>>(const fs::path&)>;

// Provisions `vms` root disks of `base` with a backend whose volumes live in `dir`; the caller
// deletes `dir`, so every disk goes with it.
Result<Row> Provision(const BackendFactory& make, const fs::path& dir, const BaseImage& base,
                      int64_t base_mib, int vms) {
  VMCTL_ASSIGN_OR_RETURN(std::unique_ptr<VolumeBackend> backend, make(dir / "disks"));
  Row row{.backend = backend->name(), .base_mib = base_mib};
  Progress(fmt::format("{}: {} root disks of a {} base", row.backend, vms, SizeName(base_mib)));
  auto start = Clock::now();
  VMCTL_TRY(backend->PrepareBase(base));
  row.prepare_ms = Ms(Clock::now() - start);
  // The base copy reflink makes must not be written back during the first creates.
  VMCTL_TRY(Fsync(dir, true));
  VMCTL_ASSIGN_OR_RETURN(int64_t free_before, FreeBytes(dir));
  // vmctl's default root disk, or the base's size when that is larger.
  const int64_t disk_mib = std::max(VmRequest{}.root_disk_mib, base_mib);
  int64_t allocated = 0;
  for (int i = 0; i < vms; ++i) {
    VMCTL_TRY(CheckStop());
    start = Clock::now();
    VMCTL_ASSIGN_OR_RETURN(vmm::DiskSpec disk,
                           backend->CreateRootDisk(base, fmt::format("{:012x}", i), disk_mib));
    auto created = Clock::now();
    VMCTL_TRY(Fsync(disk.path));
    row.create_ms.push_back(Ms(created - start));
    row.durable_ms.push_back(Ms(Clock::now() - start));
    VMCTL_ASSIGN_OR_RETURN(storage::VolumeUsage usage, backend->Usage(disk));
    allocated += usage.allocated_bytes;
  }
  VMCTL_ASSIGN_OR_RETURN(int64_t free_after, FreeBytes(dir));
  row.allocated_per_vm = allocated / vms;
  row.free_drop_per_vm = (free_before - free_after) / vms;
  return row;
}

struct ImageBuild {
  std::string name, cached;
  double seconds = 0;
};

struct ImageRun {
  std::vector<ImageBuild> builds;
  int64_t rootfs_bytes = 0, rootfs_allocated = 0;
};

// One `vmctl serve --prepare-only`, timed from spawn to exit; returns the build's directory.
Result<fs::path> PrepareImage(const fs::path& vmctl, const fs::path& state, const fs::path& cache,
                              ImageBuild& build) {
  VMCTL_TRY(CheckStop());
  Progress(fmt::format("image build, {}", build.name));
  auto start = Clock::now();
  VMCTL_ASSIGN_OR_RETURN(RunOutput out,
                         RunCommand({vmctl.string(), "serve", "--state-dir", state.string(),
                                     "--image-cache", cache.string(), "--prepare-only"},
                                    {.timeout = std::chrono::minutes(30)}));
  build.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  constexpr std::string_view kReady = "Image 'default' ready in ";
  size_t at = out.err.find(kReady);
  if (out.exit_code != 0 || at == std::string::npos) {
    return Internal(fmt::format("{} serve --prepare-only ({}) failed (exit {}): {}", vmctl.string(),
                                build.name, out.exit_code,
                                out.err.substr(out.err.size() > 2000 ? out.err.size() - 2000 : 0)));
  }
  at += kReady.size();
  return fs::path(Trimmed(out.err.substr(at, out.err.find('\n', at) - at)));
}

// What a warm build starts from: the Debian rootfs tars and the downloaded kernel packages of
// `from`, as after a change to the agent or the guest files; not the built images.
Result<void> CopyWarmCache(const fs::path& from, const fs::path& to) {
  std::error_code ec;
  int tars = 0;
  for (const auto& e : fs::directory_iterator(from, ec)) {
    std::string name = e.path().filename().string();
    bool tar = e.is_regular_file() && name.starts_with("rootfs-") && name.ends_with(".tar");
    if (!tar && name != "debs") continue;
    fs::copy(e.path(), to / name, fs::copy_options::recursive, ec);
    if (ec) return Internal(fmt::format("copying {}: {}", e.path().string(), ec.message()));
    tars += tar ? 1 : 0;
  }
  if (ec || tars == 0) {
    return NotFound(
        fmt::format("no rootfs-*.tar in {}{}; `make image` puts one in the shared cache",
                    from.string(), ec ? " (" + ec.message() + ")" : ""));
  }
  return Ok();
}

// Fresh state and cache directories for each case; the hit runs again on the warm case's.
Result<ImageRun> ImageBuilds(const fs::path& vmctl, const fs::path& work,
                             const fs::path& shared_cache, bool skip_cold) {
  ImageRun run;
  fs::path warm_source = shared_cache;
  std::optional<TempDir> cold;
  if (!skip_cold) {
    VMCTL_ASSIGN_OR_RETURN(TempDir dir, TempDir::Make(work, "cold"));
    cold.emplace(std::move(dir));
    ImageBuild build{"cold", "nothing: mmdebstrap downloads and installs Debian"};
    VMCTL_TRY(PrepareImage(vmctl, cold->path() / "state", cold->path() / "cache", build));
    run.builds.push_back(build);
    warm_source = cold->path() / "cache";
  }
  VMCTL_ASSIGN_OR_RETURN(TempDir warm, TempDir::Make(work, "warm"));
  fs::path cache = warm.path() / "cache";
  std::error_code ec;
  fs::create_directories(cache, ec);
  if (ec) return Internal(fmt::format("mkdir {}: {}", cache.string(), ec.message()));
  VMCTL_TRY(CopyWarmCache(warm_source, cache));
  cold.reset();
  ImageBuild build{"warm",
                   "the Debian rootfs tar (`rootfs-*.tar`) and the kernel .deb: the image is "
                   "re-assembled"};
  VMCTL_TRY(PrepareImage(vmctl, warm.path() / "state", cache, build));
  run.builds.push_back(build);
  ImageBuild hit{"hit", "everything (the same state and cache again)"};
  VMCTL_ASSIGN_OR_RETURN(fs::path dir, PrepareImage(vmctl, warm.path() / "state", cache, hit));
  run.builds.push_back(hit);
  struct stat st {};
  fs::path rootfs = dir / kImageRootfsFile;
  if (::stat(rootfs.c_str(), &st) != 0) return ErrnoError("stat " + rootfs.string(), errno);
  run.rootfs_bytes = st.st_size;
  run.rootfs_allocated = static_cast<int64_t>(st.st_blocks) * 512;
  return run;
}

// lvm-thin needs a volume group with a thin pool; this benchmark makes neither, so it only says
// what is missing on this host.
std::string LvmThinNote() {
  std::error_code ec;
  if (!fs::exists("/dev/mapper/control", ec)) {
    return "not measurable on this host: it has no device-mapper (/dev/mapper/control is "
           "missing), which thin pools need";
  }
  return "not measured: needs a volume group with a thin pool, which this benchmark does not "
         "create";
}

struct Options {
  int vms = 20;
  std::string work_dir = fs::temp_directory_path().string();
  int64_t copy_budget_gib = 20;
  int64_t xfs_gib = 16;
  std::string image_cache = "/var/cache/vmctl/images";
  std::string vmctl;
  bool skip_cold = false;
};

std::string Millis(double ms) {
  return fmt::format("{:.{}f} ms", ms, ms < 10 ? 2 : ms < 100 ? 1 : 0);
}

// Two significant digits however small: reflink's ratios to copy go below 1e-4.
std::string Ratio(double r) {
  if (r == 0 || !std::isfinite(r)) return fmt::format("{}×", r);
  int decimals = std::max(0, 1 - static_cast<int>(std::floor(std::log10(std::abs(r)))));
  return fmt::format("{:.{}f}×", r, decimals);
}

void PrintStorage(const std::vector<Row>& rows, const std::string& host_fs,
                  const std::vector<std::string>& notes) {
  fmt::print("### Root-disk provisioning\n\n");
  fmt::print(
      "| backend | base | VMs | prepare base | create p50 | create p99 | create + fsync p50 | "
      "st_blocks per VM | free-space drop per VM | time vs copy (p50) | space vs copy |\n"
      "|---|---|---|---|---|---|---|---|---|---|---|\n");
  std::map<int64_t, const Row*> peer;
  for (const auto& r : rows) {
    if (r.backend == "copy") peer[r.base_mib] = &r;
  }
  for (const auto& r : rows) {
    const Row& copy = *peer.at(r.base_mib);
    double p50 = Percentile(r.create_ms, 50);
    fmt::print("| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
               r.backend == "reflink" ? "reflink (XFS on loop)" : r.backend + " (" + host_fs + ")",
               SizeName(r.base_mib), r.create_ms.size(), Millis(r.prepare_ms), Millis(p50),
               Millis(Percentile(r.create_ms, 99)), Millis(Percentile(r.durable_ms, 50)),
               Bytes(r.allocated_per_vm), Bytes(r.free_drop_per_vm),
               Ratio(p50 / Percentile(copy.create_ms, 50)),
               Ratio(static_cast<double>(r.free_drop_per_vm) /
                     static_cast<double>(copy.free_drop_per_vm)));
  }
  fmt::print(
      "\nRoot disks of {} MiB (vmctl's default), or the base's size when larger, from a base of "
      "pseudo-random data (nothing sparse). *create* is the backend's CreateRootDisk as the "
      "daemon calls it; *+ fsync* lasts until the new disk is on stable storage; p99 is the "
      "slowest create of a row with fewer than 100. *st_blocks* counts a reflink clone's shared "
      "extents in full; the "
      "*free-space drop* (statvfs before and after all creates, per VM) is what the filesystem "
      "really lost, and on the {} work directory it also catches anything else written there "
      "during the run. *prepare base* is reflink's one-off copy of the base onto its "
      "filesystem. Ratios: p50 create time and free-space drop per VM over those of copy (a "
      "plain `cp --reflink=never` per VM, the peer) for the same base.\n",
      VmRequest{}.root_disk_mib, host_fs);
  for (const auto& n : notes) fmt::print("\n{}\n", n);
  fmt::print("\nlvm-thin: {}.\n", LvmThinNote());
}

void PrintImages(const ImageRun& run) {
  fmt::print(
      "\n### Default image build (`vmctl serve --prepare-only`, fresh state and cache "
      "directories)\n\n| case | cached | wall time |\n|---|---|---|\n");
  std::map<std::string, double> seconds;
  for (const auto& b : run.builds) {
    fmt::print("| {} | {} | {:.1f} s |\n", b.name, b.cached, b.seconds);
    seconds[b.name] = b.seconds;
  }
  fmt::print("\nhit / warm: {}", Ratio(seconds["hit"] / seconds["warm"]));
  if (seconds.contains("cold")) {
    fmt::print("; warm / cold: {}; hit / cold: {}", Ratio(seconds["warm"] / seconds["cold"]),
               Ratio(seconds["hit"] / seconds["cold"]));
  }
  fmt::print(". The default image's root filesystem: {} ({} allocated).\n", Bytes(run.rootfs_bytes),
             Bytes(run.rootfs_allocated));
}

std::string Machine(const std::string& host_fs) {
  auto cpu = RunCommand({"sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"});
  auto kernel = RunCommand({"uname", "-r"});
  long pages = ::sysconf(_SC_PHYS_PAGES);
  long page = ::sysconf(_SC_PAGE_SIZE);
  return fmt::format(
      "{} cores ({}), {:.0f} GiB RAM, kernel {}, work directory on {}; load average at the end "
      "(1, 5, 15 min): {}",
      std::thread::hardware_concurrency(), cpu.ok() ? Trimmed(cpu->out) : "?",
      static_cast<double>(pages) * static_cast<double>(page) / kGib,
      kernel.ok() ? Trimmed(kernel->out) : "?", host_fs, LoadAverage());
}

Result<void> Run(const Options& o, const std::string& command) {
  if (::geteuid() != 0) {
    return FailedPrecondition("needs root: it loop-mounts an XFS filesystem and builds images");
  }
  // Our mounts stay invisible to the rest of the host and vanish with the process.
  if (::unshare(CLONE_NEWNS) != 0) return ErrnoError("unshare(CLONE_NEWNS)", errno);
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    return ErrnoError("making / private in the new mount namespace", errno);
  }
  if (o.vms < 1) return InvalidArgument("--vms must be at least 1");
  fs::path vmctl = o.vmctl.empty() ? fs::read_symlink("/proc/self/exe").parent_path() / "vmctl"
                                   : fs::path(o.vmctl);
  if (!fs::exists(vmctl)) return NotFound(fmt::format("no vmctl binary at {}", vmctl.string()));

  VMCTL_ASSIGN_OR_RETURN(TempDir work, TempDir::Make(o.work_dir, "vmctl-storage-bench"));
  const std::string host_fs = FsType(work.path());
  std::vector<std::string> notes;

  // Peak use on the host: one base, the copies of it, and the XFS image, which grows by what
  // reflink's bases write into it (its freed blocks are not returned to the host).
  int64_t xfs_reserve = 0;
  for (int64_t mib : kBaseSizesMib) xfs_reserve += mib * kMib;
  VMCTL_ASSIGN_OR_RETURN(int64_t available, AvailableBytes(work.path()));
  std::map<int64_t, int> copy_vms;
  for (int64_t mib : kBaseSizesMib) {
    int64_t base = mib * kMib;
    int64_t room =
        std::min(o.copy_budget_gib * kGib, available - kSpaceMargin - xfs_reserve - base);
    copy_vms[mib] = static_cast<int>(std::min<int64_t>(o.vms, room / base));
    if (copy_vms[mib] < 1) {
      return ResourceExhausted(
          fmt::format("{} has {} available: too little for a {} base and a "
                      "copy of it next to a {} reserve",
                      work.path().string(), Bytes(available), SizeName(mib),
                      Bytes(kSpaceMargin + xfs_reserve)));
    }
    if (copy_vms[mib] < o.vms) {
      notes.push_back(fmt::format(
          "Note: copy at {} made {} root disks, not {}: {} full copies would take {}, more than "
          "the copy budget ({} GiB, --copy-budget-gib) or the free space ({} available).",
          SizeName(mib), copy_vms[mib], o.vms, o.vms, Bytes(o.vms * base), o.copy_budget_gib,
          Bytes(available)));
      Progress(notes.back());
    }
  }

  VMCTL_ASSIGN_OR_RETURN(TempDir xfs_dir, TempDir::Make(work.path(), "xfs"));
  VMCTL_ASSIGN_OR_RETURN(std::unique_ptr<XfsMount> xfs,
                         XfsMount::Make(xfs_dir.path(), o.xfs_gib * kGib));
  Progress(fmt::format("XFS ({} GiB sparse) on {} at {}", o.xfs_gib, xfs->device(),
                       xfs->mnt().string()));

  std::vector<Row> rows;
  for (int64_t mib : kBaseSizesMib) {
    VMCTL_TRY(CheckStop());
    VMCTL_ASSIGN_OR_RETURN(TempDir base_dir, TempDir::Make(work.path(), "base"));
    Progress(fmt::format("writing a {} base", SizeName(mib)));
    BaseImage base{fmt::format("{:x}", mib), base_dir.path() / "base.img"};
    VMCTL_TRY(WriteBase(base.rootfs, mib));
    struct Case {
      BackendFactory make;
      fs::path where;
      int vms;
    };
    const Case cases[] = {
        // The peer first, so every later row has its ratio.
        {[](const fs::path& d) { return storage::NewCopyBackend(d); }, work.path(), copy_vms[mib]},
        {[](const fs::path& d) { return storage::NewQcow2Backend(d); }, work.path(), o.vms},
        {storage::NewReflinkBackend, xfs->mnt(), o.vms},
    };
    for (const auto& c : cases) {
      VMCTL_ASSIGN_OR_RETURN(TempDir dir, TempDir::Make(c.where, "volumes"));
      VMCTL_ASSIGN_OR_RETURN(Row row, Provision(c.make, dir.path(), base, mib, c.vms));
      rows.push_back(std::move(row));
    }
  }
  xfs.reset();

  VMCTL_ASSIGN_OR_RETURN(ImageRun images,
                         ImageBuilds(vmctl, work.path(), o.image_cache, o.skip_cold));

  fmt::print("## Storage (`{}`)\n\n{}\n\n", command, Machine(host_fs));
  PrintStorage(rows, host_fs, notes);
  PrintImages(images);
  return Ok();
}

void OnSignal(int) { g_stop = 1; }

}  // namespace

int Main(int argc, char** argv) {
  CLI::App app{"vmctl storage benchmark"};
  Options o;
  app.add_option("--vms", o.vms, "root disks per backend and base size")->capture_default_str();
  app.add_option("--work-dir", o.work_dir, "where bases, qcow2/copy volumes and the XFS image go")
      ->capture_default_str();
  app.add_option("--copy-budget-gib", o.copy_budget_gib,
                 "space the copy backend may use per base size; fewer VMs when exceeded")
      ->capture_default_str();
  app.add_option("--xfs-gib", o.xfs_gib, "size of the sparse XFS image for reflink")
      ->capture_default_str();
  app.add_option("--image-cache", o.image_cache,
                 "where the warm case takes rootfs-*.tar and debs/ from")
      ->capture_default_str();
  app.add_option("--vmctl", o.vmctl, "vmctl binary (default: next to this one)");
  app.add_flag("--skip-cold", o.skip_cold, "skip the image build from an empty cache");
  CLI11_PARSE(app, argc, argv);

  struct sigaction action {};
  action.sa_handler = OnSignal;
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) ::sigaction(sig, &action, nullptr);

  std::string command = "vmctl_storage_bench";
  for (int i = 1; i < argc; ++i) command += std::string(" ") + argv[i];
  auto result = Run(o, command);
  if (!result.ok()) {
    std::cerr << "vmctl_storage_bench: " << result.error().message() << "\n";
    return 1;
  }
  return 0;
}

}  // namespace vmctl::bench

int main(int argc, char** argv) { return vmctl::bench::Main(argc, argv); }
