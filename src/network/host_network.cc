#include "network/host_network.h"

#include <fmt/format.h>

#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>

#include "base/io.h"
#include "network/netlink.h"
#include "network/nft.h"
#include "network/ruleset.h"

namespace vmctl::network {
namespace {

constexpr size_t kMaxIfName = 15;

bool IsOurTap(const LinkInfo& link) {
  if (link.kind != "tun" || link.name.size() != 14 || !link.name.starts_with("vt")) return false;
  return link.name.find_first_not_of("0123456789abcdef", 2) == std::string::npos;
}

std::vector<std::string> HostResolvers() {
  std::vector<std::string> out;
  auto text = ReadFile("/etc/resolv.conf");
  if (!text.ok()) return out;
  std::istringstream lines(*text);
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream words(line);
    std::string key, value;
    if (!(words >> key >> value) || key != "nameserver") continue;
    auto ip = ParseIpv4(value);
    if (ip.ok() && (ip->value >> 24) != 127) out.push_back(value);
  }
  return out;
}

class HostNetwork final : public Network {
 public:
  HostNetwork(NetworkInfo info, RulesetSpec base)
      : info_(std::move(info)), base_(std::move(base)) {}

  const NetworkInfo& info() const override { return info_; }

  Result<void> Attach(const VmNic& nic) override {
    if (nic.tap.empty() || nic.tap.size() > kMaxIfName) {
      return InvalidArgument(fmt::format("bad TAP name '{}'", nic.tap));
    }
    std::lock_guard lock(mu_);
    VMCTL_TRY(EnsureTap(nic.tap, info_.bridge));
    VMCTL_TRY(SetEgressRate(nic.tap, nic.bandwidth_kbit));
    auto previous = attached_.find(nic.vm_id);
    std::optional<VmNic> before;
    if (previous != attached_.end()) before = previous->second;
    attached_[nic.vm_id] = nic;
    auto applied = ApplyLocked();
    if (!applied.ok()) {
      if (before) {
        attached_[nic.vm_id] = *before;
      } else {
        attached_.erase(nic.vm_id);
      }
      return applied.error().WithContext("installing the firewall rules of " + nic.tap);
    }
    return Ok();
  }

  Result<void> Detach(const VmNic& nic) override {
    std::lock_guard lock(mu_);
    if (attached_.erase(nic.vm_id) > 0) VMCTL_TRY(ApplyLocked());
    return DeleteLink(nic.tap);
  }

  Result<void> ApplyLocked() {
    RulesetSpec spec = base_;
    for (const auto& [id, nic] : attached_) {
      spec.vms.push_back(VmPort{nic.tap, nic.mac, nic.address, nic.bandwidth_kbit});
    }
    return RunNftScript(RulesetScript(spec));
  }

 private:
  const NetworkInfo info_;
  const RulesetSpec base_;
  std::mutex mu_;
  std::map<std::string, VmNic> attached_;  // by VM id
};

Result<Cidr> CheckedGateway(const HostNetworkOptions& options) {
  if (options.bridge.empty() || options.bridge.size() > kMaxIfName) {
    return InvalidArgument(
        fmt::format("bridge name '{}' must have 1 to {} characters", options.bridge, kMaxIfName));
  }
  VMCTL_ASSIGN_OR_RETURN(Cidr gateway, ParseCidr(options.gateway));
  if (gateway.prefix < 8 || gateway.prefix > 29) {
    return InvalidArgument(
        fmt::format("subnet {} must have a prefix between /8 and /29 (room for at least five VMs)",
                    options.gateway));
  }
  if (gateway.address == gateway.Network() || gateway.address == gateway.Broadcast()) {
    return InvalidArgument(
        fmt::format("{} is not a host address: give the bridge's own address, like 10.0.0.1/16",
                    options.gateway));
  }
  return gateway;
}

}  // namespace

