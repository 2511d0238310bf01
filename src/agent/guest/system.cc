#include "agent/guest/system.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <climits>
#include <sstream>

#include "agent/guest/spawn.h"
#include "base/io.h"
#include "base/unique_fd.h"

namespace vmctl::agent::guest {
namespace {

using nlohmann::json;

std::vector<std::string_view> Split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  for (;;) {
    size_t pos = s.find(sep, start);
    out.push_back(s.substr(start, pos == std::string_view::npos ? pos : pos - start));
    if (pos == std::string_view::npos) return out;
    start = pos + 1;
  }
}

template <typename T>
bool ParseNumber(std::string_view s, T* out) {
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && end == s.data() + s.size();
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() &&
         (s.front() == ' ' || s.front() == '\t' || s.front() == '\n' || s.front() == '\r')) {
    s.remove_prefix(1);
  }
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\n' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

Result<std::string> StringArg(const json& args, const char* name, bool required) {
  auto it = args.find(name);
  if (it == args.end() || it->is_null()) {
    if (required) return InvalidArgument(std::string("missing \"") + name + "\"");
    return std::string();
  }
  if (!it->is_string()) return InvalidArgument(std::string("\"") + name + "\" must be a string");
  return it->get<std::string>();
}

Result<std::vector<std::string>> StringListArg(const json& args, const char* name) {
  std::vector<std::string> out;
  auto it = args.find(name);
  if (it == args.end() || it->is_null()) return out;
  if (!it->is_array()) return InvalidArgument(std::string("\"") + name + "\" must be an array");
  for (const auto& v : *it) {
    if (!v.is_string()) {
      return InvalidArgument(std::string("\"") + name + "\" must contain strings");
    }
    out.push_back(v.get<std::string>());
  }
  return out;
}

Result<std::string> FirstNonLoopbackInterface() {
  struct if_nameindex* list = ::if_nameindex();
  if (list == nullptr) return ErrnoError("if_nameindex", errno);
  UniqueFd sock(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  std::string found;
  for (auto* i = list; i->if_index != 0 && found.empty(); ++i) {
    ifreq req{};
    std::snprintf(req.ifr_name, sizeof(req.ifr_name), "%s", i->if_name);
    if (sock.valid() && ::ioctl(sock.get(), SIOCGIFFLAGS, &req) == 0 &&
        (req.ifr_flags & IFF_LOOPBACK) == 0) {
      found = i->if_name;
    }
  }
  ::if_freenameindex(list);
  if (found.empty()) return NotFound("no network interface other than loopback");
  return found;
}

}  // namespace

json HelloFields(std::string_view agent_version) {
  utsname u{};
  ::uname(&u);
  char host[HOST_NAME_MAX + 1] = {};
  ::gethostname(host, sizeof(host) - 1);
  return {{"agent_version", agent_version}, {"kernel", u.release}, {"hostname", host}};
}

std::optional<PasswdEntry> FindPasswdEntry(std::string_view passwd, std::string_view user) {
  for (std::string_view line : Split(passwd, '\n')) {
    auto fields = Split(line, ':');
    if (fields.size() < 7 || fields[0] != user) continue;
    PasswdEntry e;
    e.name = std::string(fields[0]);
    if (!ParseNumber(fields[2], &e.uid) || !ParseNumber(fields[3], &e.gid)) return std::nullopt;
    e.home = std::string(fields[5]);
    return e;
  }
  return std::nullopt;
}

Result<json> ParseCpuTotals(std::string_view proc_stat) {
  static constexpr const char* kNames[] = {"user",   "nice", "system",  "idle",
                                           "iowait", "irq",  "softirq", "steal"};
  for (std::string_view line : Split(proc_stat, '\n')) {
    if (line.substr(0, 4) != "cpu ") continue;
    std::vector<std::string_view> values;
    for (std::string_view f : Split(line.substr(4), ' ')) {
      if (!f.empty()) values.push_back(f);
    }
    json out = json::object();
    for (size_t i = 0; i < std::size(kNames); ++i) {
      uint64_t v = 0;
      if (i < values.size() && !ParseNumber(values[i], &v)) {
        return InvalidArgument("bad cpu line in /proc/stat");
      }
      out[kNames[i]] = v;
    }
    return out;
  }
  return InvalidArgument("no cpu line in /proc/stat");
}

Result<json> ParseMeminfo(std::string_view meminfo) {
  std::optional<uint64_t> total, available;
  for (std::string_view line : Split(meminfo, '\n')) {
    auto colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view key = line.substr(0, colon);
    std::string_view rest = Trim(line.substr(colon + 1));
    if (rest.size() > 3 && rest.substr(rest.size() - 3) == " kB") rest.remove_suffix(3);
    uint64_t kb = 0;
    if (!ParseNumber(rest, &kb)) continue;
    if (key == "MemTotal") total = kb * 1024;
    if (key == "MemAvailable") available = kb * 1024;
  }
  if (!total || !available) return InvalidArgument("MemTotal/MemAvailable missing in meminfo");
  return json{{"total_bytes", *total}, {"available_bytes", *available}};
}

bool IsValidIp(std::string_view ip) {
  std::string s(ip);
  unsigned char buf[sizeof(in6_addr)];
  return ::inet_pton(AF_INET, s.c_str(), buf) == 1 || ::inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

bool IsValidCidr(std::string_view cidr) {
  auto slash = cidr.find('/');
  if (slash == std::string_view::npos) return false;
  std::string addr(cidr.substr(0, slash));
  int prefix = -1;
  if (!ParseNumber(cidr.substr(slash + 1), &prefix) || prefix < 0) return false;
  unsigned char buf[sizeof(in6_addr)];
  if (::inet_pton(AF_INET, addr.c_str(), buf) == 1) return prefix <= 32;
  if (::inet_pton(AF_INET6, addr.c_str(), buf) == 1) return prefix <= 128;
  return false;
}

bool IsValidHostname(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  for (std::string_view label : Split(name, '.')) {
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') {
      return false;
    }
    for (char c : label) {
      bool ok =
          (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
      if (!ok) return false;
    }
  }
  return true;
}

std::string HostsWithHostname(std::string_view hosts, std::string_view hostname) {
  std::string out;
  bool replaced = false;
  for (std::string_view line : Split(hosts, '\n')) {
    if (line.empty()) continue;
    if (line.substr(0, 9) == "127.0.1.1" &&
        (line.size() == 9 || line[9] == ' ' || line[9] == '\t')) {
      if (replaced) continue;
      out += "127.0.1.1\t" + std::string(hostname) + "\n";
      replaced = true;
      continue;
    }
    out += std::string(line) + "\n";
  }
  if (!replaced) out += "127.0.1.1\t" + std::string(hostname) + "\n";
  return out;
}

Result<void> WriteFileAs(const std::filesystem::path& path, std::string_view data, mode_t mode,
                         uid_t uid, gid_t gid) {
  std::string tmp = path.string() + ".vmctl-tmp";
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode));
  if (!fd.valid()) return ErrnoError("open " + tmp, errno);
  auto fail = [&](const char* what) {
    Error e = ErrnoError(std::string(what) + " " + tmp, errno);
    ::unlink(tmp.c_str());
    return e;
  };
  if (::fchown(fd.get(), uid, gid) < 0) return fail("chown");
  if (::fchmod(fd.get(), mode) < 0) return fail("chmod");
  if (auto r = WriteAll(fd.get(), data); !r.ok()) {
    ::unlink(tmp.c_str());
    return r;
  }
  if (::fsync(fd.get()) < 0) return fail("fsync");
  if (::rename(tmp.c_str(), path.c_str()) < 0) return fail("rename");
  return Ok();
}

