#include "ssh_gateway/routing.h"

#include <arpa/inet.h>
#include <fmt/format.h>

#include "model/vm.h"
#include "ssh_gateway/text.h"

namespace vmctl::ssh_gateway {
namespace {

// POSIX portable user names (plus the '.' and '-' most systems take), as guest accounts go.
bool ValidGuestUser(std::string_view name) {
  if (name.empty() || name.size() > 32 || name.front() == '-') return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.';
    if (!ok) return false;
  }
  return true;
}

}  // namespace

Route RouteForUsername(std::string_view username) {
  auto plus = username.find('+');
  std::string_view vm = username.substr(0, plus);
  std::string_view user = plus == std::string_view::npos ? "" : username.substr(plus + 1);
  if (!ValidateVmName(vm).ok()) return {};
  if (plus != std::string_view::npos && !ValidGuestUser(user)) return {};
  return {std::string(vm), std::string(user)};
}

Result<void> ValidateUsername(std::string_view username) {
  if (username.size() > 256)
    return InvalidArgument("the SSH user name is too long (256 bytes at most)");
  return ValidateText(username, "the SSH user name", false);
}

Result<std::vector<std::string>> ParseAddressRange(std::string_view text) {
  auto dash = text.find('-');
  std::string first(text.substr(0, dash));
  std::string last(dash == std::string_view::npos ? first : text.substr(dash + 1));
  in_addr a{}, b{};
  if (::inet_pton(AF_INET, first.c_str(), &a) != 1 || ::inet_pton(AF_INET, last.c_str(), &b) != 1) {
    return InvalidArgument(
        fmt::format("bad address range '{}' (expected FIRST-LAST, IPv4 addresses)", text));
  }
  uint32_t from = ntohl(a.s_addr), to = ntohl(b.s_addr);
  if (to < from || to - from >= 4096) {
    return InvalidArgument(
        fmt::format("bad address range '{}' (the first address comes first; 4096 at most)", text));
  }
  std::vector<std::string> addresses;
  for (uint64_t i = from; i <= to; ++i) {
    in_addr addr{htonl(static_cast<uint32_t>(i))};
    char buffer[INET_ADDRSTRLEN];
    addresses.emplace_back(::inet_ntop(AF_INET, &addr, buffer, sizeof(buffer)));
  }
  return addresses;
}

}  // namespace vmctl::ssh_gateway
