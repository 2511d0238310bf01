#ifndef VMCTL_PROXY_LOGIN_PAGES_H_
#define VMCTL_PROXY_LOGIN_PAGES_H_

#include <string>
#include <string_view>

namespace vmctl::proxy {

// The HTML bodies of DOMAIN's own access pages (sign-in, signed-in, errors). Every text they
// print is escaped (http::HtmlEscape). Pure.

// "Signed in as EMAIL" and a sign-out button (POST /logout).
std::string SignedInPage(std::string_view email);
// How to sign in: run `ssh_command login` and open the link it prints; `then_host`, when not
// empty, is the host the browser goes on to afterwards.
std::string LoginPage(std::string_view ssh_command, std::string_view then_host);
// Asks before signing in on `host`, another user's public VM, whose app then sees `email`; the
// button POSTs to `action` (a path on DOMAIN).
std::string ConsentPage(std::string_view host, std::string_view email, std::string_view action);
// A one-paragraph page; `link`, when not empty, is a same-host path offered as "Try again".
std::string MessagePage(std::string_view title, std::string_view message, std::string_view link);

}  // namespace vmctl::proxy

#endif  // VMCTL_PROXY_LOGIN_PAGES_H_
