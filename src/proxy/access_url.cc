#include "proxy/access_url.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdint>

#include "base/ascii.h"

namespace vmctl::proxy {
namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Calls `visit(pair, name, value)` for each '&'-separated pair until it returns true.
template <typename Visit>
void ForEachPair(std::string_view query, Visit visit) {
  while (!query.empty()) {
    size_t end = query.find('&');
    std::string_view pair = query.substr(0, end);
    query = end == std::string_view::npos ? std::string_view() : query.substr(end + 1);
    size_t equals = pair.find('=');
    std::string_view name = pair.substr(0, equals);
    std::string_view value =
        equals == std::string_view::npos ? std::string_view() : pair.substr(equals + 1);
    if (visit(pair, name, value)) return;
  }
}

bool IsHostName(std::string_view host) {
  if (host.empty() || host.size() > 253) return false;
  return std::all_of(host.begin(), host.end(),
                     [](unsigned char c) { return std::isalnum(c) || c == '-' || c == '.'; });
}

}  // namespace

Target SplitTarget(std::string_view target) {
  size_t question = target.find('?');
  if (question == std::string_view::npos) return {target, {}};
  return {target.substr(0, question), target.substr(question + 1)};
}

std::optional<std::string> PercentDecode(std::string_view text, bool plus_is_space) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '+' && plus_is_space) {
      out += ' ';
    } else if (c == '%') {
      if (i + 2 >= text.size()) return std::nullopt;
      int high = HexValue(text[i + 1]);
      int low = HexValue(text[i + 2]);
      if (high < 0 || low < 0) return std::nullopt;
      out += static_cast<char>(high * 16 + low);
      i += 2;
    } else {
      out += c;
    }
  }
  return out;
}

std::string PercentEncode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || c == '/') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

std::optional<std::string> QueryParam(std::string_view query, std::string_view name) {
  std::optional<std::string> found;
  bool seen = false;
  ForEachPair(query, [&](std::string_view, std::string_view key, std::string_view value) {
    if (key != name) return false;
    seen = true;
    found = PercentDecode(value, /*plus_is_space=*/true);
    return true;
  });
  return seen ? found : std::nullopt;
}

std::string WithoutQueryParam(std::string_view target, std::string_view name) {
  Target split = SplitTarget(target);
  std::string query;
  ForEachPair(split.query, [&](std::string_view pair, std::string_view key, std::string_view) {
    if (key != name) {
      if (!query.empty()) query += '&';
      query += pair;
    }
    return false;
  });
  std::string out(split.path);
  if (!query.empty()) out += "?" + query;
  return out;
}

bool IsSafeRedirectPath(std::string_view next) {
  if (next.empty() || next.size() > 2048 || next[0] != '/') return false;
  for (unsigned char c : next) {
    if (c <= 0x20 || c >= 0x7f || c == '\\') return false;
  }
  return SplitTarget(next).path.find("//") == std::string_view::npos;
}

std::string WebOrigin::For(std::string_view other_host) const {
  std::string origin = scheme + "://" + std::string(other_host.empty() ? host : other_host);
  if (!port.empty()) origin += ":" + port;
  return origin;
}

Result<WebOrigin> ParseWebOrigin(std::string_view url) {
  WebOrigin origin;
  std::string_view rest;
  if (url.starts_with("https://")) {
    origin.scheme = "https";
    rest = url.substr(8);
  } else if (url.starts_with("http://")) {
    origin.scheme = "http";
    rest = url.substr(7);
  } else {
    return InvalidArgument("web URL '" + std::string(url) + "' is not http(s)://HOST[:PORT]");
  }
  if (rest.ends_with('/')) rest.remove_suffix(1);
  size_t colon = rest.find(':');
  origin.host = std::string(rest.substr(0, colon));
  if (colon != std::string_view::npos) origin.port = std::string(rest.substr(colon + 1));
  uint16_t port = 0;
  auto [end, ec] =
      std::from_chars(origin.port.data(), origin.port.data() + origin.port.size(), port);
  bool port_ok = (colon == std::string_view::npos) ||
                 (ec == std::errc() && end == origin.port.data() + origin.port.size() &&
                  port != 0 && origin.port[0] != '0');
  if (!IsHostName(origin.host) || !port_ok) {
    return InvalidArgument("web URL '" + std::string(url) + "' is not http(s)://HOST[:PORT]");
  }
  LowercaseAsciiInPlace(origin.host);
  if ((origin.scheme == "https" && origin.port == "443") ||
      (origin.scheme == "http" && origin.port == "80")) {
    origin.port.clear();
  }
  return origin;
}

}  // namespace vmctl::proxy
