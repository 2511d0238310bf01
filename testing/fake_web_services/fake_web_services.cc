#include "testing/fake_web_services/fake_web_services.h"

#include <algorithm>

namespace vmctl::testing {

using controller::Identity;
using controller::SessionGrant;
using controller::WebRoute;

namespace {

Error WrongSecret() { return Unauthenticated("the link, ticket or token is not valid"); }

}  // namespace

void FakeAuthService::AddUser(const std::string& id, const std::string& email) {
  std::lock_guard lock(mutex_);
  emails_[id] = email;
}

void FakeAuthService::AddVm(const std::string& name, const std::string& id) {
  std::lock_guard lock(mutex_);
  vm_ids_[name] = id;
}

void FakeAuthService::SetNow(int64_t now) {
  std::lock_guard lock(mutex_);
  now_ = now;
}

int FakeAuthService::token_checks() const {
  std::lock_guard lock(mutex_);
  return token_checks_;
}

Result<void> FakeAuthService::CheckSource(const std::string& source) const {
  auto wrong = wrong_.find(source);
  if (wrong != wrong_.end() && wrong->second >= kMaxWrongSecrets) {
    return ResourceExhausted("too many wrong secrets from " + source);
  }
  return {};
}

Result<void> FakeAuthService::Wrong(const std::string& source) {
  ++wrong_[source];
  return WrongSecret();
}

Identity FakeAuthService::IdentityOf(const std::string& user_id) const {
  auto email = emails_.find(user_id);
  return Identity{user_id, email == emails_.end() ? "" : email->second, ""};
}

const FakeAuthService::Session* FakeAuthService::LiveSession(std::string_view id,
                                                             std::string_view host) const {
  auto session = sessions_.find(id);
  if (session == sessions_.end() || session->second.host != host ||
      session->second.expires_at <= now_) {
    return nullptr;
  }
  return &session->second;
}

std::string FakeAuthService::Secret(std::string_view kind) {
  return std::string(kind) + "-" + std::to_string(++counter_);
}

SessionGrant FakeAuthService::NewSession(const std::string& user_id, const std::string& host,
                                         const std::string& parent) {
  std::string id = Secret("session");
  int64_t expires_at = now_ + kSessionLifetime;
  sessions_[id] = Session{user_id, host, parent, expires_at};
  return SessionGrant{id, expires_at, IdentityOf(user_id)};
}

Result<controller::LoginLink> FakeAuthService::CreateLoginLink(const std::string& user_id) {
  std::lock_guard lock(mutex_);
  if (!emails_.contains(user_id)) return NotFound("no user " + user_id);
  std::string secret = Secret("login");
  links_[secret] = Pending{user_id, domain_, now_ + kLinkLifetime};
  return controller::LoginLink{"https://" + domain_ + "/login/" + secret, now_ + kLinkLifetime};
}

Result<SessionGrant> FakeAuthService::RedeemLoginLink(std::string_view secret,
                                                      const std::string& source) {
  std::lock_guard lock(mutex_);
  if (auto ok = CheckSource(source); !ok.ok()) return ok.error();
  auto link = links_.find(secret);
  if (link == links_.end() || link->second.expires_at <= now_) return Wrong(source).error();
  std::string user_id = link->second.user_or_session;
  links_.erase(link);
  return NewSession(user_id, domain_, "");
}

Result<Identity> FakeAuthService::AuthenticateSession(std::string_view session_id,
                                                      std::string_view host) {
  std::lock_guard lock(mutex_);
  const Session* session = LiveSession(session_id, host);
  if (!session) return WrongSecret();
  return IdentityOf(session->user_id);
}

Result<std::string> FakeAuthService::CreateHostTicket(std::string_view session_id,
                                                      std::string_view host) {
  std::lock_guard lock(mutex_);
  if (!LiveSession(session_id, domain_)) return WrongSecret();
  if (host.empty() || host == domain_) return InvalidArgument("not a VM host");
  std::string ticket = Secret("ticket");
  tickets_[ticket] = Pending{std::string(session_id), std::string(host), now_ + kTicketLifetime};
  return ticket;
}

Result<SessionGrant> FakeAuthService::RedeemHostTicket(std::string_view ticket,
                                                       std::string_view host,
                                                       const std::string& source) {
  std::lock_guard lock(mutex_);
  if (auto ok = CheckSource(source); !ok.ok()) return ok.error();
  auto found = tickets_.find(ticket);
  if (found == tickets_.end() || found->second.host != host || found->second.expires_at <= now_) {
    return Wrong(source).error();
  }
  std::string parent = found->second.user_or_session;
  tickets_.erase(found);
  auto session = sessions_.find(parent);
  if (session == sessions_.end()) return WrongSecret();
  return NewSession(session->second.user_id, std::string(host), parent);
}

Result<void> FakeAuthService::Logout(std::string_view session_id) {
  std::lock_guard lock(mutex_);
  auto session = sessions_.find(session_id);
  if (session == sessions_.end()) return WrongSecret();
  std::string id = session->first;
  std::erase_if(sessions_,
                [&](const auto& entry) { return entry.first == id || entry.second.parent == id; });
  return {};
}

Result<int> FakeAuthService::LogoutEverywhere(const std::string& user_id) {
  std::lock_guard lock(mutex_);
  return static_cast<int>(
      std::erase_if(sessions_, [&](const auto& entry) { return entry.second.user_id == user_id; }));
}

Result<controller::NewToken> FakeAuthService::CreateToken(const std::string& user_id,
                                                          const std::string& vm,
                                                          std::chrono::seconds lifetime) {
  std::lock_guard lock(mutex_);
  if (!emails_.contains(user_id)) return NotFound("no user " + user_id);
  if (lifetime.count() < 0) return InvalidArgument("negative lifetime");
  std::string vm_id;
  if (!vm.empty()) {
    auto found = vm_ids_.find(vm);
    if (found == vm_ids_.end()) return NotFound("no VM named '" + vm + "'");
    vm_id = found->second;
  }
  controller::TokenInfo info{Secret("tokenid"), vm, now_,
                             lifetime.count() == 0 ? 0 : now_ + lifetime.count(), 0};
  std::string secret = Secret("token");
  tokens_[secret] = Token{info, user_id, vm_id};
  return controller::NewToken{info, secret};
}

Result<std::vector<controller::TokenInfo>> FakeAuthService::Tokens(const std::string& user_id) {
  std::lock_guard lock(mutex_);
  std::vector<controller::TokenInfo> tokens;
  for (const auto& [secret, token] : tokens_) {
    if (token.user_id == user_id) tokens.push_back(token.info);
  }
  return tokens;
}

Result<void> FakeAuthService::RemoveToken(const std::string& user_id, const std::string& token_id) {
  std::lock_guard lock(mutex_);
  size_t removed = std::erase_if(tokens_, [&](const auto& entry) {
    return entry.second.user_id == user_id && entry.second.info.id == token_id;
  });
  if (removed == 0) return NotFound("no token " + token_id);
  return {};
}

Result<Identity> FakeAuthService::AuthenticateToken(std::string_view secret,
                                                    const std::string& source) {
  std::lock_guard lock(mutex_);
  ++token_checks_;
  if (auto ok = CheckSource(source); !ok.ok()) return ok.error();
  auto token = tokens_.find(secret);
  if (token == tokens_.end() ||
      (token->second.info.expires_at != 0 && token->second.info.expires_at <= now_)) {
    return Wrong(source).error();
  }
  token->second.info.last_used_at = now_;
  Identity identity = IdentityOf(token->second.user_id);
  identity.vm_id = token->second.vm_id;
  return identity;
}

// Sharing.

void FakeSharingService::AddUser(const std::string& id, const std::string& email) {
  std::lock_guard lock(mutex_);
  users_[id] = email;
}

void FakeSharingService::AddVm(const VmRecord& vm) {
  std::lock_guard lock(mutex_);
  vms_[vm.name] = Vm{vm, false, 80, {}, {}, {}};
}

template <typename Change>
auto FakeSharingService::WithOwned(const std::string& owner, const std::string& name, Change change)
    -> decltype(change(std::declval<Vm&>())) {
  std::lock_guard lock(mutex_);
  auto vm = vms_.find(name);
  if (vm == vms_.end() || vm->second.record.owner != owner) {
    return NotFound("no VM named '" + name + "'");
  }
  return change(vm->second);
}

Result<std::string> FakeSharingService::UserByEmail(const std::string& email) const {
  for (const auto& [id, address] : users_) {
    if (address == email) return id;
  }
  return NotFound("no user with email " + email);
}

Result<void> FakeSharingService::SetPublic(const std::string& owner, const std::string& name,
                                           bool is_public) {
  return WithOwned(owner, name, [&](Vm& vm) -> Result<void> {
    vm.is_public = is_public;
    return {};
  });
}

Result<void> FakeSharingService::Share(const std::string& owner, const std::string& name,
                                       const std::string& email) {
  return WithOwned(owner, name, [&](Vm& vm) -> Result<void> {
    Result<std::string> user = UserByEmail(email);
    if (!user.ok()) return user.error();
    if (*user == owner) return InvalidArgument("the owner's own email");
    if (!vm.shares.insert(*user).second) return AlreadyExists("already shared");
    return {};
  });
}

Result<void> FakeSharingService::Unshare(const std::string& owner, const std::string& name,
                                         const std::string& email) {
  return WithOwned(owner, name, [&](Vm& vm) -> Result<void> {
    Result<std::string> user = UserByEmail(email);
    if (!user.ok() || vm.shares.erase(*user) == 0) return NotFound("not shared");
    return {};
  });
}

Result<controller::ShareLink> FakeSharingService::CreateShareLink(const std::string& owner,
                                                                  const std::string& name) {
  return WithOwned(owner, name, [&](Vm& vm) -> Result<controller::ShareLink> {
    std::string id = "link" + std::to_string(++counter_);
    std::string secret = "share-" + std::to_string(++counter_);
    vm.links[id] = secret;
    link_vms_[secret] = name;
    return controller::ShareLink{id, "https://" + name + "." + domain_ + "/?share=" + secret, 0};
  });
}

Result<void> FakeSharingService::RemoveShareLink(const std::string& owner, const std::string& name,
                                                 const std::string& link_id) {
  return WithOwned(owner, name, [&](Vm& vm) -> Result<void> {
    auto link = vm.links.find(link_id);
    if (link == vm.links.end()) return NotFound("no link " + link_id);
    link_vms_.erase(link->second);
    vm.links.erase(link);
    return {};
  });
}

Result<VmRecord> FakeSharingService::RedeemShareLink(std::string_view secret,
                                                     const Identity& identity,
                                                     const std::string& source) {
  std::lock_guard lock(mutex_);
  if (wrong_[source] >= kMaxWrongSecrets) return ResourceExhausted("too many wrong links");
  auto link = link_vms_.find(secret);
  if (link == link_vms_.end()) {
    ++wrong_[source];
    return WrongSecret();
  }
  Vm& vm = vms_.at(link->second);
  std::erase_if(vm.links, [&](const auto& entry) { return entry.second == secret; });
  link_vms_.erase(link);
  if (identity.user_id != vm.record.owner) vm.shares.insert(identity.user_id);
  return vm.record;
}

Result<controller::SharingInfo> FakeSharingService::Sharing(const std::string& owner,
                                                            const std::string& name) {
  return WithOwned(owner, name, [&](Vm& vm) -> Result<controller::SharingInfo> {
    controller::SharingInfo info;
    info.is_public = vm.is_public;
    for (const std::string& id : vm.shares) info.users.push_back(User{id, id, users_[id], 0});
    for (const auto& [id, secret] : vm.links) info.links.push_back({id, "", 0});
    info.web_port = vm.web_port;
    info.domains.assign(vm.domains.begin(), vm.domains.end());
    return info;
  });
}

Result<void> FakeSharingService::SetWebPort(const std::string& owner, const std::string& name,
                                            uint16_t port) {
  return WithOwned(owner, name, [&](Vm& vm) -> Result<void> {
    vm.web_port = port == 0 ? 80 : port;
    return {};
  });
}

Result<void> FakeSharingService::AddDomain(const std::string& owner, const std::string& name,
                                           const std::string& domain) {
  return WithOwned(owner, name, [&](Vm& vm) -> Result<void> {
    for (const auto& [other, entry] : vms_) {
      if (entry.domains.contains(domain)) return AlreadyExists("domain " + domain + " is taken");
    }
    vm.domains.insert(domain);
    return {};
  });
}

Result<void> FakeSharingService::RemoveDomain(const std::string& owner, const std::string& name,
                                              const std::string& domain) {
  return WithOwned(owner, name, [&](Vm& vm) -> Result<void> {
    if (vm.domains.erase(domain) == 0) return NotFound("no domain " + domain);
    return {};
  });
}

Result<std::vector<std::string>> FakeSharingService::Domains(const std::string& owner,
                                                             const std::string& name) {
  return WithOwned(owner, name, [&](Vm& vm) -> Result<std::vector<std::string>> {
    return std::vector<std::string>(vm.domains.begin(), vm.domains.end());
  });
}

Result<WebRoute> FakeSharingService::Route(const Vm* vm, uint16_t port,
                                           const Identity* identity) const {
  auto refused = [&]() -> Error {
    if (!identity) return Unauthenticated("sign in first");
    return NotFound("no VM there");
  };
  if (!vm) return refused();
  bool owner = identity && identity->user_id == vm->record.owner &&
               (identity->vm_id.empty() || identity->vm_id == vm->record.id);
  bool shared = identity && identity->vm_id.empty() && vm->shares.contains(identity->user_id);
  bool allowed = port == 0 ? (vm->is_public || owner || shared) : owner;
  if (!allowed) return refused();
  return WebRoute{vm->record, port == 0 ? vm->web_port : port, vm->is_public, owner};
}

Result<WebRoute> FakeSharingService::RouteWeb(std::string_view vm_name, uint16_t port,
                                              const Identity* identity) {
  std::lock_guard lock(mutex_);
  auto vm = vms_.find(vm_name);
  return Route(vm == vms_.end() ? nullptr : &vm->second, port, identity);
}

Result<WebRoute> FakeSharingService::RouteDomain(std::string_view domain,
                                                 const Identity* identity) {
  std::lock_guard lock(mutex_);
  for (const auto& [name, vm] : vms_) {
    if (vm.domains.contains(std::string(domain))) return Route(&vm, 0, identity);
  }
  return Route(nullptr, 0, identity);
}

bool FakeSharingService::IsCustomDomain(std::string_view domain) {
  std::lock_guard lock(mutex_);
  return std::any_of(vms_.begin(), vms_.end(), [&](const auto& entry) {
    return entry.second.domains.contains(std::string(domain));
  });
}

}  // namespace vmctl::testing
