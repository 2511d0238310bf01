#ifndef VMCTL_PROXY_GATEKEEPER_H_
#define VMCTL_PROXY_GATEKEEPER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "base/result.h"
#include "controller/auth_service.h"
#include "controller/sharing_service.h"
#include "model/host_name.h"
#include "proxy/access.h"
#include "proxy/access_url.h"

namespace vmctl::proxy {

// A cookie of DOMAIN alone: where the browser goes once the login link has set its session
// ("/auth?host=...&next=..."), set by the login page of the cross-host round trip.
inline constexpr std::string_view kContinueCookie = "__Host-vmctl-continue";

struct GatekeeperOptions {
  std::string domain = "vmctl.localhost";  // valid and lowercase
  // Where browsers reach DOMAIN ("https://vmctl.localhost:8443"): absolute URLs to DOMAIN and to
  // VM hosts take its scheme and port.
  std::string web_url = "https://vmctl.localhost:8443";
  // How users reach the SSH gateway ("ssh -p 2222 vmctl.localhost"), for the login page.
  std::string ssh_command = "ssh -p 2222 vmctl.localhost";
  // Seconds since the epoch (cookie lifetimes); the system clock when empty.
  std::function<int64_t()> now;
};

// The Access of the HTTPS front end (docs/proxy.md, "Access"): DOMAIN's pages (login page,
// /login/SECRET from `ssh host login`, /logout, /auth of the cross-host round trip), the HTTPS API
// under DOMAIN/api/v1/ (bearer token or session), and each VM host (VM.DOMAIN, VM--PORT.DOMAIN,
// custom domains): public, a session of that host or a bearer token; share links.
//
// Does not own the services, which must outlive it. Threading: Decide is thread-safe (the
// gatekeeper holds no mutable state) and blocks on the services.
class Gatekeeper final : public Access {
 public:
  // kInvalidArgument for a web_url that is not http(s)://HOST[:PORT].
  static Result<std::unique_ptr<Gatekeeper>> Create(GatekeeperOptions options,
                                                    controller::AuthService& auth,
                                                    controller::SharingService& sharing);

  Decision Decide(const boost::beast::http::request_header<>& head, std::string_view host,
                  const std::string& client) override;

 private:
  struct Request;
  struct Credentials;

  Gatekeeper(GatekeeperOptions options, WebOrigin origin, controller::AuthService& auth,
             controller::SharingService& sharing);

  std::optional<WebHost> Classify(std::string_view host) const;
  Credentials ReadCredentials(const Request& request, bool foreign_authorization) const;
  std::optional<controller::Identity> DomainSession(const Request& request) const;
  bool IsLoginHost(std::string_view host) const;
  bool IsSameOrigin(const Request& request) const;
  std::string HostLoginUrl(std::string_view host, std::string_view next) const;
  // The Set-Cookie value for a granted session, or the grant's error.
  Result<std::string> SessionCookie(Result<controller::SessionGrant> grant) const;

  Decision DecideApex(const Request& request) const;
  Decision DecideApi(const Request& request) const;
  bool TokenMayReach(const controller::Identity& identity, std::string_view path) const;
  Decision HomePage(const Request& request) const;
  Decision RedeemLoginLink(const Request& request) const;
  Decision Logout(const Request& request) const;
  Decision StartHostLogin(const Request& request) const;
  bool RevealsIdentity(std::string_view host, const controller::Identity& identity) const;

  Decision DecideVmHost(const Request& request, const WebHost& name) const;
  Decision RedeemHostTicket(const Request& request) const;
  Decision RedeemShareLink(const Request& request, const Credentials& credentials,
                           const std::string& secret) const;
  Decision LoginRequired(const Request& request, const Credentials& credentials) const;

  GatekeeperOptions options_;
  WebOrigin origin_;
  controller::AuthService& auth_;
  controller::SharingService& sharing_;
};

}  // namespace vmctl::proxy

#endif  // VMCTL_PROXY_GATEKEEPER_H_
