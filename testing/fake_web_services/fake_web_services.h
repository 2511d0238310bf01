#ifndef VMCTL_TESTING_FAKE_WEB_SERVICES_FAKE_WEB_SERVICES_H_
#define VMCTL_TESTING_FAKE_WEB_SERVICES_FAKE_WEB_SERVICES_H_

#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "controller/auth_service.h"
#include "controller/sharing_service.h"

namespace vmctl::testing {

// In-memory AuthService and SharingService for unit tests of the web front ends: the documented
// semantics (single-use secrets, host-bound sessions, kUnauthenticated for unknown or used
// secrets, kResourceExhausted after kMaxWrongSecrets wrong ones from one source, identical
// answers for missing and hidden VMs) without a store. Secrets are predictable ("login-1",
// "ticket-2"...) so tests can replay and guess them. Thread-safe.

inline constexpr int kMaxWrongSecrets = 3;

class FakeAuthService final : public controller::AuthService {
 public:
  // `domain` is DOMAIN: the host whose sessions login links create and tickets derive from.
  explicit FakeAuthService(std::string domain) : domain_(std::move(domain)) {}

  void AddUser(const std::string& id, const std::string& email);
  // A VM `token new --vm NAME` may name.
  void AddVm(const std::string& name, const std::string& id);
  void SetNow(int64_t now);
  // Calls of AuthenticateToken so far (so tests can tell the token was looked at).
  int token_checks() const;

  Result<controller::LoginLink> CreateLoginLink(const std::string& user_id) override;
  Result<controller::SessionGrant> RedeemLoginLink(std::string_view secret,
                                                   const std::string& source) override;
  Result<controller::Identity> AuthenticateSession(std::string_view session_id,
                                                   std::string_view host) override;
  Result<std::string> CreateHostTicket(std::string_view session_id, std::string_view host) override;
  Result<controller::SessionGrant> RedeemHostTicket(std::string_view ticket, std::string_view host,
                                                    const std::string& source) override;
  Result<void> Logout(std::string_view session_id) override;
  Result<int> LogoutEverywhere(const std::string& user_id) override;
  Result<controller::NewToken> CreateToken(const std::string& user_id, const std::string& vm,
                                           std::chrono::seconds lifetime) override;
  Result<std::vector<controller::TokenInfo>> Tokens(const std::string& user_id) override;
  Result<void> RemoveToken(const std::string& user_id, const std::string& token_id) override;
  Result<controller::Identity> AuthenticateToken(std::string_view secret,
                                                 const std::string& source) override;

  static constexpr int64_t kLinkLifetime = 300;
  static constexpr int64_t kSessionLifetime = 7 * 24 * 3600;
  static constexpr int64_t kTicketLifetime = 120;

 private:
  struct Session {
    std::string user_id;
    std::string host;
    std::string parent;  // the DOMAIN session a host session derives from
    int64_t expires_at = 0;
  };
  struct Pending {  // a login link or a host ticket
    std::string user_or_session;
    std::string host;
    int64_t expires_at = 0;
  };
  struct Token {
    controller::TokenInfo info;
    std::string user_id;
    std::string vm_id;
  };

  // kResourceExhausted once `source` has presented too many wrong secrets; counts this one.
  Result<void> Wrong(const std::string& source);
  Result<void> CheckSource(const std::string& source) const;
  controller::Identity IdentityOf(const std::string& user_id) const;
  controller::SessionGrant NewSession(const std::string& user_id, const std::string& host,
                                      const std::string& parent);
  std::string Secret(std::string_view kind);
  // The unexpired session `id` of `host`, or null.
  const Session* LiveSession(std::string_view id, std::string_view host) const;

  const std::string domain_;
  mutable std::mutex mutex_;
  int64_t now_ = 1'000'000;
  int counter_ = 0;
  int token_checks_ = 0;
  std::map<std::string, std::string> emails_;  // user id -> email
  std::map<std::string, std::string> vm_ids_;  // VM name -> id
  std::map<std::string, Pending, std::less<>> links_;
  std::map<std::string, Pending, std::less<>> tickets_;
  std::map<std::string, Session, std::less<>> sessions_;
  std::map<std::string, Token, std::less<>> tokens_;  // by secret
  std::map<std::string, int> wrong_;                  // by source
};

class FakeSharingService final : public controller::SharingService {
 public:
  explicit FakeSharingService(std::string domain) : domain_(std::move(domain)) {}

  void AddUser(const std::string& id, const std::string& email);
  // A VM (its id, owner and name set), private, with web port 80.
  void AddVm(const VmRecord& vm);

  Result<void> SetPublic(const std::string& owner, const std::string& name,
                         bool is_public) override;
  Result<void> Share(const std::string& owner, const std::string& name,
                     const std::string& email) override;
  Result<void> Unshare(const std::string& owner, const std::string& name,
                       const std::string& email) override;
  Result<controller::ShareLink> CreateShareLink(const std::string& owner,
                                                const std::string& name) override;
  Result<void> RemoveShareLink(const std::string& owner, const std::string& name,
                               const std::string& link_id) override;
  Result<VmRecord> RedeemShareLink(std::string_view secret, const controller::Identity& identity,
                                   const std::string& source) override;
  Result<controller::SharingInfo> Sharing(const std::string& owner,
                                          const std::string& name) override;
  Result<void> SetWebPort(const std::string& owner, const std::string& name,
                          uint16_t port) override;
  Result<void> AddDomain(const std::string& owner, const std::string& name,
                         const std::string& domain) override;
  Result<void> RemoveDomain(const std::string& owner, const std::string& name,
                            const std::string& domain) override;
  Result<std::vector<std::string>> Domains(const std::string& owner,
                                           const std::string& name) override;
  Result<controller::WebRoute> RouteWeb(std::string_view vm_name, uint16_t port,
                                        const controller::Identity* identity) override;
  Result<controller::WebRoute> RouteDomain(std::string_view domain,
                                           const controller::Identity* identity) override;
  bool IsCustomDomain(std::string_view domain) override;

 private:
  struct Vm {
    VmRecord record;
    bool is_public = false;
    uint16_t web_port = 0;
    std::set<std::string> shares;  // user ids
    std::set<std::string> domains;
    std::map<std::string, std::string> links;  // link id -> secret
  };

  // `change(vm)` under the lock for `owner`'s VM `name`, else kNotFound.
  template <typename Change>
  auto WithOwned(const std::string& owner, const std::string& name, Change change)
      -> decltype(change(std::declval<Vm&>()));
  Result<std::string> UserByEmail(const std::string& email) const;
  Result<controller::WebRoute> Route(const Vm* vm, uint16_t port,
                                     const controller::Identity* identity) const;

  const std::string domain_;
  std::mutex mutex_;
  int counter_ = 0;
  std::map<std::string, std::string> users_;  // id -> email
  std::map<std::string, Vm, std::less<>> vms_;
  std::map<std::string, std::string, std::less<>> link_vms_;  // secret -> VM name
  std::map<std::string, int> wrong_;
};

}  // namespace vmctl::testing

#endif  // VMCTL_TESTING_FAKE_WEB_SERVICES_FAKE_WEB_SERVICES_H_
