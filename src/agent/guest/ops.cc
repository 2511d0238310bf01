#include "agent/guest/ops.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <fstream>
#include <optional>
#include <sstream>
#include <thread>

#include "agent/init_plan.h"
#include "base/io.h"
#include "base/process.h"
#include "base/unique_fd.h"

namespace vmctl::agent::guest {

using nlohmann::json;

namespace {

std::string Trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

Result<void> Ip(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"ip"};
  argv.insert(argv.end(), args.begin(), args.end());
  auto out = RunCommandChecked(argv, RunOptions{.timeout = std::chrono::seconds(10)});
  if (!out.ok()) return out.error();
  return Ok();
}

// The interface with this MAC (the host chose it), or the first non-loopback one without a MAC.
Result<std::string> FindInterface(const std::string& mac) {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/sys/class/net", ec)) {
    std::string name = entry.path().filename().string();
    if (name == "lo") continue;
    if (mac.empty()) return name;
    auto address = ReadFile(entry.path() / "address");
    if (address.ok() && Trimmed(*address) == mac) return name;
  }
  if (!mac.empty()) return NotFound("the VM has no network interface with MAC " + mac);
  return NotFound("the VM has no network interface");
}

// Keeps `hostname` resolvable (sudo and many daemons look it up) without touching other lines.
Result<void> SetHostsEntry(const std::filesystem::path& hosts, const std::string& hostname) {
  auto existing = ReadFile(hosts);
  std::string text = existing.ok() ? *existing : "127.0.0.1\tlocalhost\n";
  std::istringstream lines(text);
  std::string line, out;
  while (std::getline(lines, line)) {
    if (!line.starts_with("127.0.1.1")) out += line + "\n";
  }
  out += "127.0.1.1\t" + hostname + "\n";
  return WriteFileAtomic(hosts, out, 0644);
}

Result<std::string> BlockDevice(const json& args) {
  std::string device = args.value("device", "");
  struct stat st {};
  if (device.empty()) return InvalidArgument("'device' is required");
  if (::stat(device.c_str(), &st) != 0) return NotFound("the VM has no disk " + device);
  if (!S_ISBLK(st.st_mode)) return InvalidArgument(device + " is not a block device");
  return device;
}

