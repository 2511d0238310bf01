#ifndef VMCTL_NETWORK_ADDR_H_
#define VMCTL_NETWORK_ADDR_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "base/result.h"

namespace vmctl::network {

// An IPv4 address in host byte order.
struct Ipv4 {
  uint32_t value = 0;
  friend auto operator<=>(const Ipv4&, const Ipv4&) = default;
};

// kInvalidArgument unless text is a dotted quad.
Result<Ipv4> ParseIpv4(std::string_view text);
std::string FormatIpv4(Ipv4 address);

// An address with a prefix length, e.g. 10.0.0.1/16 (a host address within its subnet).
struct Cidr {
  Ipv4 address;
  int prefix = 32;

  Ipv4 Network() const;    // 10.0.0.0
  Ipv4 Broadcast() const;  // 10.0.255.255
  bool Contains(Ipv4 other) const;
  bool Overlaps(const Cidr& other) const;
  std::string ToString() const;       // "10.0.0.1/16"
  std::string NetworkString() const;  // "10.0.0.0/16"
  friend bool operator==(const Cidr&, const Cidr&) = default;
};

// kInvalidArgument unless text is "a.b.c.d/n" with 0 <= n <= 32.
Result<Cidr> ParseCidr(std::string_view text);

// Host-side names derive from the immutable 12-hex-digit VM id, never from the user's VM name.
// "vt" + id: 14 characters, within IFNAMSIZ (15).
std::string TapNameForVm(std::string_view vm_id);
// Locally administered, unicast: "0a:" followed by the first 10 hex digits of the id.
std::string MacForVm(std::string_view vm_id);

}  // namespace vmctl::network

#endif  // VMCTL_NETWORK_ADDR_H_
