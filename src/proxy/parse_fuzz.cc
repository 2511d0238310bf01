// libFuzzer target for what the proxy reads from browsers before anything routes on it (first
// byte picks):
//   0  bytes off the wire as the server reads them: ScanRequestHead, Beast's parser on the head it
//      found, CheckRequestHead, then the body (Content-Length or chunked: chunk sizes,
//      extensions, trailers) in small pieces, and the head rewritten for an upstream
//      (PrepareUpstreamRequest): no X-Vmctl-* header but the ones it sets, no session cookie
//   1  Cookie headers through RemoveCookie: the removed name is gone, every other pair stays
//   2  Set-Cookie values through RemoveCookieDomain: no Domain attribute is left
// Host headers and TLS server names (ParseWebHost) are model_fuzz's.

#include <boost/beast/http.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <variant>

#include "base/ascii.h"
#include "proxy/cookies.h"
#include "proxy/forward_headers.h"
#include "proxy/request_checks.h"

namespace {

namespace beast = boost::beast;
namespace http = beast::http;
using namespace vmctl::proxy;

void CheckForwarded(http::request_header<>& head) {
  Decision decision;
  decision.kind = Decision::Kind::kForwardToVm;
  decision.identity = vmctl::controller::Identity{"u-1", "a@example.com", ""};
  PrepareUpstreamRequest(head, decision, "192.0.2.1", "https");
  size_t own = 0;
  for (const auto& field : head) {
    std::string_view name = field.name_string();
    if (name.size() >= 8 && vmctl::EqualsIgnoringAsciiCase(name.substr(0, 8), "x-vmctl-")) ++own;
  }
  if (own != 2 || head["X-Vmctl-User-Id"] != "u-1" || head["X-Vmctl-Email"] != "a@example.com") {
    std::abort();
  }
  for (const auto& [name, value] : ParseCookieHeader(head[http::field::cookie])) {
    if (name == kSessionCookie) std::abort();
  }
}

void CheckRequest(std::string_view bytes) {
  auto scan = ScanRequestHead(bytes);
  auto* head = std::get_if<HeadScan>(&scan);
  if (head == nullptr || head->length == 0) return;
  if (head->skipped + head->length > bytes.size()) std::abort();
  http::request_parser<http::buffer_body> parser;
  parser.header_limit(16 * 1024);
  parser.body_limit(boost::none);
  beast::error_code ec;
  parser.put(beast::net::buffer(bytes.data() + head->skipped, head->length), ec);
  if (ec || !parser.is_header_done()) return;
  if (CheckRequestHead(parser.get())) return;
  // A checked head is framed one way only.
  if (parser.get().count(http::field::content_length) > 1 ||
      (parser.chunked() && parser.content_length())) {
    std::abort();
  }
  std::string_view body = bytes.substr(head->skipped + head->length);
  char chunk[7];
  while (!parser.is_done() && !body.empty()) {
    parser.get().body().data = chunk;
    parser.get().body().size = sizeof(chunk);
    size_t used = parser.put(beast::net::buffer(body.data(), std::min<size_t>(body.size(), 5)), ec);
    if (ec == http::error::need_buffer) ec = {};
    if (ec) return;
    if (used == 0 && parser.get().body().size != 0) break;  // needs more than it has
    body.remove_prefix(used);
  }
  CheckForwarded(parser.get().base());
}

void CheckRemoveCookie(std::string_view header) {
  std::string rest = RemoveCookie(header, kSessionCookie);
  for (const auto& [name, value] : ParseCookieHeader(rest)) {
    if (name == kSessionCookie) std::abort();
  }
}

void CheckRemoveDomain(std::string_view set_cookie) {
  std::string rest = RemoveCookieDomain(set_cookie);
  std::string_view text = rest;
  bool first = true;
  while (!text.empty()) {
    size_t end = text.find(';');
    std::string_view part = text.substr(0, end);
    std::string_view name = part.substr(0, part.find('='));
    while (!name.empty() && (name.front() == ' ' || name.front() == '\t')) name.remove_prefix(1);
    while (!name.empty() && (name.back() == ' ' || name.back() == '\t')) name.remove_suffix(1);
    if (!first && vmctl::EqualsIgnoringAsciiCase(name, "domain")) std::abort();
    first = false;
    if (end == std::string_view::npos) break;
    text.remove_prefix(end + 1);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 3) {
    case 0:
      CheckRequest(input);
      break;
    case 1:
      CheckRemoveCookie(input);
      break;
    case 2:
      CheckRemoveDomain(input);
      break;
  }
  return 0;
}
