#ifndef VMCTL_CONTROLLER_AUTH_SERVICE_H_
#define VMCTL_CONTROLLER_AUTH_SERVICE_H_

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace vmctl::controller {

// Who a web request acts as, from a session cookie or a bearer token.
struct Identity {
  std::string user_id;
  std::string email;
  // A token limited to one VM (`token new --vm`): the id of that VM; empty for sessions and for
  // tokens good for everything the user may do.
  std::string vm_id;
};

// A one-time login URL (`ssh host login`).
struct LoginLink {
  std::string url;  // options' web URL + "/login/" + secret
  int64_t expires_at = 0;
};

// A session the proxy hands to a browser as an opaque cookie value.
struct SessionGrant {
  std::string session_id;  // the cookie value; only its hash is stored
  int64_t expires_at = 0;
  Identity identity;
};

struct TokenInfo {
  std::string id;  // public handle for `token rm`, not the secret
  std::string vm;  // the VM's name for a VM-limited token, else empty
  int64_t created_at = 0;
  int64_t expires_at = 0;  // 0: never
  int64_t last_used_at = 0;
};

struct NewToken {
  TokenInfo info;
  std::string secret;  // shown once; only its hash is stored
};

// Authentication for the web front ends (HTTPS proxy, web UI, the HTTPS API): one-time login
// links, browser sessions (one per host: DOMAIN gets one at login, each VM host its own through a
// single-use host ticket, so no cookie is ever set for .DOMAIN), and bearer tokens for programs.
// Sessions and tokens live in the store, as hashes of their secrets; every secret is at least
// 128 bits from a CSPRNG, compared in constant time.
//
// Threading: thread-safe; calls may block on the store (the proxy calls them off its event loop).
// Errors: kUnauthenticated for a secret that is unknown, used, expired or revoked (one message for
// all, so a caller learns nothing about which); kResourceExhausted when `source` (the client's
// address) presented too many wrong secrets lately; kNotFound (unknown user, token id or VM);
// kInvalidArgument (a bad lifetime or host); kInternal (store failures).
class AuthService {
 public:
  virtual ~AuthService() = default;

  // A login URL for `user_id`, valid for a few minutes and once.
  virtual Result<LoginLink> CreateLoginLink(const std::string& user_id) = 0;
  // Consumes the secret of a login URL: a session for the domain's own host.
  virtual Result<SessionGrant> RedeemLoginLink(std::string_view secret,
                                               const std::string& source) = 0;
  // The identity of a session cookie presented on `host` (a session is good only on the host it
  // was issued for).
  virtual Result<Identity> AuthenticateSession(std::string_view session_id,
                                               std::string_view host) = 0;
  // For a session of the domain's own host: a single-use ticket, living about two minutes, that
  // RedeemHostTicket on `host` (a VM's host name) turns into a session of that host.
  virtual Result<std::string> CreateHostTicket(std::string_view session_id,
                                               std::string_view host) = 0;
  virtual Result<SessionGrant> RedeemHostTicket(std::string_view ticket, std::string_view host,
                                                const std::string& source) = 0;
  // Ends a session and the host sessions derived from it (the logout button).
  virtual Result<void> Logout(std::string_view session_id) = 0;
  // Ends every session of the user (`ssh host logout`); returns how many.
  virtual Result<int> LogoutEverywhere(const std::string& user_id) = 0;

  // `token new [--vm VM] [--expires DURATION]`: a zero lifetime never expires. `vm` names one of
  // the user's own VMs, or is empty.
  virtual Result<NewToken> CreateToken(const std::string& user_id, const std::string& vm,
                                       std::chrono::seconds lifetime) = 0;
  virtual Result<std::vector<TokenInfo>> Tokens(const std::string& user_id) = 0;
  virtual Result<void> RemoveToken(const std::string& user_id, const std::string& token_id) = 0;
  // The identity of an `Authorization: Bearer` secret.
  virtual Result<Identity> AuthenticateToken(std::string_view secret,
                                             const std::string& source) = 0;
};

}  // namespace vmctl::controller

#endif  // VMCTL_CONTROLLER_AUTH_SERVICE_H_
