#ifndef VMCTL_AGENT_INIT_PLAN_H_
#define VMCTL_AGENT_INIT_PLAN_H_

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace vmctl::agent {

// What the agent starts when it is the VM's init (images without an init system of their own,
// typically OCI images of one application). The image builder writes the plan into the image at
// kInitPlanPath; the agent reads it at boot. Pure data and translation: no I/O here.

inline constexpr char kInitPlanPath[] = "/etc/vmctl/init.json";
// Tools vmctl adds to images that lack them (sshd, ssh-keygen, ip, mkfs.ext4, resize2fs), each
// with its own shared libraries and loader, so they run whatever libc the image has.
inline constexpr char kBundleDir[] = "/opt/vmctl";

struct Service {
  std::string name;
  std::vector<std::string> argv;  // argv[0] absolute, or looked up in the service's PATH
  std::vector<std::string> env;   // "KEY=value", over a base of PATH, HOME, TERM
  std::string user;               // "" (root), "name", "uid", "name:group" or "uid:gid"
  std::string cwd;                // "" : the user's home
  bool restart = false;           // started again a second after it exits
  bool wait = false;              // the services after it start once it has exited
};

struct InitPlan {
  std::vector<Service> services;  // started in order
};

nlohmann::json ToJson(const InitPlan& plan);
// kInvalidArgument naming the offending field.
Result<InitPlan> ParseInitPlan(std::string_view text);

struct ResolvedUser {
  unsigned uid = 0, gid = 0;
  std::string home = "/";
};
// Resolves a user spec as OCI images give it against the image's /etc/passwd and /etc/group
// text (the static agent cannot use getpwnam: NSS needs shared libraries). Numeric ids need no
// entry (home "/"); a name must exist. kNotFound naming what is missing.
Result<ResolvedUser> ResolveUser(std::string_view spec, std::string_view passwd,
                                 std::string_view group);

}  // namespace vmctl::agent

#endif  // VMCTL_AGENT_INIT_PLAN_H_
