#include "image/agent_init.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <sys/stat.h>

#include <map>
#include <set>
#include <sstream>

#include "base/io.h"
#include "base/process.h"
#include "image/builder.h"
#include "image/in_root.h"

namespace vmctl::image {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct HostTool {
  const char* name;
  const char* path;
  const char* package;
};
constexpr HostTool kTools[] = {
    {"sshd", "/usr/sbin/sshd", "openssh-server"},
    {"ssh-keygen", "/usr/bin/ssh-keygen", "openssh-client"},
    {"ip", "/usr/bin/ip", "iproute2"},
    {"mke2fs", "/usr/sbin/mke2fs", "e2fsprogs"},
    {"resize2fs", "/usr/sbin/resize2fs", "e2fsprogs"},
};

// Keys only; UsePAM no because the image need not have PAM (its modules would be the image's).
constexpr std::string_view kSshdConfig = R"(# vmctl: the sshd of images that have none of their own.
HostKey /etc/ssh/ssh_host_ed25519_key
HostKey /etc/ssh/ssh_host_ecdsa_key
HostKey /etc/ssh/ssh_host_rsa_key
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PidFile /run/sshd.pid
Subsystem sftp internal-sftp
)";

std::string Bundle(std::string_view sub) { return fmt::format("{}/{}", agent::kBundleDir, sub); }

Error StepError(const Error& e) {
  return Error(e.code(),
               fmt::format("image build failed at 'prepare the agent as init': {}", e.message()));
}

Result<void> Step(bool ok, const std::string& what) {
  if (!ok) return StepError(Internal(what));
  return Ok();
}

// Adds `line` to the passwd- or group-style file (a resolved path) unless an entry named `name`
// exists.
Result<void> EnsureEntry(const fs::path& file, std::string_view name, const std::string& line) {
  std::string text;
  if (fs::exists(file)) {
    auto read = ReadFile(file);
    if (!read.ok()) return StepError(read.error());
    text = *read;
  }
  std::istringstream lines(text);
  std::string existing;
  while (std::getline(lines, existing)) {
    if (existing.substr(0, existing.find(':')) == name) return Ok();
  }
  if (!text.empty() && !text.ends_with('\n')) text += '\n';
  auto written = WriteFileAtomic(file, text + line + "\n", 0644);
  if (!written.ok()) return StepError(written.error());
  return Ok();
}

// A uid no passwd entry uses, below the usual range of human users.
unsigned FreeSystemUid(const fs::path& passwd) {
  std::set<unsigned> used;
  auto text = ReadFile(passwd);
  std::istringstream lines(text.ok() ? *text : "");
  std::string line;
  while (std::getline(lines, line)) {
    std::stringstream fields(line);
    std::string name, x, uid;
    if (std::getline(fields, name, ':') && std::getline(fields, x, ':') &&
        std::getline(fields, uid, ':')) {
      try {
        used.insert(static_cast<unsigned>(std::stoul(uid)));
      } catch (const std::exception&) {
      }
    }
  }
  unsigned uid = 100;
  while (used.count(uid)) ++uid;
  return uid;
}

Result<void> InstallTools(const fs::path& root) {
  // Made afresh: whatever the image had there (links included) goes.
  auto resolved = InRoot(root, agent::kBundleDir);
  if (!resolved.ok()) return StepError(resolved.error());
  const fs::path bundle = *resolved;
  const fs::path bin = bundle / "bin", lib = bundle / "lib";
  std::error_code ec;
  fs::remove_all(bundle, ec);
  fs::create_directories(bin, ec);
  fs::create_directories(lib, ec);
  fs::create_directories(bundle / "etc", ec);
  if (ec) return StepError(Internal("cannot create the bundle directory: " + ec.message()));
  std::set<std::string> copied;
  std::string loader;
  for (const auto& tool : kTools) {
    if (!fs::exists(tool.path)) {
      return StepError(NotFound(
          fmt::format("{} is missing on this host (install {})", tool.path, tool.package)));
    }
    auto ldd = RunCommandChecked({"ldd", tool.path});
    if (!ldd.ok()) return StepError(ldd.error());
    std::vector<std::string> missing;
    for (const auto& path : ParseLdd(ldd->out, &missing)) {
      std::string name = fs::path(path).filename().string();
      if (name.starts_with("ld-linux")) loader = name;
      if (!copied.insert(name).second) continue;
      fs::copy_file(fs::canonical(path, ec), lib / name, fs::copy_options::overwrite_existing, ec);
      if (ec) return StepError(Internal(fmt::format("cannot copy {}: {}", path, ec.message())));
    }
    if (!missing.empty()) {
      return StepError(NotFound(fmt::format("{} needs libraries this host lacks: {}", tool.path,
                                            fmt::join(missing, ", "))));
    }
    fs::copy_file(tool.path, bin / tool.name, fs::copy_options::overwrite_existing, ec);
    if (ec) return StepError(Internal(fmt::format("cannot copy {}: {}", tool.path, ec.message())));
  }
  if (loader.empty()) return StepError(NotFound("ldd named no ELF loader for the bundled tools"));
  for (const auto& tool : kTools) {
    auto patched = RunCommandChecked({"patchelf", "--set-interpreter", Bundle("lib/" + loader),
                                      "--force-rpath", "--set-rpath", Bundle("lib"),
                                      (bin / tool.name).string()});
    if (!patched.ok()) {
      return StepError(
          patched.error().WithContext("patchelf (install patchelf) on " + std::string(tool.name)));
    }
  }
  // mke2fs picks the filesystem type from the name it is called by.
  fs::remove(bin / "mkfs.ext4", ec);
  fs::create_symlink("mke2fs", bin / "mkfs.ext4", ec);
  if (ec) return StepError(Internal("cannot link mkfs.ext4: " + ec.message()));
  auto config = WriteFileAtomic(bundle / "etc/sshd_config", kSshdConfig);
  if (!config.ok()) return StepError(config.error());
  return Ok();
}

}  // namespace

