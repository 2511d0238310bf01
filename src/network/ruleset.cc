#include "network/ruleset.h"

#include <fmt/format.h>

namespace vmctl::network {
namespace {

// nftables rejects an empty `elements = { }`, so empty sets are declared without the line.
std::string Elements(const std::vector<std::string>& items) {
  if (items.empty()) return "";
  std::string out = "\t\telements = { ";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += ",\n\t\t\t     ";
    out += items[i];
  }
  return out + " }\n";
}

std::string Quoted(const std::string& s) { return fmt::format("\"{}\"", s); }

std::string PortList(const std::vector<uint16_t>& ports) {
  std::string out;
  for (auto port : ports) out += (out.empty() ? "" : ", ") + std::to_string(port);
  return "{ " + out + " }";
}

}  // namespace

std::string DeleteRulesetScript() {
  // Declaring a table is a no-op when it exists, so the deletes never fail.
  return fmt::format(
      "table bridge {0}\n"
      "delete table bridge {0}\n"
      "table inet {0}\n"
      "delete table inet {0}\n",
      kTableName);
}

std::string RulesetScript(const RulesetSpec& spec) {
  std::vector<std::string> ports, macs, sources, limit_map, peers;
  std::string limits;
  for (const auto& vm : spec.vms) {
    ports.push_back(Quoted(vm.tap));
    macs.push_back(fmt::format("{} . {}", Quoted(vm.tap), vm.mac));
    sources.push_back(fmt::format("{} . {} . {}", Quoted(vm.tap), vm.mac, FormatIpv4(vm.address)));
    if (vm.upload_kbit > 0) {
      // Policing rather than shaping: traffic from a TAP enters the host, and only egress queues
      // can shape. The burst of 100 ms at the rate (at least 64 KiB) keeps TCP near the rate.
      uint64_t bytes = vm.upload_kbit * 125;
      limits +=
          fmt::format("\tlimit up_{} {{\n\t\trate over {} bytes/second burst {} bytes\n\t}}\n\n",
                      vm.tap, bytes, std::max<uint64_t>(bytes / 10, 65536));
      limit_map.push_back(fmt::format("{} : \"up_{}\"", Quoted(vm.tap), vm.tap));
    }
  }
  for (const auto& [a, b] : spec.peers) {
    peers.push_back(fmt::format("{} . {}", Quoted(a), Quoted(b)));
    peers.push_back(fmt::format("{} . {}", Quoted(b), Quoted(a)));
  }
  std::string blocked;
  for (const auto& d : spec.blocked_destinations) blocked += (blocked.empty() ? "" : ", ") + d;
  std::string host_open;
  if (!spec.host_tcp_ports.empty()) {
    host_open += fmt::format("\t\ttcp dport {} accept\n", PortList(spec.host_tcp_ports));
  }
  if (!spec.host_udp_ports.empty()) {
    host_open += fmt::format("\t\tudp dport {} accept\n", PortList(spec.host_udp_ports));
  }
  const std::string bridge = Quoted(spec.bridge);
  const std::string subnet = spec.subnet.NetworkString();

  std::string out = DeleteRulesetScript();
  out += fmt::format("table bridge {} {{\n", kTableName);
  out += limits;
  out += "\tset vm_ports {\n\t\ttype ifname\n" + Elements(ports) + "\t}\n\n";
  out += "\tset port_mac {\n\t\ttype ifname . ether_addr\n" + Elements(macs) + "\t}\n\n";
  out += "\tset port_source {\n\t\ttype ifname . ether_addr . ipv4_addr\n" + Elements(sources) +
         "\t}\n\n";
  out += "\tset peers {\n\t\ttype ifname . ifname\n" + Elements(peers) + "\t}\n\n";
  out += "\tmap upload_limit {\n\t\ttype ifname : limit\n" + Elements(limit_map) + "\t}\n\n";
  out += fmt::format(
      "\tchain prerouting {{\n"
      "\t\ttype filter hook prerouting priority -200; policy accept;\n"
      "\t\tiifname != @vm_ports accept\n"
      "\t\tiifname . ether saddr != @port_mac counter drop comment \"MAC spoofing\"\n"
      "\t\tether type arp iifname . arp saddr ether . arp saddr ip != @port_source counter drop "
      "comment \"ARP spoofing\"\n"
      "\t\tether type ip iifname . ether saddr . ip saddr != @port_source counter drop "
      "comment \"IP spoofing\"\n"
      "\t\tether type != {{ ip, arp }} counter drop comment \"IPv4 and ARP only\"\n"
      "\t\tlimit name iifname map @upload_limit counter drop comment \"upload limit\"\n"
      "\t}}\n\n"
      "\tchain forward {{\n"
      "\t\ttype filter hook forward priority 0; policy accept;\n"
      "\t\tiifname @vm_ports oifname @vm_ports iifname . oifname != @peers counter drop "
      "comment \"VM to VM\"\n"
      "\t}}\n"
      "}}\n",
      kTableName);

  out += fmt::format(
      "table inet {0} {{\n"
      "\tchain input {{\n"
      "\t\ttype filter hook input priority -10; policy accept;\n"
      "\t\tiifname {1} jump vm_to_host\n"
      "\t}}\n\n"
      "\tchain vm_to_host {{\n"
      "\t\tct state established,related accept\n"
      "\t\ticmp type echo-request accept\n"
      "{2}"
      "\t\tcounter drop comment \"VM to host\"\n"
      "\t}}\n\n"
      "\tchain forward {{\n"
      "\t\ttype filter hook forward priority -10; policy accept;\n"
      "\t\tiifname {1} ip daddr {{ {3} }} counter drop comment \"metadata and link-local\"\n"
      "\t\tiifname {1} ip saddr != {4} counter drop comment \"IP spoofing\"\n"
      "\t\tiifname {1} meta nfproto ipv6 counter drop comment \"IPv4 only\"\n"
      "\t\toifname {1} iifname != {1} ct state established,related accept\n"
      "\t\toifname {1} iifname != {1} counter drop comment \"inbound to VMs\"\n"
      "\t}}\n\n"
      "\tchain postrouting {{\n"
      "\t\ttype nat hook postrouting priority srcnat; policy accept;\n"
      "\t\tip saddr {4} ip daddr != {4} oifname != {1} masquerade\n"
      "\t}}\n"
      "}}\n",
      kTableName, bridge, host_open, blocked, subnet);
  return out;
}

}  // namespace vmctl::network
