#ifndef VMCTL_CONTROLLER_SHARING_H_
#define VMCTL_CONTROLLER_SHARING_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "controller/sharing_rules.h"
#include "controller/sharing_service.h"
#include "controller/vm_locks.h"
#include "store/store.h"

namespace vmctl::controller {

struct SharingOptions {
  // The platform's own URL: VM.DOMAIN and share links derive from it.
  std::string web_url = "https://vmctl.localhost:8443";
  // The addresses (IPv4 or IPv6, textual) a custom domain resolves to; an error or none when it
  // does not resolve. Default: getaddrinfo.
  std::function<Result<std::vector<std::string>>(const std::string& domain)> resolve;
  // This host's addresses; a custom domain must resolve to one of them. Default: the addresses of
  // the host's interfaces (getifaddrs) and `listen_addresses`.
  std::function<std::vector<std::string>()> host_addresses;
  // Where the HTTPS proxy listens (a forwarded or NATed address the interfaces do not show).
  std::vector<std::string> listen_addresses;
  // Whether certificates can be had for custom domains (the daemon: an ACME CA is configured, and
  // both HTTPS and plain HTTP, which HTTP-01 validates on, are served). Without, `AddDomain`
  // refuses: the local CA may vouch for DOMAIN only, and a domain without a certificate serves
  // nothing.
  bool custom_domain_certificates = true;
  size_t max_domains_per_vm = 10;
  size_t max_links_per_vm = 50;
  // Wrong share-link secrets one source may present per window before it is refused for the
  // rest of the window.
  int max_wrong_secrets = 10;
  std::chrono::seconds wrong_secret_window{600};
  // Unix seconds; tests set it.
  std::function<int64_t()> now;
};

// The SharingService over the store. (Not named Sharing: the interface's Sharing() would be a
// constructor.) Changes to a VM take the VM's lock in `locks`, the one the
// lifecycle (VmService) takes, and re-read the VM under it.
class VmSharing final : public SharingService {
 public:
  // Does not take ownership; store and locks must outlive it. kInvalidArgument for a bad
  // options.web_url.
  static Result<std::unique_ptr<VmSharing>> Create(Store& store, VmLocks& locks,
                                                   SharingOptions options);

  Result<void> SetPublic(const std::string& owner, const std::string& name,
                         bool is_public) override;
  Result<void> Share(const std::string& owner, const std::string& name,
                     const std::string& email) override;
  Result<void> Unshare(const std::string& owner, const std::string& name,
                       const std::string& email) override;
  Result<ShareLink> CreateShareLink(const std::string& owner, const std::string& name) override;
  Result<void> RemoveShareLink(const std::string& owner, const std::string& name,
                               const std::string& link_id) override;
  Result<VmRecord> RedeemShareLink(std::string_view secret, const Identity& identity,
                                   const std::string& source) override;
  Result<SharingInfo> Sharing(const std::string& owner, const std::string& name) override;
  Result<void> SetWebPort(const std::string& owner, const std::string& name,
                          uint16_t port) override;
  Result<void> AddDomain(const std::string& owner, const std::string& name,
                         const std::string& domain) override;
  Result<void> RemoveDomain(const std::string& owner, const std::string& name,
                            const std::string& domain) override;
  Result<std::vector<std::string>> Domains(const std::string& owner,
                                           const std::string& name) override;
  Result<WebRoute> RouteWeb(std::string_view vm_name, uint16_t port,
                            const Identity* identity) override;
  Result<WebRoute> RouteDomain(std::string_view domain, const Identity* identity) override;
  bool IsCustomDomain(std::string_view domain) override;

 private:
  VmSharing(Store& store, VmLocks& locks, SharingOptions options, WebOrigin origin);

  // The owner's VM `name`, read again under its lock, passed to `change`.
  Result<void> ChangeVm(const std::string& owner, const std::string& name,
                        const std::function<Result<void>(const VmRecord&)>& change);
  Result<VmRecord> Owned(const std::string& owner, const std::string& name);
  // The port VM.DOMAIN reaches and whether the VM sets it.
  Result<std::pair<uint16_t, bool>> WebPort(const VmRecord& vm);
  // The access rules of RouteWeb for a VM that exists; `shown` names it in errors.
  Result<WebRoute> Route(const VmRecord& vm, uint16_t port, const Identity* identity,
                         std::string_view shown);
  Result<void> CheckDomainPointsHere(const std::string& domain);
  // Wrong share secrets per source: true while `source` may try again.
  bool MayTrySecret(const std::string& source);
  void CountWrongSecret(const std::string& source);
  int64_t Now() const;

  Store& store_;
  VmLocks& locks_;
  SharingOptions options_;
  WebOrigin origin_;

  struct Attempts {
    int64_t window_start = 0;
    int wrong = 0;
  };
  std::mutex attempts_mu_;
  std::map<std::string, Attempts> attempts_;
};

}  // namespace vmctl::controller

#endif  // VMCTL_CONTROLLER_SHARING_H_
