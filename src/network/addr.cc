#include "network/addr.h"

#include <fmt/format.h>

#include <charconv>

namespace vmctl::network {
namespace {

uint32_t Mask(int prefix) { return prefix == 0 ? 0 : ~uint32_t{0} << (32 - prefix); }

}  // namespace

Result<Ipv4> ParseIpv4(std::string_view text) {
  uint32_t value = 0;
  const char* p = text.data();
  const char* end = text.data() + text.size();
  for (int part = 0; part < 4; ++part) {
    if (part > 0) {
      if (p == end || *p != '.') break;
      ++p;
    }
    unsigned octet = 0;
    auto [next, ec] = std::from_chars(p, end, octet);
    if (ec != std::errc() || next == p || next - p > 3 || octet > 255) break;
    p = next;
    value = (value << 8) | octet;
    if (part == 3 && p == end) return Ipv4{value};
  }
  return InvalidArgument(fmt::format("'{}' is not an IPv4 address", text));
}

std::string FormatIpv4(Ipv4 address) {
  uint32_t v = address.value;
  return fmt::format("{}.{}.{}.{}", v >> 24, (v >> 16) & 255, (v >> 8) & 255, v & 255);
}

Ipv4 Cidr::Network() const { return Ipv4{address.value & Mask(prefix)}; }
Ipv4 Cidr::Broadcast() const { return Ipv4{address.value | ~Mask(prefix)}; }
bool Cidr::Contains(Ipv4 other) const {
  return (other.value & Mask(prefix)) == (address.value & Mask(prefix));
}
bool Cidr::Overlaps(const Cidr& other) const {
  int shorter = std::min(prefix, other.prefix);
  return (address.value & Mask(shorter)) == (other.address.value & Mask(shorter));
}
std::string Cidr::ToString() const { return fmt::format("{}/{}", FormatIpv4(address), prefix); }
std::string Cidr::NetworkString() const {
  return fmt::format("{}/{}", FormatIpv4(Network()), prefix);
}

Result<Cidr> ParseCidr(std::string_view text) {
  auto slash = text.find('/');
  auto bad = [&] {
    return InvalidArgument(fmt::format("'{}' is not an IPv4 prefix like 10.0.0.1/16", text));
  };
  if (slash == std::string_view::npos) return bad();
  auto address = ParseIpv4(text.substr(0, slash));
  if (!address.ok()) return bad();
  std::string_view digits = text.substr(slash + 1);
  int prefix = -1;
  auto [next, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), prefix);
  if (ec != std::errc() || next != digits.data() + digits.size() || digits.empty() || prefix < 0 ||
      prefix > 32) {
    return bad();
  }
  return Cidr{*address, prefix};
}

std::string TapNameForVm(std::string_view vm_id) { return fmt::format("vt{}", vm_id); }

std::string MacForVm(std::string_view vm_id) {
  std::string hex(vm_id.substr(0, 10));
  hex.resize(10, '0');
  return fmt::format("0a:{}:{}:{}:{}:{}", hex.substr(0, 2), hex.substr(2, 2), hex.substr(4, 2),
                     hex.substr(6, 2), hex.substr(8, 2));
}

}  // namespace vmctl::network
