#ifndef VMCTL_PROXY_FORWARD_HEADERS_H_
#define VMCTL_PROXY_FORWARD_HEADERS_H_

#include <boost/beast/http.hpp>
#include <string>
#include <string_view>

#include "proxy/access.h"

namespace vmctl::proxy {

// The header rewriting between browsers and apps (docs/proxy.md, "Headers apps see"). Pure.

// Turns a client's request head into the one the upstream gets: hop-by-hop headers (RFC 9110
// section 7.6.1, and whatever Connection names) go, except an Upgrade: websocket, which is kept;
// every X-Vmctl-* and X-Forwarded-* header goes, and so do the Authorization header the proxy
// consumed and the proxy's own session cookie. Then X-Forwarded-For/-Proto/-Host are set from
// `client` and `proto`, and the identity headers: X-Vmctl-User-Id and X-Vmctl-Email to a VM,
// X-Vmctl-User (the user id) to the API. The target becomes decision.api_target for the API.
void PrepareUpstreamRequest(boost::beast::http::request_header<>& head, const Decision& decision,
                            std::string_view client, std::string_view proto);

// Removes hop-by-hop headers (keeping Upgrade on a 101) and every Set-Cookie's Domain attribute,
// so that an app can set cookies for its own host only.
void PrepareDownstreamResponse(boost::beast::http::response_header<>& head);

// A Cookie header without the cookie named `name` ("a=1; s=x; b=2" -> "a=1; b=2"); "" when
// nothing is left. Malformed pairs are kept as they are.
std::string RemoveCookie(std::string_view cookie_header, std::string_view name);

// A Set-Cookie value without its Domain attribute(s) ("id=1; Domain=x.com; Path=/" ->
// "id=1; Path=/").
std::string RemoveCookieDomain(std::string_view set_cookie);

}  // namespace vmctl::proxy

#endif  // VMCTL_PROXY_FORWARD_HEADERS_H_