Result<std::unique_ptr<Network>> SetUpHostNetwork(const HostNetworkOptions& options) {
  VMCTL_ASSIGN_OR_RETURN(Cidr gateway, CheckedGateway(options));
  NetworkInfo info;
  info.bridge = options.bridge;
  info.gateway = gateway;
  info.pool_first = Ipv4{gateway.Network().value + 1};
  info.pool_last = Ipv4{gateway.Broadcast().value - 1};
  info.dns = options.dns ? *options.dns : HostResolvers();
  for (const auto& server : info.dns) VMCTL_TRY(ParseIpv4(server).WithContext("DNS server"));

  VMCTL_ASSIGN_OR_RETURN(auto clashes, OverlappingRoutes(gateway, options.bridge));
  if (!clashes.empty()) {
    std::string list;
    for (const auto& c : clashes) list += "\n  " + c;
    return FailedPrecondition(fmt::format(
        "the VM subnet {} collides with routes this host already has:{}\nchoose a free one with "
        "--subnet (e.g. --subnet 10.99.0.1/16)",
        gateway.NetworkString(), list));
  }
  VMCTL_TRY(EnsureBridge(options.bridge, gateway).WithContext("creating the bridge"));
  VMCTL_ASSIGN_OR_RETURN(char forwarding, EnableIpv4Forwarding());
  if (forwarding != '1' && !options.state_file.empty() &&
      !std::filesystem::exists(options.state_file)) {
    nlohmann::json state = {{"ip_forward_before", std::string(1, forwarding)}};
    VMCTL_TRY(WriteFileAtomic(options.state_file, state.dump() + "\n"));
  }
  VMCTL_ASSIGN_OR_RETURN(info.uplink, DefaultRouteDevice());

  RulesetSpec base;
  base.bridge = options.bridge;
  base.subnet = gateway;
  auto network = std::make_unique<HostNetwork>(std::move(info), std::move(base));
  VMCTL_TRY(network->ApplyLocked().WithContext("installing the nftables tables"));
  return std::unique_ptr<Network>(std::move(network));
}

Result<std::vector<std::string>> CleanUpHostNetwork(const HostNetworkOptions& options) {
  std::vector<std::string> removed;
  auto had = [](const char* family) { return ListNftTable(family, kTableName).ok(); };
  bool tables = had("inet") || had("bridge");
  VMCTL_TRY(RunNftScript(DeleteRulesetScript()));
  if (tables) removed.push_back(fmt::format("nftables tables inet {0} and bridge {0}", kTableName));
  VMCTL_ASSIGN_OR_RETURN(auto links, ListLinks());
  for (const auto& link : links) {
    if (!IsOurTap(link) || (!link.master.empty() && link.master != options.bridge)) continue;
    VMCTL_TRY(DeleteLink(link.name));
    removed.push_back("TAP " + link.name);
  }
  auto bridge = GetLink(options.bridge);
  if (bridge.ok()) {
    if (bridge->kind != "bridge") {
      return FailedPrecondition(fmt::format("{} is a {} device, not vmctl's bridge; left alone",
                                            options.bridge,
                                            bridge->kind.empty() ? "plain" : bridge->kind));
    }
    VMCTL_TRY(DeleteLink(options.bridge));
    removed.push_back("bridge " + options.bridge);
  } else if (bridge.error().code() != ErrorCode::kNotFound) {
    return bridge.error();
  }
  if (!options.state_file.empty() && std::filesystem::exists(options.state_file)) {
    VMCTL_ASSIGN_OR_RETURN(std::string text, ReadFile(options.state_file));
    auto state = nlohmann::json::parse(text, nullptr, false);
    std::string before = state.is_object() ? state.value("ip_forward_before", "") : "";
    if (before == "0") {
      VMCTL_TRY(SetIpv4Forwarding('0'));
      removed.push_back("ip_forward restored to 0");
    }
    std::error_code ec;
    std::filesystem::remove(options.state_file, ec);
  }
  return removed;
}

std::string Describe(const NetworkInfo& info) {
  uint64_t size = uint64_t{info.pool_last.value} - info.pool_first.value;  // minus the gateway
  std::string outside = info.uplink
                            ? fmt::format("NAT to the outside via {}", *info.uplink)
                            : std::string(
                                  "no default route: VMs have no outside access until the host "
                                  "has one");
  std::string dns = info.dns.empty() ? std::string("no DNS servers for guests (pass --dns)")
                                     : "DNS " + fmt::format("{}", fmt::join(info.dns, ", "));
  return fmt::format("network: bridge {} {}, {} addresses for VMs, {}; {}", info.bridge,
                     info.gateway.ToString(), size, outside, dns);
}

}  // namespace vmctl::network
