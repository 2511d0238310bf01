#ifndef VMCTL_AGENT_GUEST_SYSTEM_H_
#define VMCTL_AGENT_GUEST_SYSTEM_H_

#include <sys/types.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace vmctl::agent::guest {

// The guest operations other than exec (docs/agent-protocol.md). Each takes the request's
// arguments and returns the result members of the answer. Files are looked up under etc_dir
// (normally /etc) so tests can point the agent at a scratch directory.

nlohmann::json HelloFields(std::string_view agent_version);

Result<nlohmann::json> Stats();
Result<nlohmann::json> HostKeys(const std::filesystem::path& etc_dir);
Result<nlohmann::json> SetAuthorizedKeys(const nlohmann::json& args,
                                         const std::filesystem::path& etc_dir);
Result<nlohmann::json> ConfigureNetwork(const nlohmann::json& args,
                                        const std::filesystem::path& etc_dir);
Result<nlohmann::json> TimeSync(const nlohmann::json& args);

// Pure parsers, exposed for tests.

struct PasswdEntry {
  std::string name;
  uid_t uid = 0;
  gid_t gid = 0;
  std::string home;
};
// Looks a user up in passwd(5) text. The agent is static, so glibc's NSS (getpwnam) is unusable.
std::optional<PasswdEntry> FindPasswdEntry(std::string_view passwd, std::string_view user);

// The aggregate "cpu" line of /proc/stat as named tick counters.
Result<nlohmann::json> ParseCpuTotals(std::string_view proc_stat);
// MemTotal and MemAvailable of /proc/meminfo, in bytes.
Result<nlohmann::json> ParseMeminfo(std::string_view meminfo);

// "ADDR/PREFIX" with an IPv4 or IPv6 address and a prefix in range.
bool IsValidCidr(std::string_view cidr);
bool IsValidIp(std::string_view ip);
// A hostname of dot-separated DNS labels.
bool IsValidHostname(std::string_view name);

// /etc/hosts with the Debian-style "127.0.1.1 <hostname>" line set, other lines kept.
std::string HostsWithHostname(std::string_view hosts, std::string_view hostname);

// Writes path atomically (temp file + rename) with the given mode and owner.
Result<void> WriteFileAs(const std::filesystem::path& path, std::string_view data, mode_t mode,
                         uid_t uid, gid_t gid);

}  // namespace vmctl::agent::guest

#endif  // VMCTL_AGENT_GUEST_SYSTEM_H_
