#include "proxy/cookies.h"

#include <cctype>
#include <string>

namespace vmctl::proxy {
namespace {

std::string_view Trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

}  // namespace

std::vector<std::pair<std::string_view, std::string_view>> ParseCookieHeader(
    std::string_view header) {
  std::vector<std::pair<std::string_view, std::string_view>> cookies;
  while (!header.empty()) {
    size_t end = header.find(';');
    std::string_view piece = header.substr(0, end);
    header = end == std::string_view::npos ? std::string_view() : header.substr(end + 1);
    size_t equals = piece.find('=');
    if (equals == std::string_view::npos) continue;
    std::string_view name = Trim(piece.substr(0, equals));
    std::string_view value = Trim(piece.substr(equals + 1));
    if (name.empty()) continue;
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"') {
      value = value.substr(1, value.size() - 2);
    }
    cookies.emplace_back(name, value);
  }
  return cookies;
}

std::optional<std::string_view> FindCookie(std::string_view header, std::string_view name) {
  for (const auto& [cookie_name, value] : ParseCookieHeader(header)) {
    if (cookie_name == name) return value;
  }
  return std::nullopt;
}

std::optional<std::string_view> BearerToken(std::string_view authorization) {
  authorization = Trim(authorization);
  static constexpr std::string_view kScheme = "bearer";
  if (authorization.size() <= kScheme.size()) return std::nullopt;
  for (size_t i = 0; i < kScheme.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(authorization[i])) != kScheme[i]) {
      return std::nullopt;
    }
  }
  if (authorization[kScheme.size()] != ' ') return std::nullopt;
  std::string_view token = Trim(authorization.substr(kScheme.size()));
  if (token.empty()) return std::nullopt;
  return token;
}

bool IsCookieValue(std::string_view value) {
  if (value.size() > 4000) return false;
  for (unsigned char c : value) {
    // cookie-octet: %x21 / %x23-2B / %x2D-3A / %x3C-5B / %x5D-7E
    bool ok = c == 0x21 || (c >= 0x23 && c <= 0x2b) || (c >= 0x2d && c <= 0x3a) ||
              (c >= 0x3c && c <= 0x5b) || (c >= 0x5d && c <= 0x7e);
    if (!ok) return false;
  }
  return true;
}

std::string BuildSetCookie(std::string_view name, std::string_view value,
                           std::chrono::seconds max_age) {
  std::string cookie(name);
  cookie += '=';
  cookie += value;
  cookie += "; Max-Age=" + std::to_string(max_age.count() > 0 ? max_age.count() : 0);
  cookie += "; Path=/; Secure; HttpOnly; SameSite=Lax";
  return cookie;
}

}  // namespace vmctl::proxy