Result<int64_t> DeviceBytes(const std::string& device) {
  UniqueFd fd(::open(device.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoError("open " + device, errno);
  off_t bytes = ::lseek(fd.get(), 0, SEEK_END);
  if (bytes < 0) return ErrnoError("size of " + device, errno);
  return static_cast<int64_t>(bytes);
}

// What the head of a device holds: an ext2/3/4 superblock, nothing (all zeros: a new disk), or
// something else that must not be formatted over.
enum class DiskContent { kExt4, kBlank, kOther };

Result<DiskContent> Inspect(const std::string& device) {
  UniqueFd fd(::open(device.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoError("open " + device, errno);
  std::string head(1 << 20, '\0');
  ssize_t n = ::pread(fd.get(), head.data(), head.size(), 0);
  if (n < 0) return ErrnoError("read " + device, errno);
  head.resize(static_cast<size_t>(n));
  // The superblock starts at 1024; its magic 0xEF53 sits at offset 56 in it, little-endian.
  if (head.size() > 1081 && static_cast<unsigned char>(head[1080]) == 0x53 &&
      static_cast<unsigned char>(head[1081]) == 0xEF) {
    return DiskContent::kExt4;
  }
  return head.find_first_not_of('\0') == std::string::npos ? DiskContent::kBlank
                                                           : DiskContent::kOther;
}

// The mount point of `device`, if it is mounted.
std::optional<std::string> MountPointOf(const std::string& device) {
  std::ifstream mounts("/proc/self/mounts");
  std::string source, target, rest;
  while (mounts >> source >> target && std::getline(mounts, rest)) {
    if (source == device) return target;
  }
  return std::nullopt;
}

Result<int64_t> FilesystemBytes(const std::string& mountpoint) {
  struct statvfs fs {};
  if (::statvfs(mountpoint.c_str(), &fs) != 0) return ErrnoError("statvfs " + mountpoint, errno);
  return static_cast<int64_t>(fs.f_blocks) * static_cast<int64_t>(fs.f_frsize);
}

Result<void> Resize2fs(const std::string& device) {
  // The kernel runs one online resize per filesystem at a time; the boot's own growth of the
  // root filesystem may still be going ("Device or resource busy"): wait for it.
  for (int attempt = 0;; ++attempt) {
    auto out =
        RunCommandChecked({"resize2fs", device}, RunOptions{.timeout = std::chrono::minutes(5)});
    if (out.ok()) return Ok();
    bool busy = out.error().message().find("busy") != std::string::npos;
    if (!busy || attempt >= 60) {
      return out.error().WithContext("growing the filesystem on " + device);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
}

}  // namespace

json HelloInfo() {
  utsname u{};
  ::uname(&u);
  char host[256] = {};
  ::gethostname(host, sizeof(host) - 1);
  return {{"agent_version", "0.1.0"}, {"kernel", u.release}, {"hostname", host}};
}

Result<json> ConfigureNetwork(const json& args, const OpsConfig& config) {
  std::string hostname = args.value("hostname", "");
  if (!hostname.empty()) {
    if (::sethostname(hostname.data(), hostname.size()) != 0) {
      return ErrnoError("sethostname", errno);
    }
    VMCTL_TRY(WriteFileAtomic(config.root / "etc/hostname", hostname + "\n", 0644));
    VMCTL_TRY(SetHostsEntry(config.root / "etc/hosts", hostname));
  }
  std::string address = args.value("address", "");
  if (!address.empty()) {
    std::string iface = args.value("interface", "");
    if (iface.empty()) {
      VMCTL_ASSIGN_OR_RETURN(iface, FindInterface(args.value("mac", "")));
    }
    VMCTL_TRY(Ip({"link", "set", iface, "up"}));
    VMCTL_TRY(Ip({"addr", "replace", address, "dev", iface}));
    std::string gateway = args.value("gateway", "");
    if (!gateway.empty()) VMCTL_TRY(Ip({"route", "replace", "default", "via", gateway}));
  }
  if (args.contains("dns") && args["dns"].is_array()) {
    std::string resolv;
    for (const auto& server : args["dns"])
      resolv += "nameserver " + server.get<std::string>() + "\n";
    // rename(2) replaces a symlinked resolv.conf (systemd-resolved images) rather than its target.
    VMCTL_TRY(WriteFileAtomic(config.root / "etc/resolv.conf", resolv, 0644));
  }
  return json::object();
}

Result<json> SetAuthorizedKeys(const json& args, const OpsConfig& config) {
  std::string user = args.value("user", "root");
  if (!args.contains("keys") || !args["keys"].is_array()) {
    return InvalidArgument("set_authorized_keys needs 'keys', an array of strings");
  }
  VMCTL_ASSIGN_OR_RETURN(std::string passwd, ReadFile(config.passwd));
  VMCTL_ASSIGN_OR_RETURN(ResolvedUser entry, ResolveUser(user, passwd, ""));
  std::filesystem::path dir = std::filesystem::path(entry.home) / ".ssh";
  // With a tag, only the lines ending in " TAG" are ours to replace: the user's own keys stay.
  std::string tag = args.value("tag", "");
  std::string text;
  if (!tag.empty()) {
    auto existing = ReadFile(dir / "authorized_keys");
    std::istringstream lines(existing.ok() ? *existing : "");
    for (std::string line; std::getline(lines, line);) {
      if (!line.ends_with(" " + tag)) text += line + "\n";
    }
  }
  for (const auto& key : args["keys"]) {
    if (!key.is_string()) return InvalidArgument("keys must be strings");
    std::string k = key.get<std::string>();
    if (k.find('\n') != std::string::npos) return InvalidArgument("a key contains a newline");
    text += k + "\n";
  }
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (::chmod(dir.c_str(), 0700) != 0 || ::chown(dir.c_str(), entry.uid, entry.gid) != 0) {
    return ErrnoError("prepare " + dir.string(), errno);
  }
  VMCTL_TRY(WriteFileAtomic(dir / "authorized_keys", text, 0600));
  if (::chown((dir / "authorized_keys").c_str(), entry.uid, entry.gid) != 0) {
    return ErrnoError("chown authorized_keys", errno);
  }
  return json{{"count", args["keys"].size()}};
}

Result<json> HostKeys(const OpsConfig& config) {
  json keys = json::array();
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(config.ssh_dir, ec)) {
    std::string name = entry.path().filename().string();
    if (name.starts_with("ssh_host_") && name.ends_with("_key.pub")) {
      auto text = ReadFile(entry.path());
      if (text.ok()) keys.push_back(Trimmed(*text));
    }
  }
  return json{{"keys", keys}};
}

Result<json> Stats() {
  json out;
  std::ifstream stat("/proc/stat");
  std::string cpu;
  stat >> cpu;
  json ticks = json::array();
  for (int i = 0; i < 8; ++i) {
    uint64_t v = 0;
    stat >> v;
    ticks.push_back(v);
  }
  out["cpu"] = {
      {"count", ::sysconf(_SC_NPROCESSORS_ONLN)},
      {"ticks", ticks},
      {"fields", {"user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"}}};
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  uint64_t value = 0;
  std::string unit;
  json memory;
  while (meminfo >> key >> value >> unit) {
    if (key == "MemTotal:") memory["total_bytes"] = value * 1024;
    if (key == "MemAvailable:") memory["available_bytes"] = value * 1024;
  }
  out["memory"] = memory;
  struct statvfs fs {};
  if (::statvfs("/", &fs) == 0) {
    out["disk"] = {{"total_bytes", static_cast<uint64_t>(fs.f_blocks) * fs.f_frsize},
                   {"used_bytes", static_cast<uint64_t>(fs.f_blocks - fs.f_bfree) * fs.f_frsize}};
  }
  std::ifstream loadavg("/proc/loadavg");
  double l1 = 0, l5 = 0, l15 = 0;
  loadavg >> l1 >> l5 >> l15;
  out["load"] = {l1, l5, l15};
  std::ifstream uptime("/proc/uptime");
  double up = 0;
  uptime >> up;
  out["uptime_seconds"] = up;
  return out;
}

Result<json> PrepareDisk(const json& args) {
  VMCTL_ASSIGN_OR_RETURN(std::string device, BlockDevice(args));
  std::string mountpoint = args.value("mountpoint", "");
  if (mountpoint.empty() || mountpoint.front() != '/') {
    return InvalidArgument("'mountpoint' must be an absolute path");
  }
  bool formatted = false;
  auto mounted = MountPointOf(device);
  if (!mounted) {
    VMCTL_ASSIGN_OR_RETURN(DiskContent content, Inspect(device));
    if (content == DiskContent::kOther) {
      return FailedPrecondition(device +
                                " holds something that is not ext4; it was left untouched");
    }
    if (content == DiskContent::kBlank) {
      // Lazy init defers zeroing inode tables and the journal to the kernel, in the background.
      auto mkfs = RunCommandChecked(
          {"mkfs.ext4", "-q", "-L", "data", "-E", "lazy_itable_init=1,lazy_journal_init=1", device},
          RunOptions{.timeout = std::chrono::minutes(5)});
      if (!mkfs.ok()) return mkfs.error().WithContext("formatting " + device);
      formatted = true;
    }
    std::error_code ec;
    std::filesystem::create_directories(mountpoint, ec);
    if (::mount(device.c_str(), mountpoint.c_str(), "ext4", 0, nullptr) != 0) {
      return ErrnoError("mount " + device + " on " + mountpoint, errno);
    }
    mounted = mountpoint;
  }
  // The disk may have grown while the VM was stopped.
  VMCTL_TRY(Resize2fs(device));
  VMCTL_ASSIGN_OR_RETURN(int64_t size, FilesystemBytes(*mounted));
  return json{{"formatted", formatted}, {"mountpoint", *mounted}, {"size_bytes", size}};
}

Result<json> GrowFilesystem(const json& args) {
  VMCTL_ASSIGN_OR_RETURN(std::string device, BlockDevice(args));
  auto mountpoint = MountPointOf(device);
  if (!mountpoint) return FailedPrecondition(device + " is not mounted");
  // The kernel learns the new capacity from a config interrupt shortly after the host's call.
  int64_t want = args.value("size_bytes", int64_t{0});
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  for (;;) {
    VMCTL_ASSIGN_OR_RETURN(int64_t bytes, DeviceBytes(device));
    if (bytes >= want) break;
    if (std::chrono::steady_clock::now() > deadline) {
      return DeadlineExceeded(device + " still has " + std::to_string(bytes) + " bytes, not " +
                              std::to_string(want));
    }
    ::usleep(50 * 1000);
  }
  VMCTL_TRY(Resize2fs(device));
  VMCTL_ASSIGN_OR_RETURN(int64_t size, FilesystemBytes(*mountpoint));
  return json{{"size_bytes", size}};
}

Result<json> TimeSync(const json& args) {
  if (!args.contains("unix_ns") || !args["unix_ns"].is_number_integer()) {
    return InvalidArgument("time_sync needs 'unix_ns', an integer");
  }
  int64_t ns = args["unix_ns"].get<int64_t>();
  timespec ts{static_cast<time_t>(ns / 1000000000), static_cast<long>(ns % 1000000000)};
  if (::clock_settime(CLOCK_REALTIME, &ts) != 0) return ErrnoError("clock_settime", errno);
  return json::object();
}

}  // namespace vmctl::agent::guest