std::vector<std::string> ParseLdd(std::string_view output, std::vector<std::string>* missing) {
  std::vector<std::string> paths;
  std::istringstream lines{std::string(output)};
  std::string line;
  while (std::getline(lines, line)) {
    auto start = line.find_first_not_of(" \t");
    if (start == std::string::npos) continue;
    line = line.substr(start);
    auto arrow = line.find(" => ");
    if (arrow != std::string::npos) {
      std::string target = line.substr(arrow + 4);
      if (target.starts_with("not found")) {
        if (missing) missing->push_back(line.substr(0, arrow));
      } else if (target.starts_with('/')) {
        paths.push_back(target.substr(0, target.find(" (")));
      }
    } else if (line.starts_with('/')) {
      paths.push_back(line.substr(0, line.find(" (")));
    }
  }
  return paths;
}

Result<std::string> AgentInitInputsKey() {
  std::string all(kSshdConfig);
  for (const auto& tool : kTools) {
    auto content = ReadFile(tool.path);
    if (!content.ok()) {
      return NotFound(
          fmt::format("{} is missing on this host (install {})", tool.path, tool.package));
    }
    all += fmt::format("\n{} {}", tool.name, Sha256Hex(*content));
  }
  return Sha256Hex(all);
}

agent::InitPlan PlanServices(const json& config) {
  agent::InitPlan plan;
  // The image's own command first: making an RSA host key takes seconds in an emulated guest
  // and the services after ssh-keygen wait for it.
  std::vector<std::string> argv;
  for (const char* key : {"entrypoint", "cmd"}) {
    auto it = config.find(key);
    if (it == config.end() || !it->is_array()) continue;
    for (const auto& a : *it) {
      if (a.is_string()) argv.push_back(a.get<std::string>());
    }
  }
  if (!argv.empty()) {
    agent::Service app{"app", argv, {}, config.value("user", ""), config.value("working_dir", "")};
    if (auto env = config.find("env"); env != config.end() && env->is_array()) {
      for (const auto& e : *env) {
        if (e.is_string()) app.env.push_back(e.get<std::string>());
      }
    }
    if (app.user == "root") app.user.clear();
    plan.services.push_back(std::move(app));
  }
  plan.services.push_back(
      {"ssh-keygen", {Bundle("bin/ssh-keygen"), "-A"}, {}, "", "/", false, true});
  plan.services.push_back({"sshd",
                           {Bundle("bin/sshd"), "-D", "-e", "-f", Bundle("etc/sshd_config")},
                           {},
                           "",
                           "/",
                           true,
                           false});
  return plan;
}

Result<void> PrepareAgentInit(const fs::path& root, const json& config) {
  std::map<std::string, fs::path> dirs;
  for (const char* dir : {"proc", "sys", "dev", "run", "tmp", "etc/ssh", "etc/vmctl", "root"}) {
    auto made = DirInRoot(root, dir);
    if (!made.ok()) return StepError(made.error());
    dirs[dir] = *made;
  }
  VMCTL_TRY(Step(::chmod(dirs["tmp"].c_str(), 01777) == 0, "cannot chmod /tmp"));
  VMCTL_TRY(Step(::chmod(dirs["root"].c_str(), 0700) == 0, "cannot chmod /root"));
  auto passwd = InRoot(root, "etc/passwd");
  auto group = InRoot(root, "etc/group");
  if (!passwd.ok()) return StepError(passwd.error());
  if (!group.ok()) return StepError(group.error());
  VMCTL_TRY(EnsureEntry(*passwd, "root", "root:x:0:0:root:/root:/bin/sh"));
  VMCTL_TRY(EnsureEntry(*group, "root", "root:x:0:"));
  // sshd's privilege-separated child runs as this user, chrooted into /run/sshd.
  VMCTL_TRY(
      EnsureEntry(*passwd, "sshd",
                  fmt::format("sshd:x:{}:65534::/run/sshd:/nonexistent", FreeSystemUid(*passwd))));
  VMCTL_TRY(InstallTools(root));
  auto plan = WriteInRoot(root, agent::kInitPlanPath,
                          agent::ToJson(PlanServices(config)).dump(2) + "\n", 0644);
  if (!plan.ok()) return StepError(plan.error());
  return Ok();
}

}  // namespace vmctl::image