Result<json> Stats() {
  VMCTL_ASSIGN_OR_RETURN(std::string proc_stat, ReadFile("/proc/stat"));
  VMCTL_ASSIGN_OR_RETURN(json cpu, ParseCpuTotals(proc_stat));
  cpu["count"] = ::sysconf(_SC_NPROCESSORS_ONLN);
  cpu["ticks_per_second"] = ::sysconf(_SC_CLK_TCK);

  VMCTL_ASSIGN_OR_RETURN(std::string meminfo, ReadFile("/proc/meminfo"));
  VMCTL_ASSIGN_OR_RETURN(json memory, ParseMeminfo(meminfo));

  struct statvfs fs {};
  if (::statvfs("/", &fs) < 0) return ErrnoError("statvfs /", errno);
  uint64_t unit = fs.f_frsize;
  json disk = {{"total_bytes", fs.f_blocks * unit},
               {"used_bytes", (fs.f_blocks - fs.f_bfree) * unit},
               {"available_bytes", fs.f_bavail * unit}};

  VMCTL_ASSIGN_OR_RETURN(std::string loadavg, ReadFile("/proc/loadavg"));
  VMCTL_ASSIGN_OR_RETURN(std::string uptime, ReadFile("/proc/uptime"));
  double l1 = 0, l5 = 0, l15 = 0, up = 0;
  std::istringstream(loadavg) >> l1 >> l5 >> l15;
  std::istringstream(uptime) >> up;
  return json{{"cpu", cpu},
              {"memory", memory},
              {"disk", disk},
              {"load", {l1, l5, l15}},
              {"uptime_seconds", up}};
}

