#ifndef VMCTL_NETWORK_RULESET_H_
#define VMCTL_NETWORK_RULESET_H_

#include <cstdint>
#include <string>
#include <vector>

#include "network/addr.h"

namespace vmctl::network {

// Pure translation of the desired firewall state into an nftables script; nft.h runs it. Golden
// tested in ruleset_test.cc.
//
// vmctl owns exactly two tables, both named `vmctl`, and nothing else: nftables tables belong to
// one address family, and the rules need two. `bridge vmctl` sees each VM's frames at its TAP port
// (anti-spoofing of MAC, IPv4 and ARP; VM-to-VM isolation; upload policing). `inet vmctl` sees
// routed traffic (NAT masquerade, what VMs may reach on the host, metadata addresses, inbound
// connections from outside).

struct VmPort {
  std::string tap;
  std::string mac;  // aa:bb:cc:dd:ee:ff
  Ipv4 address;
  uint64_t upload_kbit = 0;  // 0: unlimited
};

struct RulesetSpec {
  std::string bridge;  // e.g. vmctl0
  Cidr subnet;         // the bridge's address and prefix, e.g. 10.0.0.1/16
  // Ports VMs may open on the host itself (e.g. a DNS resolver the host provides). Every other
  // new connection from a VM to any host address is dropped.
  std::vector<uint16_t> host_tcp_ports;
  std::vector<uint16_t> host_udp_ports;
  // Destinations no VM may reach through the host (cloud metadata services, link-local).
  std::vector<std::string> blocked_destinations = {"169.254.0.0/16", "100.100.100.200"};
  std::vector<VmPort> vms;
  // Pairs of TAPs allowed to talk to each other; VM-to-VM traffic is dropped otherwise. Empty
  // until a shared private network joins VMs (a later milestone).
  std::vector<std::pair<std::string, std::string>> peers;
};

inline constexpr const char* kTableName = "vmctl";

// Replaces both tables atomically with the state described by spec (creating them if absent).
std::string RulesetScript(const RulesetSpec& spec);
// Deletes both tables; succeeds whether or not they exist.
std::string DeleteRulesetScript();

}  // namespace vmctl::network

#endif  // VMCTL_NETWORK_RULESET_H_
