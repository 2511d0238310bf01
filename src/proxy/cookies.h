#ifndef VMCTL_PROXY_COOKIES_H_
#define VMCTL_PROXY_COOKIES_H_

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace vmctl::proxy {

// Parsing of the request headers that carry credentials, and the proxy's Set-Cookie values.

// The pairs of one Cookie header ("a=b; c=d"), in order. Lenient like browsers and RFC 6265
// section 5.4's consumers: pieces without '=' or with an empty name are skipped, spaces and tabs
// around names and values are trimmed, one pair of double quotes around a value is removed.
// Pure; views into `header`.
std::vector<std::pair<std::string_view, std::string_view>> ParseCookieHeader(
    std::string_view header);

// The value of the first cookie called `name` in a Cookie header, if any. Pure.
std::optional<std::string_view> FindCookie(std::string_view header, std::string_view name);

// The token of an Authorization header in the Bearer scheme (RFC 6750: the scheme name is
// case-insensitive; surrounding spaces are trimmed); nullopt for other schemes or an empty token.
// Pure; a view into `authorization`.
std::optional<std::string_view> BearerToken(std::string_view authorization);

// A Set-Cookie value for one of the proxy's own cookies: host-only (no Domain, which the
// __Host- prefix requires anyway), Path=/, Secure, HttpOnly, SameSite=Lax, living `max_age`
// (0 expires it at once). `value` must consist of cookie-octets (the callers' are base64url
// secrets or percent-encoded paths).
std::string BuildSetCookie(std::string_view name, std::string_view value,
                           std::chrono::seconds max_age);

// Whether `value` may be sent as a cookie value unquoted (RFC 6265 cookie-octets, at most 4000
// bytes, the browsers' limit for a whole cookie being about 4096).
bool IsCookieValue(std::string_view value);

}  // namespace vmctl::proxy

#endif  // VMCTL_PROXY_COOKIES_H_
