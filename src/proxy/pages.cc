#include "proxy/pages.h"

#include <fmt/format.h>

#include <string>

#include "http/http.h"

namespace vmctl::proxy {
namespace {

namespace http = boost::beast::http;

Page MakePage(http::status status, std::string_view title, std::string_view text, bool wants_html,
              unsigned version, bool keep_alive) {
  Page page{status, version};
  page.set(http::field::cache_control, "no-store");
  page.set("X-Content-Type-Options", "nosniff");
  if (wants_html) {
    page.set(http::field::content_type, "text/html; charset=utf-8");
    page.body() = fmt::format(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{0}</title></head>\n"
        "<body><h1>{0}</h1>\n<p>{1}</p>\n</body></html>\n",
        ::vmctl::http::HtmlEscape(title), ::vmctl::http::HtmlEscape(text));
  } else {
    page.set(http::field::content_type, "text/plain; charset=utf-8");
    page.body() = fmt::format("{}: {}\n", title, text);
  }
  page.keep_alive(keep_alive);
  page.prepare_payload();
  return page;
}

}  // namespace

Page VmNotRunningPage(const controller::WebRoute& route, std::string_view ssh_command,
                      bool wants_html, unsigned version, bool keep_alive) {
  auto page = MakePage(http::status::service_unavailable, "VM not running",
                       fmt::format("The VM '{}' is {}. Start it with: {} start {}", route.vm.name,
                                   VmStateName(route.vm.state), ssh_command, route.vm.name),
                       wants_html, version, keep_alive);
  page.set(http::field::retry_after, "10");
  return page;
}

Page NotListeningPage(const controller::WebRoute& route, bool wants_html, unsigned version,
                      bool keep_alive) {
  return MakePage(
      http::status::bad_gateway, "Nothing listens",
      fmt::format("Nothing listens on port {} of the VM '{}'.", route.port, route.vm.name),
      wants_html, version, keep_alive);
}

Page UpstreamTimeoutPage(const controller::WebRoute& route, bool wants_html, unsigned version,
                         bool keep_alive) {
  return MakePage(http::status::gateway_timeout, "The app did not answer",
                  fmt::format("The app on port {} of the VM '{}' did not answer in time.",
                              route.port, route.vm.name),
                  wants_html, version, keep_alive);
}

Page ErrorPage(http::status status, std::string_view why, unsigned version, bool keep_alive) {
  return MakePage(status, std::string(http::obsolete_reason(status)), why, false, version,
                  keep_alive);
}

}  // namespace vmctl::proxy
