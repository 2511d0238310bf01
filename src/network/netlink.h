#ifndef VMCTL_NETWORK_NETLINK_H_
#define VMCTL_NETWORK_NETLINK_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "network/addr.h"

namespace vmctl::network {

// Links, addresses, routes and qdiscs of the calling thread's network namespace, through rtnetlink
// (libnl-route-3) and, for TAP creation only, the /dev/net/tun ioctls (TAP devices cannot be
// created over rtnetlink).
//
// Threading: every function opens its own netlink socket, so calls may come from any thread.
// Errors: kNotFound when a named link does not exist, kAlreadyExists when a link of that name
// exists but is of another kind, kInvalidArgument for a bad name (empty, > 15 characters) or
// value, kInternal for anything the kernel refused (the message names the operation, the link
// and the kernel's own text, e.g. "create bridge vmctl0: Operation not permitted").

struct LinkInfo {
  std::string name;
  int index = 0;
  std::string kind;    // "bridge", "tun", "veth", "dummy", ... ("" for plain devices like lo)
  std::string master;  // name of the bridge it is enslaved to, or ""
  bool up = false;     // administratively up (IFF_UP)
};

// All links of the namespace.
Result<std::vector<LinkInfo>> ListLinks();
// kNotFound if absent.
Result<LinkInfo> GetLink(const std::string& name);

// Creates bridge `name` if absent (kAlreadyExists if `name` exists and is not a bridge), makes
// `address` (e.g. 10.0.0.1/16) its only IPv4 address, and sets it up. Idempotent.
Result<void> EnsureBridge(const std::string& name, const Cidr& address);

// Creates a persistent TAP device `name` (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR off, so that QEMU,
// Cloud Hypervisor and Firecracker can all open it) if absent, enslaves it to `bridge` and sets it
// up. Idempotent: an existing TAP is enslaved and set up again. kAlreadyExists if `name` exists
// and is not a TAP.
Result<void> EnsureTap(const std::string& name, const std::string& bridge);

// Deletes the link. Ok if it does not exist.
Result<void> DeleteLink(const std::string& name);

// IPv4 routes of the main table whose destination overlaps `subnet`, as readable lines
// ("10.0.0.0/24 dev eth1"), ignoring routes through the link named `ignore_dev` (our own bridge).
Result<std::vector<std::string>> OverlappingRoutes(const Cidr& subnet,
                                                   const std::string& ignore_dev);

// The IPv4 default route's device, or nullopt when there is none.
Result<std::optional<std::string>> DefaultRouteDevice();

// Shapes traffic leaving `dev` (for a TAP: traffic towards the guest) with a tbf qdisc of
// `rate_kbit` kilobits per second, replacing any root qdisc; rate_kbit 0 removes the root qdisc
// (back to the default). Burst and latency are chosen so that TCP reaches the rate.
Result<void> SetEgressRate(const std::string& dev, uint64_t rate_kbit);

// Writes "1" to /proc/sys/net/ipv4/ip_forward unless it is already 1. Returns the previous value
// ('0' or '1') so that a cleanup can restore it.
Result<char> EnableIpv4Forwarding();
Result<void> SetIpv4Forwarding(char value);

}  // namespace vmctl::network

#endif  // VMCTL_NETWORK_NETLINK_H_
