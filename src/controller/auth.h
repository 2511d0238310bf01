#ifndef VMCTL_CONTROLLER_AUTH_H_
#define VMCTL_CONTROLLER_AUTH_H_

#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>

#include "controller/auth_service.h"
#include "store/store.h"

namespace vmctl::controller {

struct AuthOptions {
  // The domain's own host name, where login links are redeemed and DOMAIN sessions live.
  std::string domain = "vmctl.localhost";
  // Where browsers reach DOMAIN; login links are this + "/login/" + secret.
  std::string web_url = "https://vmctl.localhost:8443";
  std::chrono::seconds login_link_lifetime = std::chrono::minutes(5);
  std::chrono::seconds session_lifetime = std::chrono::hours(24 * 30);
  std::chrono::seconds host_ticket_lifetime = std::chrono::minutes(2);
  // Wrong secrets a source may present in `wrong_secret_window` before it is refused.
  int max_wrong_secrets = 20;
  std::chrono::seconds wrong_secret_window = std::chrono::minutes(10);
  // Seconds since the epoch; tests move it.
  std::function<int64_t()> now;
};

// Secrets are 32 bytes from OpenSSL's CSPRNG in unpadded base64url (43 characters); tokens carry
// kTokenPrefix in front, so they are recognizable in a leaked file.
inline constexpr std::string_view kTokenPrefix = "vmctl_";
// Whether `text` has the form of a secret (after any prefix): a cheap refusal of garbage before
// the store is asked. Pure.
bool IsWellFormedSecret(std::string_view text);

// AuthService on the store. Does not own the store. Lookups go by the SHA-256 of the presented
// secret, so no stored secret is ever compared byte by byte. The wrong-secret counts are kept in
// memory: a restart forgets them.
class Auth final : public AuthService {
 public:
  Auth(Store& store, AuthOptions options);

  Result<LoginLink> CreateLoginLink(const std::string& user_id) override;
  Result<SessionGrant> RedeemLoginLink(std::string_view secret, const std::string& source) override;
  Result<Identity> AuthenticateSession(std::string_view session_id, std::string_view host) override;
  Result<std::string> CreateHostTicket(std::string_view session_id, std::string_view host) override;
  Result<SessionGrant> RedeemHostTicket(std::string_view ticket, std::string_view host,
                                        const std::string& source) override;
  Result<void> Logout(std::string_view session_id) override;
  Result<int> LogoutEverywhere(const std::string& user_id) override;
  Result<NewToken> CreateToken(const std::string& user_id, const std::string& vm,
                               std::chrono::seconds lifetime) override;
  Result<std::vector<TokenInfo>> Tokens(const std::string& user_id) override;
  Result<void> RemoveToken(const std::string& user_id, const std::string& token_id) override;
  Result<Identity> AuthenticateToken(std::string_view secret, const std::string& source) override;

 private:
  int64_t Now() const;
  // kResourceExhausted while `source` is over its wrong-secret limit.
  Result<void> CheckSource(const std::string& source);
  // Counts a wrong secret from `source`.
  void CountWrong(const std::string& source);
  // A live session of `host`, or kUnauthenticated.
  Result<WebSession> LiveSession(std::string_view session_id, std::string_view host);
  Result<SessionGrant> StartSession(const std::string& user_id, const std::string& host,
                                    const std::string& parent_hash, int64_t expires_at);
  Result<Identity> IdentityOf(const std::string& user_id, std::string vm_id);
  Result<TokenInfo> Info(const ApiToken& token);

  Store& store_;
  AuthOptions options_;
  std::mutex mu_;                                     // guards wrong_
  std::map<std::string, std::deque<int64_t>> wrong_;  // source -> times, oldest first
};

}  // namespace vmctl::controller

#endif  // VMCTL_CONTROLLER_AUTH_H_
