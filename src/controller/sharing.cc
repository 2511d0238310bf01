#include "controller/sharing.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <set>

#include "model/email.h"

namespace vmctl::controller {
namespace {

Error NoSuchVm(std::string_view name) { return NotFound(fmt::format("no VM named '{}'", name)); }

// The same for every name, so the login page reveals nothing about which VMs exist.
Error LogInFirst() { return Unauthenticated("log in to reach this site"); }

Error UnknownLink() { return Unauthenticated("this share link is unknown or was used already"); }

std::string Hex(const unsigned char* data, size_t size) {
  std::string out;
  out.reserve(size * 2);
  for (size_t i = 0; i < size; ++i) out += fmt::format("{:02x}", data[i]);
  return out;
}

Result<std::string> RandomHex(size_t bytes) {
  std::vector<unsigned char> buffer(bytes);
  if (RAND_bytes(buffer.data(), static_cast<int>(buffer.size())) != 1) {
    return Internal("the random number generator failed");
  }
  return Hex(buffer.data(), buffer.size());
}

std::string Sha256Hex(std::string_view text) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  EVP_Digest(text.data(), text.size(), digest, &size, EVP_sha256(), nullptr);
  return Hex(digest, size);
}

// 128 bits as 32 lowercase hex characters.
constexpr size_t kSecretBytes = 16;
constexpr size_t kLinkIdBytes = 4;
constexpr size_t kMaxTrackedSources = 4096;

bool LooksLikeSecret(std::string_view secret) {
  return secret.size() == kSecretBytes * 2 && std::all_of(secret.begin(), secret.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

// The canonical text of an address, so "::ffff:1.2.3.4" style differences do not matter; the
// input unchanged when it is no address.
std::string CanonicalAddress(const std::string& text) {
  char out[INET6_ADDRSTRLEN] = {};
  in_addr v4{};
  if (inet_pton(AF_INET, text.c_str(), &v4) == 1 && inet_ntop(AF_INET, &v4, out, sizeof(out))) {
    return out;
  }
  in6_addr v6{};
  if (inet_pton(AF_INET6, text.c_str(), &v6) == 1) {
    if (IN6_IS_ADDR_V4MAPPED(&v6)) {
      std::memcpy(&v4, &v6.s6_addr[12], 4);
      if (inet_ntop(AF_INET, &v4, out, sizeof(out))) return out;
    }
    if (inet_ntop(AF_INET6, &v6, out, sizeof(out))) return out;
  }
  return text;
}

std::string SockaddrText(const sockaddr* address) {
  char out[INET6_ADDRSTRLEN] = {};
  if (address->sa_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(address)->sin_addr, out, sizeof(out));
  } else if (address->sa_family == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(address)->sin6_addr, out,
              sizeof(out));
  }
  return out;
}

Result<std::vector<std::string>> ResolveWithGetaddrinfo(const std::string& domain) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  int rc = getaddrinfo(domain.c_str(), nullptr, &hints, &found);
  if (rc != 0) return Unavailable(gai_strerror(rc));
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> owned(found, freeaddrinfo);
  std::vector<std::string> addresses;
  for (addrinfo* a = found; a; a = a->ai_next) {
    std::string text = SockaddrText(a->ai_addr);
    if (!text.empty()) addresses.push_back(text);
  }
  return addresses;
}

std::vector<std::string> InterfaceAddresses() {
  std::vector<std::string> addresses;
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return addresses;
  std::unique_ptr<ifaddrs, decltype(&freeifaddrs)> owned(list, freeifaddrs);
  for (ifaddrs* i = list; i; i = i->ifa_next) {
    if (!i->ifa_addr) continue;
    std::string text = SockaddrText(i->ifa_addr);
    if (!text.empty()) addresses.push_back(text);
  }
  return addresses;
}

std::vector<std::string> ExposedPorts(const ImageRecord& image) {
  std::vector<std::string> ports;
  auto it = image.config.find("exposed_ports");
  if (it == image.config.end() || !it->is_array()) return ports;
  for (const auto& entry : *it) {
    if (entry.is_string()) ports.push_back(entry.get<std::string>());
  }
  return ports;
}

}  // namespace

