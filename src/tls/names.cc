#include "tls/names.h"

namespace vmctl::tls {
namespace {

bool IsLdh(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'; }

Result<void> ValidateLabel(std::string_view label, std::string_view name) {
  if (label.empty() || label.size() > 63) {
    return InvalidArgument("'" + std::string(name) + "': each label must be 1-63 characters");
  }
  for (char c : label) {
    if (!IsLdh(c)) {
      return InvalidArgument("'" + std::string(name) +
                             "': only lowercase letters, digits, '-' and a leading '*.' allowed");
    }
  }
  if (label.front() == '-' || label.back() == '-') {
    return InvalidArgument("'" + std::string(name) + "': a label cannot start or end with '-'");
  }
  return Ok();
}

}  // namespace

Result<void> ValidateCertificateName(std::string_view name) {
  if (name.size() > 253) return InvalidArgument("certificate name longer than 253 characters");
  std::string_view rest = name;
  if (rest.starts_with("*.")) rest.remove_prefix(2);
  if (rest.find('.') == std::string_view::npos) {
    return InvalidArgument("'" + std::string(name) + "': a certificate name needs two labels");
  }
  while (true) {
    size_t dot = rest.find('.');
    VMCTL_TRY(ValidateLabel(rest.substr(0, dot), name));
    if (dot == std::string_view::npos) return Ok();
    rest.remove_prefix(dot + 1);
  }
}

std::string WildcardFor(std::string_view server_name) {
  size_t dot = server_name.find('.');
  if (dot == std::string_view::npos || dot + 1 == server_name.size()) return "";
  return "*" + std::string(server_name.substr(dot));
}

std::string FileStem(std::string_view first_name) {
  std::string stem(first_name);
  if (stem.starts_with("*")) stem[0] = '_';
  return stem;
}

}  // namespace vmctl::tls
