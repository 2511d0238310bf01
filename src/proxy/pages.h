#ifndef VMCTL_PROXY_PAGES_H_
#define VMCTL_PROXY_PAGES_H_

#include <boost/beast/http.hpp>
#include <string_view>

#include "controller/sharing_service.h"

namespace vmctl::proxy {

using Page = boost::beast::http::response<boost::beast::http::string_body>;

// The proxy's own answers when forwarding cannot happen. HTML for browsers (Accept: text/html),
// plain text otherwise; never cached; `version` and `keep_alive` follow the request. Pure.

// 503: the VM does not run, with the command that starts it (`ssh_command` + " start VM").
Page VmNotRunningPage(const controller::WebRoute& route, std::string_view ssh_command,
                      bool wants_html, unsigned version, bool keep_alive);
// 502: nothing listens on the VM's port (connection refused or reset before a response).
Page NotListeningPage(const controller::WebRoute& route, bool wants_html, unsigned version,
                      bool keep_alive);
// 504: the app accepted but did not answer in time.
Page UpstreamTimeoutPage(const controller::WebRoute& route, bool wants_html, unsigned version,
                         bool keep_alive);
// A request the proxy refuses before routing (400, 408, 413, 414, 431, 501): a short text.
Page ErrorPage(boost::beast::http::status status, std::string_view why, unsigned version,
               bool keep_alive);

}  // namespace vmctl::proxy

#endif  // VMCTL_PROXY_PAGES_H_
