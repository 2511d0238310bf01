#ifndef VMCTL_DAEMON_SERVE_SETUP_H_
#define VMCTL_DAEMON_SERVE_SETUP_H_

// Internal to the daemon: turning `vmctl serve`'s flags into the options and implementations its
// parts are built from (serve_setup.cc). Each refuses a bad flag with kInvalidArgument.

#include <filesystem>
#include <memory>
#include <string>

#include "base/result.h"
#include "base/unique_fd.h"
#include "controller/accounts.h"
#include "controller/auth.h"
#include "controller/mailer.h"
#include "controller/sharing.h"
#include "controller/vm_service.h"
#include "daemon/serve_flags.h"
#include "network/host_network.h"
#include "proxy/server.h"
#include "store/store.h"
#include "vmm/vmm.h"

namespace vmctl::daemon {

// The registration policy from the flags, and the mailer `verify` needs.
Result<controller::AccountsOptions> AccountOptions(const RegistrationFlags& o,
                                                   std::unique_ptr<controller::Mailer>* mailer);
// DOMAIN: --domain, else vmctl.localhost.
std::string WebDomain(const CoreFlags& core);
// Where browsers reach DOMAIN's own pages (login URLs, share links, redirects): https://DOMAIN
// with the first --https-listen port unless it is 443. The one place that knows.
std::string WebUrl(const CoreFlags& core, const ProxyFlags& proxy);
// Web authentication's options: the domain, WebUrl and the lifetimes from the flags.
Result<controller::AuthOptions> AuthOptions(const CoreFlags& core, const ProxyFlags& proxy,
                                            const WebAuthFlags& o);
// The host-wide limits from the flags: the host's CPUs and memory unless given, times the
// overcommit factors.
Result<void> SetHostCapacity(const CapacityFlags& o, controller::VmServiceOptions& vm_options);
network::HostNetworkOptions NetworkOptions(const std::filesystem::path& state_dir,
                                           const NetworkFlags& o);
// Sharing's options: VM URLs are on WebUrl's scheme and port.
controller::SharingOptions SharingOptions(const CoreFlags& o, const ProxyFlags& proxy,
                                          const acme::AcmeFlags& acme);
// The HTTPS proxy's options from its flags and the domain; kInvalidArgument for a bad address.
Result<proxy::ProxyOptions> ProxyOptionsFromFlags(const ProxyFlags& o, const std::string& domain,
                                                  const std::filesystem::path& api_socket);
// The directory of the running vmctl binary.
std::filesystem::path SelfDir();
// Picks the VMM per --backend; *why says why, for the log.
Result<std::unique_ptr<vmm::Backend>> ChooseBackend(const std::string& choice, std::string* why);
// One daemon per state directory: kAlreadyExists while another holds it.
Result<UniqueFd> LockStateDir(const std::filesystem::path& dir);
// The local admin exists, with the quota flags applied.
Result<void> EnsureAdmin(Store& store, const CapacityFlags& o);
// Addresses are kept for a VM's lifetime, so a changed --subnet would strand existing VMs.
Result<void> CheckAddressesInSubnet(Store& store, const network::NetworkInfo& info);

}  // namespace vmctl::daemon

#endif  // VMCTL_DAEMON_SERVE_SETUP_H_
