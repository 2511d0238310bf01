#ifndef VMCTL_CONTROLLER_SHARING_RULES_H_
#define VMCTL_CONTROLLER_SHARING_RULES_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

// The pure rules behind sharing, each callable on any byte string (fuzz targets): which port a
// VM's web app gets by default, which custom domain names are acceptable, what `share rm`'s
// argument names, and the platform's own web URL.
namespace vmctl::controller {

// The web port of an image with these exposed ports (its config's "exposed_ports", e.g.
// ["80/tcp", "8080/tcp"]; "8080" alone means TCP): 80 if exposed, else the smallest TCP port
// >= 1024, else 80. Entries that are not a TCP port are ignored.
uint16_t DefaultWebPort(const std::vector<std::string>& exposed_ports);

// A custom domain as `domain add` takes it: ASCII letters (lowercased), digits and inner '-' in
// labels of 1-63, at least two labels, at most 253 characters, one trailing dot dropped, a top
// label that is not all digits (no IP addresses), and neither `platform_domain` nor a name under
// it (those are VM host names). kInvalidArgument saying which rule, with the input escaped.
Result<std::string> NormalizeCustomDomain(std::string_view domain,
                                          std::string_view platform_domain);

// `share rm VM TARGET`: an email (it has an '@') or a share link's id (8 lowercase hex chars).
struct ShareTarget {
  bool is_link = false;
  std::string value;  // the email as given, or the link id
};
// kInvalidArgument for anything else.
Result<ShareTarget> ParseShareTarget(std::string_view target);

// The platform's own URL (`https://DOMAIN[:PORT]`, optionally with a trailing '/'), split for
// building VM URLs: https://VM.DOMAIN[:PORT]/.
struct WebOrigin {
  std::string domain;  // lowercase
  std::string port;    // ":8443", or empty for the scheme's default
};
// kInvalidArgument for another scheme, a path, user info, or a bad host or port.
Result<WebOrigin> ParseWebOrigin(std::string_view url);

}  // namespace vmctl::controller

#endif  // VMCTL_CONTROLLER_SHARING_RULES_H_
