#ifndef VMCTL_BASE_ASCII_H_
#define VMCTL_BASE_ASCII_H_

#include <string>
#include <string_view>

namespace vmctl {

// ASCII-only case mapping, for protocol tokens and DNS names: unlike std::tolower it does not
// depend on the locale, and bytes of UTF-8 sequences pass through unchanged.

constexpr char AsciiLower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

inline void LowercaseAsciiInPlace(std::string& text) {
  for (char& c : text) c = AsciiLower(c);
}

inline std::string LowercaseAscii(std::string_view text) {
  std::string out(text);
  LowercaseAsciiInPlace(out);
  return out;
}

// As header names, tokens and cookie attributes compare. Use it over beast::iequals for views that
// may end where their buffer ends: Boost 1.81's reads one byte past the end of its arguments when
// they differ in case (proxy_parse_fuzz found it).
constexpr bool EqualsIgnoringAsciiCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (AsciiLower(a[i]) != AsciiLower(b[i])) return false;
  }
  return true;
}

}  // namespace vmctl

#endif  // VMCTL_BASE_ASCII_H_
