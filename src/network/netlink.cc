#include "network/netlink.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/bridge.h>
#include <netlink/route/qdisc.h>
#include <netlink/route/qdisc/tbf.h>
#include <netlink/route/route.h>
#include <netlink/route/tc.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <climits>
#include <cstring>
#include <memory>

#include "base/io.h"
#include "base/unique_fd.h"

namespace vmctl::network {
namespace {

// Frees a libnl object with its own release function.
template <auto Free>
struct Deleter {
  template <typename T>
  void operator()(T* p) const {
    Free(p);
  }
};
using Sock = std::unique_ptr<nl_sock, Deleter<nl_socket_free>>;
using Cache = std::unique_ptr<nl_cache, Deleter<nl_cache_free>>;
using Link = std::unique_ptr<rtnl_link, Deleter<rtnl_link_put>>;
using Addr = std::unique_ptr<rtnl_addr, Deleter<rtnl_addr_put>>;
using NlAddr = std::unique_ptr<nl_addr, Deleter<nl_addr_put>>;
using Qdisc = std::unique_ptr<rtnl_qdisc, Deleter<rtnl_qdisc_put>>;

Error NlError(const std::string& what, int err) {
  return Internal(fmt::format("{}: {}", what, nl_geterror(err)));
}

Result<void> CheckName(const std::string& name) {
  if (name.empty() || name.size() >= IFNAMSIZ) {
    return InvalidArgument(
        fmt::format("network device name '{}' must have 1 to {} characters", name, IFNAMSIZ - 1));
  }
  return Ok();
}

Result<Sock> Connect() {
  Sock sock(nl_socket_alloc());
  if (!sock) return Internal("cannot allocate a netlink socket");
  if (int err = nl_connect(sock.get(), NETLINK_ROUTE); err < 0) {
    return NlError("connect to rtnetlink", err);
  }
  return sock;
}

Result<Cache> LinkCache(nl_sock* sock) {
  nl_cache* raw = nullptr;
  if (int err = rtnl_link_alloc_cache(sock, AF_UNSPEC, &raw); err < 0) {
    return NlError("list links", err);
  }
  return Cache(raw);
}

LinkInfo Describe(rtnl_link* link, nl_cache* cache) {
  LinkInfo info;
  info.name = rtnl_link_get_name(link);
  info.index = rtnl_link_get_ifindex(link);
  const char* kind = rtnl_link_get_type(link);
  info.kind = kind ? kind : "";
  if (int master = rtnl_link_get_master(link); master > 0) {
    char name[IFNAMSIZ] = {};
    if (rtnl_link_i2name(cache, master, name, sizeof(name))) info.master = name;
  }
  info.up = (rtnl_link_get_flags(link) & IFF_UP) != 0;
  return info;
}

// Looks the link up in a fresh cache; kNotFound if absent.
Result<Link> FindLink(nl_sock* sock, const std::string& name) {
  rtnl_link* raw = nullptr;
  if (int err = rtnl_link_get_kernel(sock, 0, name.c_str(), &raw); err < 0) {
    if (err == -NLE_NODEV || err == -NLE_OBJ_NOTFOUND) {
      return NotFound(fmt::format("no network device named {}", name));
    }
    return NlError("look up " + name, err);
  }
  return Link(raw);
}

Result<void> SetUp(nl_sock* sock, rtnl_link* link, int master_index) {
  Link change(rtnl_link_alloc());
  if (!change) return Internal("out of memory");
  rtnl_link_set_flags(change.get(), IFF_UP);
  if (master_index > 0) rtnl_link_set_master(change.get(), master_index);
  if (int err = rtnl_link_change(sock, link, change.get(), 0); err < 0) {
    return NlError(fmt::format("set {} up", rtnl_link_get_name(link)), err);
  }
  return Ok();
}

std::string KindOf(rtnl_link* link) {
  const char* kind = rtnl_link_get_type(link);
  return kind ? kind : "";
}

struct Route {
  Cidr destination;  // prefix 0: the default route
  std::string dev;   // first nexthop's device, "" if unknown
};

// The IPv4 routes of the main table.
Result<std::vector<Route>> MainRoutes() {
  VMCTL_ASSIGN_OR_RETURN(Sock sock, Connect());
  VMCTL_ASSIGN_OR_RETURN(Cache links, LinkCache(sock.get()));
  nl_cache* raw = nullptr;
  if (int err = rtnl_route_alloc_cache(sock.get(), AF_INET, 0, &raw); err < 0) {
    return NlError("list routes", err);
  }
  Cache routes(raw);
  std::vector<Route> out;
  for (nl_object* obj = nl_cache_get_first(routes.get()); obj; obj = nl_cache_get_next(obj)) {
    auto* route = reinterpret_cast<rtnl_route*>(obj);
    if (rtnl_route_get_table(route) != RT_TABLE_MAIN) continue;
    Route entry;
    nl_addr* dst = rtnl_route_get_dst(route);
    if (dst && nl_addr_get_len(dst) == 4) {
      uint32_t be = 0;
      std::memcpy(&be, nl_addr_get_binary_addr(dst), 4);
      entry.destination = Cidr{Ipv4{ntohl(be)}, static_cast<int>(nl_addr_get_prefixlen(dst))};
    } else {
      entry.destination = Cidr{Ipv4{0}, 0};
    }
    if (rtnl_route_get_nnexthops(route) > 0) {
      int ifindex = rtnl_route_nh_get_ifindex(rtnl_route_nexthop_n(route, 0));
      char name[IFNAMSIZ] = {};
      if (rtnl_link_i2name(links.get(), ifindex, name, sizeof(name))) entry.dev = name;
    }
    out.push_back(std::move(entry));
  }
  return out;
}

}  // namespace

Result<std::vector<LinkInfo>> ListLinks() {
  VMCTL_ASSIGN_OR_RETURN(Sock sock, Connect());
  VMCTL_ASSIGN_OR_RETURN(Cache cache, LinkCache(sock.get()));
  std::vector<LinkInfo> out;
  for (nl_object* obj = nl_cache_get_first(cache.get()); obj; obj = nl_cache_get_next(obj)) {
    out.push_back(Describe(reinterpret_cast<rtnl_link*>(obj), cache.get()));
  }
  return out;
}

Result<LinkInfo> GetLink(const std::string& name) {
  VMCTL_TRY(CheckName(name));
  VMCTL_ASSIGN_OR_RETURN(auto links, ListLinks());
  for (auto& link : links) {
    if (link.name == name) return link;
  }
  return NotFound(fmt::format("no network device named {}", name));
}

Result<void> EnsureBridge(const std::string& name, const Cidr& address) {
  VMCTL_TRY(CheckName(name));
  VMCTL_ASSIGN_OR_RETURN(Sock sock, Connect());
  auto existing = FindLink(sock.get(), name);
  if (!existing.ok()) {
    if (existing.error().code() != ErrorCode::kNotFound) return existing.error();
    Link bridge(rtnl_link_bridge_alloc());
    if (!bridge) return Internal("out of memory");
    rtnl_link_set_name(bridge.get(), name.c_str());
    if (int err = rtnl_link_add(sock.get(), bridge.get(), NLM_F_CREATE | NLM_F_EXCL); err < 0) {
      return NlError("create bridge " + name, err);
    }
    existing = FindLink(sock.get(), name);
    if (!existing.ok()) return existing.error();
  }
  rtnl_link* link = existing->get();
  if (KindOf(link) != "bridge") {
    return AlreadyExists(fmt::format("{} exists and is a {} device, not a bridge", name,
                                     KindOf(link).empty() ? "plain" : KindOf(link)));
  }
  int index = rtnl_link_get_ifindex(link);

  // Exactly one IPv4 address: drop stale ones (a changed --subnet), keep the wanted one.
  nl_cache* raw_addrs = nullptr;
  if (int err = rtnl_addr_alloc_cache(sock.get(), &raw_addrs); err < 0) {
    return NlError("list addresses", err);
  }
  Cache addrs(raw_addrs);
  bool present = false;
  for (nl_object* obj = nl_cache_get_first(addrs.get()); obj; obj = nl_cache_get_next(obj)) {
    auto* a = reinterpret_cast<rtnl_addr*>(obj);
    if (rtnl_addr_get_ifindex(a) != index || rtnl_addr_get_family(a) != AF_INET) continue;
    nl_addr* local = rtnl_addr_get_local(a);
    bool wanted = false;
    if (local && nl_addr_get_len(local) == 4 && rtnl_addr_get_prefixlen(a) == address.prefix) {
      uint32_t be = 0;
      std::memcpy(&be, nl_addr_get_binary_addr(local), 4);
      wanted = ntohl(be) == address.address.value;
    }
    if (wanted) {
      present = true;
    } else if (int err = rtnl_addr_delete(sock.get(), a, 0); err < 0) {
      return NlError("remove a stale address from " + name, err);
    }
  }
  if (!present) {
    Addr a(rtnl_addr_alloc());
    nl_addr* local = nullptr;
    if (int err = nl_addr_parse(address.ToString().c_str(), AF_INET, &local); err < 0) {
      return NlError("parse " + address.ToString(), err);
    }
    NlAddr local_owner(local);
    rtnl_addr_set_ifindex(a.get(), index);
    rtnl_addr_set_family(a.get(), AF_INET);
    if (int err = rtnl_addr_set_local(a.get(), local); err < 0) {
      return NlError("set address", err);
    }
    rtnl_addr_set_prefixlen(a.get(), address.prefix);
    NlAddr broadcast(nl_addr_clone(local));
    uint32_t bcast = htonl(address.Broadcast().value);
    std::memcpy(nl_addr_get_binary_addr(broadcast.get()), &bcast, 4);
    rtnl_addr_set_broadcast(a.get(), broadcast.get());
    if (int err = rtnl_addr_add(sock.get(), a.get(), 0); err < 0) {
      return NlError(fmt::format("add {} to {}", address.ToString(), name), err);
    }
  }
  return SetUp(sock.get(), link, 0);
}

Result<void> EnsureTap(const std::string& name, const std::string& bridge) {
  VMCTL_TRY(CheckName(name));
  VMCTL_ASSIGN_OR_RETURN(Sock sock, Connect());
  VMCTL_ASSIGN_OR_RETURN(Link master, FindLink(sock.get(), bridge));
  auto existing = FindLink(sock.get(), name);
  if (!existing.ok()) {
    if (existing.error().code() != ErrorCode::kNotFound) return existing.error();
    // rtnetlink cannot create TAPs; the tun driver's ioctls can, and TUNSETPERSIST keeps the
    // device after this descriptor closes, until the VMM opens it by name.
    UniqueFd tun(::open("/dev/net/tun", O_RDWR | O_CLOEXEC));
    if (!tun.valid()) return ErrnoError("open /dev/net/tun", errno);
    ifreq request{};
    std::strncpy(request.ifr_name, name.c_str(), IFNAMSIZ - 1);
    request.ifr_flags = IFF_TAP | IFF_NO_PI;
    if (::ioctl(tun.get(), TUNSETIFF, &request) != 0) {
      return ErrnoError("create TAP " + name, errno);
    }
    if (::ioctl(tun.get(), TUNSETPERSIST, 1) != 0) {
      return ErrnoError("make TAP " + name + " persistent", errno);
    }
    existing = FindLink(sock.get(), name);
    if (!existing.ok()) return existing.error();
  }
  if (KindOf(existing->get()) != "tun") {
    return AlreadyExists(
        fmt::format("{} exists and is a {} device, not a TAP", name,
                    KindOf(existing->get()).empty() ? "plain" : KindOf(existing->get())));
  }
  return SetUp(sock.get(), existing->get(), rtnl_link_get_ifindex(master.get()));
}

Result<void> DeleteLink(const std::string& name) {
  VMCTL_TRY(CheckName(name));
  VMCTL_ASSIGN_OR_RETURN(Sock sock, Connect());
  auto existing = FindLink(sock.get(), name);
  if (!existing.ok()) {
    if (existing.error().code() == ErrorCode::kNotFound) return Ok();
    return existing.error();
  }
  if (int err = rtnl_link_delete(sock.get(), existing->get()); err < 0) {
    if (err == -NLE_NODEV || err == -NLE_OBJ_NOTFOUND) return Ok();
    return NlError("delete " + name, err);
  }
  return Ok();
}

Result<std::vector<std::string>> OverlappingRoutes(const Cidr& subnet,
                                                   const std::string& ignore_dev) {
  VMCTL_ASSIGN_OR_RETURN(auto routes, MainRoutes());
  std::vector<std::string> out;
  for (const auto& route : routes) {
    // The default route overlaps everything by definition; it is not a collision.
    if (route.destination.prefix == 0 || !route.destination.Overlaps(subnet)) continue;
    if (!route.dev.empty() && route.dev == ignore_dev) continue;
    out.push_back(fmt::format("{} dev {}", route.destination.NetworkString(),
                              route.dev.empty() ? "?" : route.dev));
  }
  return out;
}

Result<std::optional<std::string>> DefaultRouteDevice() {
  VMCTL_ASSIGN_OR_RETURN(auto routes, MainRoutes());
  for (const auto& route : routes) {
    if (route.destination.prefix == 0 && !route.dev.empty()) {
      return std::optional<std::string>(route.dev);
    }
  }
  return std::optional<std::string>();
}

Result<void> SetEgressRate(const std::string& dev, uint64_t rate_kbit) {
  VMCTL_TRY(CheckName(dev));
  uint64_t bytes_per_second = rate_kbit * 1000 / 8;
  if (bytes_per_second > static_cast<uint64_t>(INT_MAX)) {
    return InvalidArgument(fmt::format("rate of {} kbit is above what tbf takes", rate_kbit));
  }
  VMCTL_ASSIGN_OR_RETURN(Sock sock, Connect());
  VMCTL_ASSIGN_OR_RETURN(Link link, FindLink(sock.get(), dev));
  Qdisc qdisc(rtnl_qdisc_alloc());
  if (!qdisc) return Internal("out of memory");
  rtnl_tc_set_ifindex(TC_CAST(qdisc.get()), rtnl_link_get_ifindex(link.get()));
  rtnl_tc_set_parent(TC_CAST(qdisc.get()), TC_H_ROOT);
  if (rate_kbit == 0) {
    int err = rtnl_qdisc_delete(sock.get(), qdisc.get());
    // No root qdisc of ours: nothing to remove.
    if (err < 0 && err != -NLE_OBJ_NOTFOUND && err != -NLE_INVAL && err != -NLE_NOADDR) {
      return NlError("remove the rate limit of " + dev, err);
    }
    return Ok();
  }
  if (int err = rtnl_tc_set_kind(TC_CAST(qdisc.get()), "tbf"); err < 0) {
    return NlError("tbf", err);
  }
  // A bucket of 10 ms at the rate (at least 32 KiB) lets TCP reach the rate; 50 ms of queue
  // bounds the added latency.
  int bucket = static_cast<int>(std::max<uint64_t>(bytes_per_second / 100, 32 * 1024));
  rtnl_qdisc_tbf_set_rate(qdisc.get(), static_cast<int>(bytes_per_second), bucket, 0);
  if (int err = rtnl_qdisc_tbf_set_limit_by_latency(qdisc.get(), 50000); err < 0) {
    return NlError("tbf latency", err);
  }
  if (int err = rtnl_qdisc_add(sock.get(), qdisc.get(), NLM_F_CREATE | NLM_F_REPLACE); err < 0) {
    return NlError(fmt::format("limit {} to {} kbit", dev, rate_kbit), err);
  }
  return Ok();
}

Result<char> EnableIpv4Forwarding() {
  VMCTL_ASSIGN_OR_RETURN(std::string current, ReadFile("/proc/sys/net/ipv4/ip_forward"));
  char before = current.empty() ? '0' : current[0];
  if (before != '1') VMCTL_TRY(SetIpv4Forwarding('1'));
  return before;
}

Result<void> SetIpv4Forwarding(char value) {
  UniqueFd fd(::open("/proc/sys/net/ipv4/ip_forward", O_WRONLY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoError("open /proc/sys/net/ipv4/ip_forward", errno);
  if (::write(fd.get(), &value, 1) != 1) return ErrnoError("write ip_forward", errno);
  return Ok();
}

}  // namespace vmctl::network
