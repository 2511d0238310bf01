#include "proxy/forward_headers.h"

#include <vector>

#include "base/ascii.h"

namespace vmctl::proxy {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Splits "a; b ;c" into trimmed, non-empty parts.
std::vector<std::string_view> Split(std::string_view text, char separator) {
  std::vector<std::string_view> parts;
  while (!text.empty()) {
    size_t end = text.find(separator);
    std::string_view part = Trim(text.substr(0, end));
    if (!part.empty()) parts.push_back(part);
    if (end == std::string_view::npos) break;
    text.remove_prefix(end + 1);
  }
  return parts;
}

std::string Join(const std::vector<std::string_view>& parts, std::string_view separator) {
  std::string out;
  for (std::string_view part : parts) {
    if (!out.empty()) out += separator;
    out += part;
  }
  return out;
}

bool StartsWithNoCase(std::string_view text, std::string_view prefix) {
  return text.size() >= prefix.size() &&
         ::vmctl::EqualsIgnoringAsciiCase(text.substr(0, prefix.size()), prefix);
}

bool IsUpgradeToWebSocket(const http::fields& fields) {
  for (std::string_view token : Split(fields[http::field::upgrade], ',')) {
    if (::vmctl::EqualsIgnoringAsciiCase(token, "websocket")) return true;
  }
  return false;
}

// RFC 9110 section 7.6.1: Connection and the fields it names, plus the classic hop-by-hop set.
// A WebSocket upgrade keeps "Connection: upgrade" and "Upgrade: websocket", which are the point.
void RemoveHopByHop(http::fields& fields, bool keep_upgrade) {
  std::vector<std::string> named;
  for (const auto& field : fields) {
    if (field.name() != http::field::connection) continue;
    for (std::string_view token : Split(field.value(), ',')) named.emplace_back(token);
  }
  for (const std::string& name : named) {
    if (!(keep_upgrade && ::vmctl::EqualsIgnoringAsciiCase(name, "upgrade"))) fields.erase(name);
  }
  for (http::field f :
       {http::field::connection, http::field::keep_alive, http::field::proxy_connection,
        http::field::proxy_authenticate, http::field::proxy_authorization, http::field::te,
        http::field::trailer, http::field::upgrade}) {
    fields.erase(f);
  }
  if (keep_upgrade) {
    fields.set(http::field::connection, "upgrade");
    fields.set(http::field::upgrade, "websocket");
  }
}

std::vector<std::string> Values(const http::fields& fields, http::field name) {
  std::vector<std::string> values;
  for (const auto& field : fields) {
    if (field.name() == name) values.emplace_back(field.value());
  }
  return values;
}

void RemoveByPrefix(http::fields& fields, std::string_view prefix) {
  for (auto it = fields.begin(); it != fields.end();) {
    if (StartsWithNoCase(it->name_string(), prefix)) {
      it = fields.erase(it);
    } else {
      ++it;
    }
  }
}

}  // namespace

std::string RemoveCookie(std::string_view cookie_header, std::string_view name) {
  std::vector<std::string_view> kept;
  for (std::string_view pair : Split(cookie_header, ';')) {
    // Cookie names are case-sensitive (RFC 6265 section 5.4).
    if (Trim(pair.substr(0, pair.find('='))) != name) kept.push_back(pair);
  }
  return Join(kept, "; ");
}

std::string RemoveCookieDomain(std::string_view set_cookie) {
  std::vector<std::string_view> kept;
  bool first = true;
  for (std::string_view part : Split(set_cookie, ';')) {
    std::string_view attribute = Trim(part.substr(0, part.find('=')));
    if (first || !::vmctl::EqualsIgnoringAsciiCase(attribute, "domain")) kept.push_back(part);
    first = false;
  }
  return Join(kept, "; ");
}

void PrepareUpstreamRequest(http::request_header<>& head, const Decision& decision,
                            std::string_view client, std::string_view proto) {
  bool upgrade = IsUpgradeToWebSocket(head);
  RemoveHopByHop(head, upgrade);
  RemoveByPrefix(head, "x-vmctl-");
  RemoveByPrefix(head, "x-forwarded-");
  head.erase(http::field::forwarded);
  if (decision.consumed_authorization) head.erase(http::field::authorization);

  std::vector<std::string> cookies;
  for (const std::string& value : Values(head, http::field::cookie)) {
    std::string rest = RemoveCookie(value, kSessionCookie);
    if (!rest.empty()) cookies.push_back(std::move(rest));
  }
  head.erase(http::field::cookie);
  // Several Cookie fields are joined with "; " (RFC 9113 section 8.2.3 does the same for h2).
  std::string joined;
  for (const std::string& c : cookies) joined += (joined.empty() ? "" : "; ") + c;
  if (!joined.empty()) head.set(http::field::cookie, joined);

  std::string host(head[http::field::host]);
  head.set("X-Forwarded-For", client);
  head.set("X-Forwarded-Proto", proto);
  if (!host.empty()) head.set("X-Forwarded-Host", host);
  if (decision.identity) {
    if (decision.kind == Decision::Kind::kForwardToApi) {
      head.set("X-Vmctl-User", decision.identity->user_id);
    } else {
      head.set("X-Vmctl-User-Id", decision.identity->user_id);
      head.set("X-Vmctl-Email", decision.identity->email);
    }
  }
  if (decision.kind == Decision::Kind::kForwardToApi) head.target(decision.api_target);
}

void PrepareDownstreamResponse(http::response_header<>& head) {
  bool upgrade = head.result() == http::status::switching_protocols && IsUpgradeToWebSocket(head);
  RemoveHopByHop(head, upgrade);
  std::vector<std::string> cookies;
  for (const std::string& value : Values(head, http::field::set_cookie)) {
    cookies.push_back(RemoveCookieDomain(value));
  }
  head.erase(http::field::set_cookie);
  for (const std::string& c : cookies) head.insert(http::field::set_cookie, c);
}

}  // namespace vmctl::proxy