Result<std::unique_ptr<VmSharing>> VmSharing::Create(Store& store, VmLocks& locks,
                                                     SharingOptions options) {
  VMCTL_ASSIGN_OR_RETURN(WebOrigin origin, ParseWebOrigin(options.web_url));
  if (!options.resolve) options.resolve = ResolveWithGetaddrinfo;
  if (!options.host_addresses) {
    options.host_addresses = [listen = options.listen_addresses] {
      auto addresses = InterfaceAddresses();
      addresses.insert(addresses.end(), listen.begin(), listen.end());
      return addresses;
    };
  }
  return std::unique_ptr<VmSharing>(
      new VmSharing(store, locks, std::move(options), std::move(origin)));
}

VmSharing::VmSharing(Store& store, VmLocks& locks, SharingOptions options, WebOrigin origin)
    : store_(store), locks_(locks), options_(std::move(options)), origin_(std::move(origin)) {}

int64_t VmSharing::Now() const {
  if (options_.now) return options_.now();
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Result<VmRecord> VmSharing::Owned(const std::string& owner, const std::string& name) {
  auto vm = store_.GetVmByName(owner, name);
  if (!vm.ok() && vm.error().code() == ErrorCode::kNotFound) return NoSuchVm(name);
  return vm;
}

Result<void> VmSharing::ChangeVm(const std::string& owner, const std::string& name,
                                 const std::function<Result<void>(const VmRecord&)>& change) {
  VMCTL_ASSIGN_OR_RETURN(VmRecord vm, Owned(owner, name));
  auto mutex = locks_.For(vm.id);
  std::lock_guard lock(*mutex);
  auto current = store_.GetVm(vm.id);
  if (!current.ok()) {
    if (current.error().code() == ErrorCode::kNotFound) return NoSuchVm(name);
    return current.error();
  }
  if (current->state == VmState::kDeleting) return NoSuchVm(name);
  return change(*current);
}

Result<void> VmSharing::SetPublic(const std::string& owner, const std::string& name,
                                  bool is_public) {
  return ChangeVm(owner, name,
                  [&](const VmRecord& vm) { return store_.SetVmPublic(vm.id, is_public); });
}

namespace {

Result<User> UserByEmail(Store& store, const std::string& email) {
  VMCTL_ASSIGN_OR_RETURN(std::string normalized, NormalizeEmail(email));
  auto user = store.GetUserByEmail(normalized);
  if (!user.ok() && user.error().code() == ErrorCode::kNotFound) {
    return NotFound(fmt::format("no user with the email {} (they register first)", normalized));
  }
  return user;
}

}  // namespace

Result<void> VmSharing::Share(const std::string& owner, const std::string& name,
                              const std::string& email) {
  return ChangeVm(owner, name, [&](const VmRecord& vm) -> Result<void> {
    VMCTL_ASSIGN_OR_RETURN(User user, UserByEmail(store_, email));
    if (user.id == owner) return InvalidArgument("you own this VM already");
    auto added = store_.AddShare(vmctl::Share{vm.id, user.id, Now()});
    if (!added.ok() && added.error().code() == ErrorCode::kAlreadyExists) {
      return AlreadyExists(fmt::format("VM '{}' is already shared with {}", name, user.email));
    }
    return added;
  });
}

Result<void> VmSharing::Unshare(const std::string& owner, const std::string& name,
                                const std::string& email) {
  return ChangeVm(owner, name, [&](const VmRecord& vm) -> Result<void> {
    VMCTL_ASSIGN_OR_RETURN(User user, UserByEmail(store_, email));
    auto removed = store_.RemoveShare(vm.id, user.id);
    if (!removed.ok() && removed.error().code() == ErrorCode::kNotFound) {
      return NotFound(fmt::format("VM '{}' is not shared with {}", name, user.email));
    }
    return removed;
  });
}

Result<ShareLink> VmSharing::CreateShareLink(const std::string& owner, const std::string& name) {
  ShareLink link;
  VMCTL_TRY(ChangeVm(owner, name, [&](const VmRecord& vm) -> Result<void> {
    VMCTL_ASSIGN_OR_RETURN(auto links, store_.ListShareLinks(vm.id));
    if (links.size() >= options_.max_links_per_vm) {
      return ResourceExhausted(
          fmt::format("VM '{}' has {} unused share links already; remove some with `share rm`",
                      name, links.size()));
    }
    VMCTL_ASSIGN_OR_RETURN(std::string secret, RandomHex(kSecretBytes));
    VMCTL_ASSIGN_OR_RETURN(link.id, RandomHex(kLinkIdBytes));
    link.created_at = Now();
    VMCTL_TRY(
        store_.AddShareLink(ShareLinkRecord{link.id, vm.id, Sha256Hex(secret), link.created_at}));
    link.url =
        fmt::format("https://{}.{}{}/?share={}", vm.name, origin_.domain, origin_.port, secret);
    return Ok();
  }));
  return link;
}

Result<void> VmSharing::RemoveShareLink(const std::string& owner, const std::string& name,
                                        const std::string& link_id) {
  return ChangeVm(owner, name, [&](const VmRecord& vm) -> Result<void> {
    auto removed = store_.RemoveShareLink(vm.id, link_id);
    if (!removed.ok() && removed.error().code() == ErrorCode::kNotFound) {
      return NotFound(
          fmt::format("VM '{}' has no share link '{}'", name, EscapeForDisplay(link_id)));
    }
    return removed;
  });
}

bool VmSharing::MayTrySecret(const std::string& source) {
  std::lock_guard lock(attempts_mu_);
  auto it = attempts_.find(source);
  if (it == attempts_.end()) return true;
  if (Now() - it->second.window_start >= options_.wrong_secret_window.count()) {
    attempts_.erase(it);
    return true;
  }
  return it->second.wrong < options_.max_wrong_secrets;
}

void VmSharing::CountWrongSecret(const std::string& source) {
  std::lock_guard lock(attempts_mu_);
  int64_t now = Now();
  // Sources whose window is over are forgotten, so spoofed variety cannot grow the map forever.
  std::erase_if(attempts_, [&](const auto& entry) {
    return now - entry.second.window_start >= options_.wrong_secret_window.count();
  });
  // Many sources within one window (an IPv6 prefix) must not grow it without bound either: the
  // limit then holds for most of them, not all.
  if (attempts_.size() >= kMaxTrackedSources && !attempts_.contains(source)) {
    attempts_.erase(attempts_.begin());
  }
  auto [it, fresh] = attempts_.try_emplace(source, Attempts{now, 0});
  ++it->second.wrong;
}

Result<VmRecord> VmSharing::RedeemShareLink(std::string_view secret, const Identity& identity,
                                            const std::string& source) {
  if (!MayTrySecret(source)) {
    return ResourceExhausted("too many wrong share links from your address; try again later");
  }
  if (!LooksLikeSecret(secret)) {
    CountWrongSecret(source);
    return UnknownLink();
  }
  auto vm = store_.RedeemShareLink(Sha256Hex(secret), identity.user_id, Now());
  if (!vm.ok() && vm.error().code() == ErrorCode::kNotFound) {
    CountWrongSecret(source);
    return UnknownLink();
  }
  return vm;
}

Result<std::pair<uint16_t, bool>> VmSharing::WebPort(const VmRecord& vm) {
  VMCTL_ASSIGN_OR_RETURN(VmWebSettings settings, store_.GetVmWebSettings(vm.id));
  if (settings.web_port != 0) return std::pair{static_cast<uint16_t>(settings.web_port), true};
  auto image = store_.GetImage(vm.image);
  if (!image.ok()) {
    if (image.error().code() != ErrorCode::kNotFound) return image.error();
    return std::pair{DefaultWebPort({}), false};
  }
  return std::pair{DefaultWebPort(ExposedPorts(*image)), false};
}

Result<SharingInfo> VmSharing::Sharing(const std::string& owner, const std::string& name) {
  VMCTL_ASSIGN_OR_RETURN(VmRecord vm, Owned(owner, name));
  SharingInfo info;
  info.url = fmt::format("https://{}.{}{}/", vm.name, origin_.domain, origin_.port);
  VMCTL_ASSIGN_OR_RETURN(VmWebSettings settings, store_.GetVmWebSettings(vm.id));
  info.is_public = settings.is_public;
  VMCTL_ASSIGN_OR_RETURN(auto port, WebPort(vm));
  std::tie(info.web_port, info.web_port_explicit) = port;
  VMCTL_ASSIGN_OR_RETURN(auto shares, store_.ListShares(vm.id));
  for (const auto& share : shares) {
    VMCTL_ASSIGN_OR_RETURN(User user, store_.GetUser(share.user_id));
    info.users.push_back(std::move(user));
  }
  VMCTL_ASSIGN_OR_RETURN(auto links, store_.ListShareLinks(vm.id));
  for (const auto& link : links) info.links.push_back(ShareLink{link.id, "", link.created_at});
  VMCTL_ASSIGN_OR_RETURN(info.domains, Domains(owner, name));
  return info;
}

Result<void> VmSharing::SetWebPort(const std::string& owner, const std::string& name,
                                   uint16_t port) {
  return ChangeVm(owner, name,
                  [&](const VmRecord& vm) { return store_.SetVmWebPort(vm.id, port); });
}

Result<void> VmSharing::CheckDomainPointsHere(const std::string& domain) {
  auto resolved = options_.resolve(domain);
  if (!resolved.ok() || resolved->empty()) {
    return FailedPrecondition(fmt::format(
        "{} does not resolve{}; point it at this host (an A/AAAA or CNAME record) first", domain,
        resolved.ok() ? "" : " (" + resolved.error().message() + ")"));
  }
  std::set<std::string> here;
  for (const auto& address : options_.host_addresses()) here.insert(CanonicalAddress(address));
  std::vector<std::string> shown;
  for (const auto& address : *resolved) {
    std::string canonical = CanonicalAddress(address);
    if (here.contains(canonical)) return Ok();
    shown.push_back(canonical);
  }
  return FailedPrecondition(
      fmt::format("{} resolves to {}, which is not this host; point it here first", domain,
                  fmt::join(shown, ", ")));
}

Result<void> VmSharing::AddDomain(const std::string& owner, const std::string& name,
                                  const std::string& domain) {
  VMCTL_ASSIGN_OR_RETURN(std::string normalized, NormalizeCustomDomain(domain, origin_.domain));
  // Before the (slow) lookup: nothing is resolved for a VM the user does not have.
  VMCTL_TRY(Owned(owner, name));
  VMCTL_TRY(CheckDomainPointsHere(normalized));
  if (!options_.custom_domain_certificates) {
    return FailedPrecondition(fmt::format(
        "{} points here, but this host cannot get certificates for custom domains: its operator "
        "must start `vmctl serve` with --acme-directory, and with --https-listen and "
        "--http-listen on (the local CA may vouch for {} only)",
        normalized, origin_.domain));
  }
  return ChangeVm(owner, name, [&](const VmRecord& vm) -> Result<void> {
    VMCTL_ASSIGN_OR_RETURN(auto domains, store_.ListCustomDomains(vm.id));
    for (const auto& d : domains) {
      if (d.domain == normalized) {
        return AlreadyExists(fmt::format("VM '{}' has the domain {} already", name, normalized));
      }
    }
    if (domains.size() >= options_.max_domains_per_vm) {
      return ResourceExhausted(
          fmt::format("VM '{}' has {} domains, the most it may have", name, domains.size()));
    }
    return store_.AddCustomDomain(CustomDomain{normalized, vm.id, Now()});
  });
}

Result<void> VmSharing::RemoveDomain(const std::string& owner, const std::string& name,
                                     const std::string& domain) {
  VMCTL_ASSIGN_OR_RETURN(std::string normalized, NormalizeCustomDomain(domain, origin_.domain));
  return ChangeVm(owner, name, [&](const VmRecord& vm) -> Result<void> {
    auto removed = store_.RemoveCustomDomain(vm.id, normalized);
    if (!removed.ok() && removed.error().code() == ErrorCode::kNotFound) {
      return NotFound(fmt::format("VM '{}' has no domain {}", name, normalized));
    }
    return removed;
  });
}

Result<std::vector<std::string>> VmSharing::Domains(const std::string& owner,
                                                    const std::string& name) {
  VMCTL_ASSIGN_OR_RETURN(VmRecord vm, Owned(owner, name));
  VMCTL_ASSIGN_OR_RETURN(auto domains, store_.ListCustomDomains(vm.id));
  std::vector<std::string> names;
  for (const auto& d : domains) names.push_back(d.domain);
  return names;
}

Result<WebRoute> VmSharing::Route(const VmRecord& vm, uint16_t port, const Identity* identity,
                                  std::string_view shown) {
  VMCTL_ASSIGN_OR_RETURN(VmWebSettings settings, store_.GetVmWebSettings(vm.id));
  // A token limited to another VM acts for nobody here.
  bool acts = identity && (identity->vm_id.empty() || identity->vm_id == vm.id);
  bool owner = acts && identity->user_id == vm.owner;
  bool allowed =
      owner || (port == 0 && settings.is_public) || (port == 0 && acts && !identity->vm_id.empty());
  if (!allowed && port == 0 && acts) {
    VMCTL_ASSIGN_OR_RETURN(auto shares, store_.ListShares(vm.id));
    allowed = std::any_of(shares.begin(), shares.end(),
                          [&](const auto& share) { return share.user_id == identity->user_id; });
  }
  if (!allowed) return identity ? NoSuchVm(shown) : LogInFirst();
  WebRoute route{vm, port, settings.is_public, owner};
  if (port == 0) {
    VMCTL_ASSIGN_OR_RETURN(auto web, WebPort(vm));
    route.port = web.first;
  }
  return route;
}

Result<WebRoute> VmSharing::RouteWeb(std::string_view vm_name, uint16_t port,
                                     const Identity* identity) {
  auto vm = store_.GetVmByHostName(vm_name);
  if (vm.ok() && vm->state == VmState::kDeleting) vm = NoSuchVm(vm_name);
  if (!vm.ok()) {
    if (vm.error().code() != ErrorCode::kNotFound) return vm.error();
    return identity ? NoSuchVm(EscapeForDisplay(vm_name)) : LogInFirst();
  }
  return Route(*vm, port, identity, vm->name);
}

Result<WebRoute> VmSharing::RouteDomain(std::string_view domain, const Identity* identity) {
  std::string shown = EscapeForDisplay(domain);
  auto normalized = NormalizeCustomDomain(domain, origin_.domain);
  auto found = normalized.ok() ? store_.GetCustomDomain(*normalized)
                               : Result<CustomDomain>(NotFound("no such domain"));
  if (!found.ok()) {
    if (found.error().code() != ErrorCode::kNotFound) return found.error();
    return identity ? NoSuchVm(shown) : LogInFirst();
  }
  auto vm = store_.GetVm(found->vm_id);
  if (vm.ok() && vm->state == VmState::kDeleting) vm = NoSuchVm(shown);
  if (!vm.ok()) {
    if (vm.error().code() != ErrorCode::kNotFound) return vm.error();
    return identity ? NoSuchVm(shown) : LogInFirst();
  }
  return Route(*vm, 0, identity, shown);
}

bool VmSharing::IsCustomDomain(std::string_view domain) {
  auto normalized = NormalizeCustomDomain(domain, origin_.domain);
  return normalized.ok() && store_.GetCustomDomain(*normalized).ok();
}

}  // namespace vmctl::controller
