#include "ssh_gateway/text.h"

#include <fmt/format.h>

namespace vmctl::ssh_gateway {
namespace {

// Decodes the UTF-8 sequence at bytes[i]: its length and code point, or length 0 if the bytes
// there are not a well-formed sequence.
struct CodePoint {
  size_t length = 0;
  char32_t value = 0;
};

CodePoint Decode(std::string_view bytes, size_t i) {
  auto byte = [&](size_t k) { return static_cast<unsigned char>(bytes[k]); };
  unsigned char lead = byte(i);
  if (lead < 0x80) return {1, lead};
  size_t length;
  char32_t value;
  char32_t min;
  if ((lead & 0xE0) == 0xC0) {
    length = 2, value = lead & 0x1F, min = 0x80;
  } else if ((lead & 0xF0) == 0xE0) {
    length = 3, value = lead & 0x0F, min = 0x800;
  } else if ((lead & 0xF8) == 0xF0) {
    length = 4, value = lead & 0x07, min = 0x10000;
  } else {
    return {};
  }
  if (bytes.size() - i < length) return {};
  for (size_t k = 1; k < length; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return {};
    value = (value << 6) | (byte(i + k) & 0x3F);
  }
  if (value < min || value > 0x10FFFF || (value >= 0xD800 && value <= 0xDFFF)) return {};
  return {length, value};
}

bool IsControl(char32_t c) { return c < 0x20 || (c >= 0x7F && c <= 0x9F); }

bool IsBidiControl(char32_t c) {
  return (c >= 0x202A && c <= 0x202E) || (c >= 0x2066 && c <= 0x2069);
}

}  // namespace

size_t Utf8ValidPrefix(std::string_view bytes) {
  size_t i = 0;
  while (i < bytes.size()) {
    size_t length = Decode(bytes, i).length;
    if (length == 0) break;
    i += length;
  }
  return i;
}

Result<void> ValidateText(std::string_view bytes, std::string_view what, bool allow_blanks) {
  for (size_t i = 0; i < bytes.size();) {
    CodePoint c = Decode(bytes, i);
    if (c.length == 0) {
      return InvalidArgument(fmt::format("{} is not valid UTF-8 (byte 0x{:02X} at offset {})", what,
                                         static_cast<unsigned char>(bytes[i]), i));
    }
    bool blank = c.value == '\t' || c.value == '\n' || c.value == '\r';
    if (IsControl(c.value) && !(allow_blanks && blank)) {
      return InvalidArgument(fmt::format("{} holds a control character (U+{:04X} at offset {})",
                                         what, static_cast<uint32_t>(c.value), i));
    }
    i += c.length;
  }
  return Ok();
}

std::string EscapeForTerminal(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  for (size_t i = 0; i < bytes.size();) {
    CodePoint c = Decode(bytes, i);
    if (c.length == 0) {
      out += fmt::format("\\x{:02X}", static_cast<unsigned char>(bytes[i]));
      ++i;
      continue;
    }
    if (c.value < 0x80 && IsControl(c.value) && c.value != '\n' && c.value != '\t') {
      out += fmt::format("\\x{:02X}", static_cast<uint32_t>(c.value));
    } else if (c.value >= 0x80 && (IsControl(c.value) || IsBidiControl(c.value))) {
      out += fmt::format("\\u{:04X}", static_cast<uint32_t>(c.value));
    } else {
      out.append(bytes.substr(i, c.length));
    }
    i += c.length;
  }
  return out;
}

}  // namespace vmctl::ssh_gateway