Result<json> HostKeys(const std::filesystem::path& etc_dir) {
  std::vector<std::filesystem::path> files;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(etc_dir / "ssh", ec)) {
    std::string name = entry.path().filename().string();
    if (name.starts_with("ssh_host_") && name.ends_with("_key.pub")) files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  json keys = json::array();
  for (const auto& file : files) {
    auto text = ReadFile(file);
    if (!text.ok()) continue;  // e.g. removed meanwhile: report the keys that exist
    for (std::string_view line : Split(*text, '\n')) {
      line = Trim(line);
      if (!line.empty()) keys.push_back(std::string(line));
    }
  }
  return json{{"keys", keys}};
}

Result<json> SetAuthorizedKeys(const json& args, const std::filesystem::path& etc_dir) {
  VMCTL_ASSIGN_OR_RETURN(std::string user, StringArg(args, "user", true));
  VMCTL_ASSIGN_OR_RETURN(std::vector<std::string> keys, StringListArg(args, "keys"));
  std::string content;
  for (const auto& key : keys) {
    if (key.find_first_of("\r\n") != std::string::npos || Trim(key).empty()) {
      return InvalidArgument("each key must be one non-empty line");
    }
    content += key + "\n";
  }
  VMCTL_ASSIGN_OR_RETURN(std::string passwd, ReadFile(etc_dir / "passwd"));
  auto entry = FindPasswdEntry(passwd, user);
  if (!entry) return NotFound("no user " + user + " in " + (etc_dir / "passwd").string());
  if (entry->home.empty() || !std::filesystem::is_directory(entry->home)) {
    return FailedPrecondition("home directory of " + user + " does not exist: " + entry->home);
  }
  std::filesystem::path ssh = std::filesystem::path(entry->home) / ".ssh";
  if (::mkdir(ssh.c_str(), 0700) < 0 && errno != EEXIST) {
    return ErrnoError("mkdir " + ssh.string(), errno);
  }
  // An existing .ssh gets fixed too: sshd's StrictModes ignores keys in a lax directory.
  if (::lchown(ssh.c_str(), entry->uid, entry->gid) < 0 || ::chmod(ssh.c_str(), 0700) < 0) {
    return ErrnoError("chown/chmod " + ssh.string(), errno);
  }
  VMCTL_TRY(WriteFileAs(ssh / "authorized_keys", content, 0600, entry->uid, entry->gid));
  return json{{"path", (ssh / "authorized_keys").string()}};
}

