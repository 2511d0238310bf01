#include "model/email.h"

#include <fmt/format.h>

#include <optional>

#include "base/ascii.h"

namespace vmctl {
namespace {

constexpr size_t kMaxEmail = 254;
constexpr size_t kMaxLocal = 64;
constexpr size_t kMaxLabel = 63;

// Decodes the UTF-8 sequence at text[i]: its code point and length, or nullopt when it is not
// valid UTF-8 (overlong forms, surrogates and values above U+10FFFF included).
std::optional<std::pair<char32_t, size_t>> DecodeUtf8(std::string_view text, size_t i) {
  auto byte = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
  unsigned char b = byte(i);
  if (b < 0x80) return std::pair{char32_t{b}, size_t{1}};
  size_t len = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc2 ? 2 : 0;
  if (len == 0 || b > 0xf4 || i + len > text.size()) return std::nullopt;
  char32_t cp = b & (0x7f >> len);
  for (size_t k = 1; k < len; ++k) {
    if ((byte(i + k) & 0xc0) != 0x80) return std::nullopt;
    cp = (cp << 6) | (byte(i + k) & 0x3f);
  }
  static constexpr char32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMin[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return std::nullopt;
  return std::pair{cp, len};
}

// Characters that change how text around them is shown (or hide themselves): controls, bidi
// embeddings, overrides and isolates, zero-width and line/paragraph separators.
bool Unsafe(char32_t cp) {
  return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || cp == 0x061c ||
         (cp >= 0x200b && cp <= 0x200f) || (cp >= 0x2028 && cp <= 0x202e) ||
         (cp >= 0x2060 && cp <= 0x206f) || cp == 0xfeff;
}

Error Bad(std::string_view email, std::string_view why) {
  return InvalidArgument(
      fmt::format("'{}' is not an email address ({})", EscapeForDisplay(email), why));
}

bool IsAsciiAlnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

// A domain's labels; "" when fine, else why not. Lowercases ASCII letters in place.
std::string CheckDomain(std::string& domain) {
  if (domain.empty()) return "no domain after '@'";
  if (domain.size() > 253) return "the domain is longer than 253 bytes";
  size_t labels = 0;
  size_t start = 0;
  while (start <= domain.size()) {
    size_t end = domain.find('.', start);
    if (end == std::string::npos) end = domain.size();
    std::string_view label(domain.data() + start, end - start);
    if (label.empty()) return "an empty label in the domain";
    if (label.size() > kMaxLabel) return "a domain label is longer than 63 bytes";
    if (label.front() == '-' || label.back() == '-') {
      return "a domain label starts or ends with '-'";
    }
    for (char c : label) {
      if (!IsAsciiAlnum(c) && c != '-' && static_cast<unsigned char>(c) < 0x80) {
        return fmt::format("'{}' in the domain", EscapeForDisplay(std::string_view(&c, 1)));
      }
    }
    ++labels;
    start = end + 1;
  }
  if (labels < 2) return "the domain needs a dot, as in example.com";
  LowercaseAsciiInPlace(domain);
  return "";
}

// Every byte is valid UTF-8 and no character is unsafe; "" or why not.
std::string CheckText(std::string_view text) {
  for (size_t i = 0; i < text.size();) {
    auto decoded = DecodeUtf8(text, i);
    if (!decoded) return "invalid UTF-8";
    if (Unsafe(decoded->first)) return "a control or formatting character";
    if (decoded->first == ' ' || decoded->first == 0xa0) return "a space";
    i += decoded->second;
  }
  return "";
}

}  // namespace

std::string EscapeForDisplay(std::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size();) {
    auto decoded = DecodeUtf8(text, i);
    if (decoded && !Unsafe(decoded->first)) {
      out.append(text.substr(i, decoded->second));
      i += decoded->second;
    } else {
      size_t n = decoded ? decoded->second : 1;
      for (size_t k = 0; k < n; ++k) {
        out += fmt::format("\\x{:02x}", static_cast<unsigned char>(text[i + k]));
      }
      i += n;
    }
  }
  return out;
}

Result<std::string> NormalizeEmail(std::string_view email) {
  if (email.empty()) return InvalidArgument("the email address is empty");
  if (email.size() > kMaxEmail) return Bad(email.substr(0, 64), "longer than 254 bytes");
  if (std::string why = CheckText(email); !why.empty()) return Bad(email, why);
  size_t at = email.find('@');
  if (at == std::string_view::npos) return Bad(email, "no '@'");
  if (email.find('@', at + 1) != std::string_view::npos) return Bad(email, "more than one '@'");
  std::string_view local = email.substr(0, at);
  if (local.empty()) return Bad(email, "nothing before '@'");
  if (local.size() > kMaxLocal) return Bad(email, "the part before '@' is longer than 64 bytes");
  if (local.find_first_of("\"(),:;<>[\\]") != std::string_view::npos) {
    return Bad(email, "one of \"(),:;<>[\\] before '@'");
  }
  if (local.front() == '.' || local.back() == '.' || local.find("..") != std::string_view::npos) {
    return Bad(email, "a misplaced '.' before '@'");
  }
  std::string domain(email.substr(at + 1));
  if (std::string why = CheckDomain(domain); !why.empty()) return Bad(email, why);
  return std::string(local) + "@" + domain;
}

Result<EmailAllowList> EmailAllowList::Parse(std::string_view list) {
  EmailAllowList out;
  size_t start = 0;
  while (start <= list.size()) {
    size_t end = list.find(',', start);
    if (end == std::string_view::npos) end = list.size();
    std::string_view entry = list.substr(start, end - start);
    while (!entry.empty() && (entry.front() == ' ' || entry.front() == '\t'))
      entry.remove_prefix(1);
    while (!entry.empty() && (entry.back() == ' ' || entry.back() == '\t')) entry.remove_suffix(1);
    start = end + 1;
    if (entry.empty()) {
      return InvalidArgument("an empty entry in the email allow-list (a stray ',')");
    }
    if (entry.front() == '@') {
      // Checked as the domain of a placeholder address, so both follow one rule.
      auto checked = NormalizeEmail("x" + std::string(entry));
      if (!checked.ok()) {
        return InvalidArgument(
            fmt::format("'{}' in the email allow-list is not a domain", EscapeForDisplay(entry)));
      }
      out.domains_.push_back(checked->substr(2));
    } else {
      auto checked = NormalizeEmail(entry);
      if (!checked.ok()) return checked.error().WithContext("email allow-list");
      out.addresses_.push_back(*checked);
    }
  }
  return out;
}

bool EmailAllowList::Allows(std::string_view email) const {
  for (const auto& address : addresses_) {
    if (address == email) return true;
  }
  size_t at = email.rfind('@');
  if (at == std::string_view::npos) return false;
  std::string_view domain = email.substr(at + 1);
  for (const auto& d : domains_) {
    if (d == domain) return true;
  }
  return false;
}

}  // namespace vmctl
