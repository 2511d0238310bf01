#ifndef VMCTL_PROXY_GATEKEEPER_H_
#define VMCTL_PROXY_GATEKEEPER_H_

#include <boost/beast/http.hpp>
#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "controller/auth_service.h"
#include "controller/sharing_service.h"

namespace vmctl::proxy {

struct GatekeeperOptions {
  std::string domain = "vmctl.localhost";
  // Where browsers reach DOMAIN itself ("https://vmctl.localhost:8443"): login pages, the
  // cross-host login round trip and redirects are built on it.
  std::string web_url = "https://vmctl.localhost:8443";
  // How users reach the SSH gateway ("ssh -p 2222 vmctl.localhost"), for the pages' hints.
  std::string ssh_command = "ssh -p 2222 vmctl.localhost";
};

// What the proxy does with one request, decided from its head alone (no body has been read).
struct Decision {
  enum class Kind {
    kRespond,       // send `response` (a page, a redirect, a 401), then go on with the next request
    kForwardToVm,   // proxy to route.vm.address:route.port
    kForwardToApi,  // proxy to the daemon's API socket, at api_target, as identity's user
  };
  Kind kind = Kind::kRespond;
  boost::beast::http::response<boost::beast::http::string_body> response;
  controller::WebRoute route;
  std::optional<controller::Identity> identity;  // absent: anonymous (a public VM)
  std::string api_target;                        // "/v1/vms/web" for "/api/v1/vms/web"
};

// Who may do what on the HTTPS front end (docs/proxy.md, "Access"): DOMAIN's own pages (login
// page, /login/SECRET from `ssh host login`, logout, the cross-host login round trip), the HTTPS
// API under DOMAIN/api/v1/ (bearer token or session), and each VM host (VM.DOMAIN, VM--PORT.DOMAIN,
// custom domains): public, or a session of that host, or a bearer token; share links. Requests
// with an Authorization header get 401 + WWW-Authenticate, never a login redirect.
//
// Does not own the services. Threading: Decide is thread-safe and blocks on the services (the
// store), so the proxy calls it off its event loop; the header rewriters are pure.
class Gatekeeper {
 public:
  Gatekeeper(GatekeeperOptions options, controller::AuthService& auth,
             controller::SharingService& sharing);

  // `host` is the request's host name (lowercase, port and trailing dot removed), `client` the
  // client's address (rate limits).
  Decision Decide(const boost::beast::http::request_header<>& head, std::string_view host,
                  const std::string& client);

  // The head of a request about to be forwarded: removes every incoming X-Vmctl-* header, the
  // Authorization header the proxy consumed and the proxy's own cookies; adds X-Vmctl-User-Id and
  // X-Vmctl-Email for a logged-in user (a VM) or X-Vmctl-User (the API).
  static void PrepareUpstreamRequest(boost::beast::http::request_header<>& head,
                                     const Decision& decision);
  // The head of an app's response: Domain= is removed from each Set-Cookie, so one VM cannot set
  // cookies for another.
  static void PrepareDownstreamResponse(boost::beast::http::response_header<>& head);

 private:
  GatekeeperOptions options_;
  controller::AuthService& auth_;
  controller::SharingService& sharing_;
};

}  // namespace vmctl::proxy

#endif  // VMCTL_PROXY_GATEKEEPER_H_
