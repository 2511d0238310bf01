#ifndef VMCTL_PROXY_ACCESS_URL_H_
#define VMCTL_PROXY_ACCESS_URL_H_

#include <optional>
#include <string>
#include <string_view>

#include "base/result.h"

namespace vmctl::proxy {

// The pieces of URLs the gatekeeper reads from request targets and writes into redirects. Pure.

// A request target ("/a/b?x=1") split at the first '?'.
struct Target {
  std::string_view path;
  std::string_view query;  // without the '?'
};
Target SplitTarget(std::string_view target);

// %XX-decodes `text` ('+' is a space when `plus_is_space`, as in query strings); nullopt for a
// '%' not followed by two hex digits.
std::optional<std::string> PercentDecode(std::string_view text, bool plus_is_space);
// %XX-encodes every byte but ALPHA / DIGIT / "-._~/", so the result is one query value (and a
// cookie value).
std::string PercentEncode(std::string_view text);

// The decoded value of the first `name=value` pair of a query string; nullopt if there is none
// or its value is badly encoded.
std::optional<std::string> QueryParam(std::string_view query, std::string_view name);
// `target` without any `name=...` pair in its query (and without the '?' if nothing is left).
std::string WithoutQueryParam(std::string_view target, std::string_view name);

// Whether `next` may be a redirect target on one of our own hosts: a path starting with a single
// '/', printable ASCII without spaces or backslashes, no "//" before its query, at most 2048
// bytes. Anything else (a scheme, a network-path "//evil", "/\evil") could leave the host.
bool IsSafeRedirectPath(std::string_view next);

// Where browsers reach DOMAIN ("https://vmctl.localhost:8443"): the scheme and port that every
// absolute URL the gatekeeper builds uses.
struct WebOrigin {
  std::string scheme;  // "https" or "http"
  std::string host;
  std::string port;  // empty: the scheme's default
  // scheme://host[:port] for `host` (DOMAIN's own host when empty); the port is left out when it
  // is the scheme's default, as browsers do in Origin headers.
  std::string For(std::string_view other_host = {}) const;
};
// kInvalidArgument unless `url` is http(s)://HOST[:PORT][/] (no path, query or user info).
Result<WebOrigin> ParseWebOrigin(std::string_view url);

}  // namespace vmctl::proxy

#endif  // VMCTL_PROXY_ACCESS_URL_H_
