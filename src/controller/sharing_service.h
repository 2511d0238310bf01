#ifndef VMCTL_CONTROLLER_SHARING_SERVICE_H_
#define VMCTL_CONTROLLER_SHARING_SERVICE_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "controller/auth_service.h"
#include "model/user.h"
#include "model/vm.h"

namespace vmctl::controller {

// A share link (`share add-link`): whoever opens it logged in gets an email share.
struct ShareLink {
  std::string id;   // public handle for `share rm VM LINK-ID`
  std::string url;  // https://VM.DOMAIN/?share=SECRET; the secret is shown once, stored hashed
  int64_t created_at = 0;
};

// Everything `share ls` shows.
struct SharingInfo {
  std::string url;  // https://VM.DOMAIN[:port]/, where the web app is
  bool is_public = false;
  std::vector<User> users;       // email shares, oldest first
  std::vector<ShareLink> links;  // unused links (url empty: the secret is not kept)
  uint16_t web_port = 0;         // the port VM.DOMAIN reaches (explicit or the image's default)
  bool web_port_explicit = false;
  std::vector<std::string> domains;  // custom domains, sorted
};

// Where the HTTPS proxy sends a request for a VM's host.
struct WebRoute {
  VmRecord vm;  // its state says whether it runs; vm.address is the guest's IP
  uint16_t port = 0;
  bool is_public = false;
  bool is_owner = false;  // the identity owns the VM
};

// Who may reach a VM besides its owner, and at which port and names: visibility (private by
// default, or public), email shares, share links, the web port, custom domains. VM names are
// host names, unique across users. Shares the VM service's per-VM locks.
//
// `owner` arguments are the acting user's id; the VM is named as that user's own VM.
// Threading: thread-safe; calls may block on the store.
// Errors: kNotFound "no VM named 'x'" (also for another user's VM: the same message), or no user
// with that email / no such share, link or domain; kInvalidArgument (a bad email, port or domain;
// the owner's own email); kAlreadyExists (the share or domain exists; a domain another VM has);
// kFailedPrecondition (a custom domain that does not resolve to this host); kUnauthenticated
// (RouteWeb without an identity for a VM that is not public, and for names no VM has: the same
// answer, so the login page never reveals which names exist); kResourceExhausted (too many domains
// or certificates for one VM); kInternal (store failures).
class SharingService {
 public:
  virtual ~SharingService() = default;

  virtual Result<void> SetPublic(const std::string& owner, const std::string& name,
                                 bool is_public) = 0;
  virtual Result<void> Share(const std::string& owner, const std::string& name,
                             const std::string& email) = 0;
  virtual Result<void> Unshare(const std::string& owner, const std::string& name,
                               const std::string& email) = 0;
  virtual Result<ShareLink> CreateShareLink(const std::string& owner, const std::string& name) = 0;
  virtual Result<void> RemoveShareLink(const std::string& owner, const std::string& name,
                                       const std::string& link_id) = 0;
  // Consumes a link's secret for a logged-in user: they get an email share of the link's VM
  // (nothing changes for its owner or a user who has one). kUnauthenticated for a secret that is
  // unknown or used; kResourceExhausted after too many wrong ones from `source`.
  virtual Result<VmRecord> RedeemShareLink(std::string_view secret, const Identity& identity,
                                           const std::string& source) = 0;
  virtual Result<SharingInfo> Sharing(const std::string& owner, const std::string& name) = 0;

  // `share port VM PORT`: the port VM.DOMAIN reaches; 0 goes back to the image's default
  // (its exposed port 80, else its smallest exposed port >= 1024, else 80).
  virtual Result<void> SetWebPort(const std::string& owner, const std::string& name,
                                  uint16_t port) = 0;

  // `domain add VM example.com` (refused unless the name resolves to one of this host's
  // addresses), `domain rm`, `domain ls`.
  virtual Result<void> AddDomain(const std::string& owner, const std::string& name,
                                 const std::string& domain) = 0;
  virtual Result<void> RemoveDomain(const std::string& owner, const std::string& name,
                                    const std::string& domain) = 0;
  virtual Result<std::vector<std::string>> Domains(const std::string& owner,
                                                   const std::string& name) = 0;

  // The route for VM `vm_name`'s web app as `identity` (null: anonymous) may use it. `port` 0 is
  // the web port; another port (VM--PORT.DOMAIN) is for the owner alone. Public VMs' web port is
  // open to everyone; otherwise the owner, the users it is shared with, and tokens limited to it.
  // kNotFound for a VM the identity may not see, identical to one that does not exist.
  virtual Result<WebRoute> RouteWeb(std::string_view vm_name, uint16_t port,
                                    const Identity* identity) = 0;
  // The same for a custom domain's host name (always the web port).
  virtual Result<WebRoute> RouteDomain(std::string_view domain, const Identity* identity) = 0;
  // Whether `domain` is a registered custom domain (certificates are issued for those only).
  virtual bool IsCustomDomain(std::string_view domain) = 0;
};

}  // namespace vmctl::controller

#endif  // VMCTL_CONTROLLER_SHARING_SERVICE_H_