Result<json> ConfigureNetwork(const json& args, const std::filesystem::path& etc_dir) {
  VMCTL_ASSIGN_OR_RETURN(std::string interface, StringArg(args, "interface", false));
  VMCTL_ASSIGN_OR_RETURN(std::string address, StringArg(args, "address", false));
  VMCTL_ASSIGN_OR_RETURN(std::string gateway, StringArg(args, "gateway", false));
  VMCTL_ASSIGN_OR_RETURN(std::vector<std::string> dns, StringListArg(args, "dns"));
  VMCTL_ASSIGN_OR_RETURN(std::string hostname, StringArg(args, "hostname", false));
  // Everything is validated before anything changes, so a bad request leaves the guest as it was.
  if (!address.empty() && !IsValidCidr(address)) {
    return InvalidArgument("address must be ADDRESS/PREFIX: " + address);
  }
  if (!gateway.empty() && !IsValidIp(gateway)) return InvalidArgument("bad gateway: " + gateway);
  for (const auto& server : dns) {
    if (!IsValidIp(server)) return InvalidArgument("bad dns server: " + server);
  }
  if (!hostname.empty() && !IsValidHostname(hostname)) {
    return InvalidArgument("bad hostname: " + hostname);
  }
  json result = json::object();
  if (!address.empty() || !gateway.empty()) {
    if (interface.empty()) {
      VMCTL_ASSIGN_OR_RETURN(interface, FirstNonLoopbackInterface());
    } else if (interface.size() >= IFNAMSIZ || interface.find('/') != std::string::npos ||
               ::if_nametoindex(interface.c_str()) == 0) {
      return NotFound("no network interface " + interface);
    }
    VMCTL_TRY(RunHelper({"ip", "link", "set", "dev", interface, "up"}));
    if (!address.empty()) {
      // Replacing rather than adding keeps the call idempotent, also for a clone that comes up
      // with its origin's address.
      VMCTL_TRY(RunHelper({"ip", "addr", "flush", "dev", interface, "scope", "global"}));
      VMCTL_TRY(RunHelper({"ip", "addr", "add", address, "dev", interface}));
    }
    if (!gateway.empty()) {
      VMCTL_TRY(RunHelper({"ip", "route", "replace", "default", "via", gateway, "dev", interface}));
    }
    result["interface"] = interface;
  }
  if (!dns.empty()) {
    std::string resolv = "# Written by vmctl-agent.\n";
    for (const auto& server : dns) resolv += "nameserver " + server + "\n";
    VMCTL_TRY(WriteFileAs(etc_dir / "resolv.conf", resolv, 0644, ::geteuid(), ::getegid()));
  }
  if (!hostname.empty()) {
    if (::sethostname(hostname.data(), hostname.size()) < 0) {
      return ErrnoError("sethostname", errno);
    }
    VMCTL_TRY(WriteFileAs(etc_dir / "hostname", hostname + "\n", 0644, ::geteuid(), ::getegid()));
    auto hosts = ReadFile(etc_dir / "hosts");
    std::string base = hosts.ok() ? *hosts : "127.0.0.1\tlocalhost\n";
    VMCTL_TRY(WriteFileAs(etc_dir / "hosts", HostsWithHostname(base, hostname), 0644, ::geteuid(),
                          ::getegid()));
  }
  return result;
}

Result<json> TimeSync(const json& args) {
  auto it = args.find("unix_ns");
  if (it == args.end() || !it->is_number_integer()) {
    return InvalidArgument("\"unix_ns\" must be an integer");
  }
  int64_t ns = it->get<int64_t>();
  if (ns <= 0) return InvalidArgument("\"unix_ns\" must be positive");
  timespec ts{};
  ts.tv_sec = ns / 1000000000;
  ts.tv_nsec = ns % 1000000000;
  if (::clock_settime(CLOCK_REALTIME, &ts) < 0) return ErrnoError("clock_settime", errno);
  return json::object();
}

}  // namespace vmctl::agent::guest
