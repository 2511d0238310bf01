#include "proxy/login_pages.h"

#include "http/http.h"

namespace vmctl::proxy {
namespace {

using ::vmctl::http::HtmlEscape;

std::string Page(std::string_view title, const std::string& content) {
  return "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
         "<meta name=\"viewport\" content=\"width=device-width\"><title>" +
         HtmlEscape(title) + " - vmctl</title></head>\n<body><h1>" + HtmlEscape(title) + "</h1>\n" +
         content + "</body></html>\n";
}

}  // namespace

std::string SignedInPage(std::string_view email) {
  return Page("vmctl", "<p>Signed in as <strong>" + HtmlEscape(email) +
                           "</strong>.</p>\n<form method=\"post\" action=\"/logout\">"
                           "<button type=\"submit\">Sign out</button></form>\n");
}

std::string LoginPage(std::string_view ssh_command, std::string_view then_host) {
  std::string content = "<p>Run <code>" + HtmlEscape(ssh_command) +
                        " login</code> in a terminal and open the link it prints.</p>\n";
  if (!then_host.empty()) {
    content += "<p>You will then go on to <strong>" + HtmlEscape(then_host) + "</strong>.</p>\n";
  }
  return Page("Sign in", content);
}

std::string ConsentPage(std::string_view host, std::string_view email, std::string_view action) {
  return Page("Sign in to " + std::string(host),
              "<p><strong>" + HtmlEscape(host) +
                  "</strong> is another user&#39;s public VM. Signed in, its app sees that you are "
                  "<strong>" +
                  HtmlEscape(email) + "</strong>.</p>\n<form method=\"post\" action=\"" +
                  HtmlEscape(action) + "\"><button type=\"submit\">Continue as " +
                  HtmlEscape(email) + "</button></form>\n");
}

std::string MessagePage(std::string_view title, std::string_view message, std::string_view link) {
  std::string content = "<p>" + HtmlEscape(message) + "</p>\n";
  if (!link.empty()) content += "<p><a href=\"" + HtmlEscape(link) + "\">Try again</a></p>\n";
  return Page(title, content);
}

}  // namespace vmctl::proxy
