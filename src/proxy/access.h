#ifndef VMCTL_PROXY_ACCESS_H_
#define VMCTL_PROXY_ACCESS_H_

#include <boost/beast/http.hpp>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "controller/auth_service.h"
#include "controller/sharing_service.h"

namespace vmctl::proxy {

// The proxy's own cookie: a session id, host-only (the __Host- prefix makes browsers refuse it
// unless it is Secure, Path=/ and without Domain), so each VM host holds its own.
inline constexpr std::string_view kSessionCookie = "__Host-vmctl-session";

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
  // The request carried an Authorization header that the proxy consumed (a bearer token):
  // it is removed before forwarding.
  bool consumed_authorization = false;
};

// Who may do what on the HTTPS front end (docs/proxy.md, "Access"): DOMAIN's own pages, the HTTPS
// API under DOMAIN/api/v1/, and each VM host (VM.DOMAIN, VM--PORT.DOMAIN, custom domains).
//
// Threading: Decide is called concurrently, off the proxy's event loop (it may block on the
// store). DecideCached is called concurrently on the event loop, so it never blocks on I/O. Neither
// fails: every refusal is a response.
class Access {
 public:
  virtual ~Access() = default;

  // `host` is the request's host name (lowercase, port and trailing dot removed), `client` the
  // client's address (for rate limits).
  virtual Decision Decide(const boost::beast::http::request_header<>& head, std::string_view host,
                          const std::string& client) = 0;

  // Decide's answer for the same arguments when it is known without blocking (an answer Decide
  // gave lately for the same host and credentials; an implementation says how old it may be),
  // else null, and then the caller runs Decide. It saves the hand-off to Decide's threads,
  // which costs about half the proxy's throughput. Shared, not copied: a copy of a Decision
  // (its route's VM record, the response) for every request showed in the proxy's profile
  // under load. This default never knows.
  virtual std::shared_ptr<const Decision> DecideCached(
      const boost::beast::http::request_header<>& /*head*/, std::string_view /*host*/,
      const std::string& /*client*/) {
    return nullptr;
  }
};

}  // namespace vmctl::proxy

#endif  // VMCTL_PROXY_ACCESS_H_
