#ifndef VMCTL_PROXY_GATEKEEPER_H_
#define VMCTL_PROXY_GATEKEEPER_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "base/result.h"
#include "controller/auth_service.h"
#include "controller/sharing_service.h"
#include "model/host_name.h"
#include "proxy/access.h"
#include "proxy/access_url.h"

namespace vmctl::proxy {

// A cookie of DOMAIN alone: where the browser goes once the login link has set its session
// ("/auth?host=...&next=..."), set by the login page of the cross-host round trip.
inline constexpr std::string_view kContinueCookie = "__Host-vmctl-continue";

struct GatekeeperOptions {
  std::string domain = "vmctl.localhost";  // valid and lowercase
  // Where browsers reach DOMAIN ("https://vmctl.localhost:8443"): absolute URLs to DOMAIN and to
  // VM hosts take its scheme and port.
  std::string web_url = "https://vmctl.localhost:8443";
  // How users reach the SSH gateway ("ssh -p 2222 vmctl.localhost"), for the login page.
  std::string ssh_command = "ssh -p 2222 vmctl.localhost";
  // Seconds since the epoch (cookie lifetimes); the system clock when empty.
  std::function<int64_t()> now;
  // How long DecideCached gives a forward to a VM again without asking the services; zero: never.
  std::chrono::milliseconds decision_ttl{1000};
  // The clock of decision_ttl, called concurrently; steady_clock::now when empty.
  std::function<std::chrono::steady_clock::time_point()> steady_now;
};

// The Access of the HTTPS front end (docs/proxy.md, "Access"): DOMAIN's pages (login page,
// /login/SECRET from `ssh host login`, /logout, /auth of the cross-host round trip), the HTTPS API
// under DOMAIN/api/v1/ (bearer token or session), and each VM host (VM.DOMAIN, VM--PORT.DOMAIN,
// custom domains): public, a session of that host or a bearer token; share links.
//
// DecideCached answers from the forwards to VMs that Decide made in the last decision_ttl, for
// the same host, client, session cookie and Authorization header: a request to a VM's app is
// decided on the proxy's event loop, which must not block on the store, without the hand-off to
// Decide's threads that halves the proxy's throughput. What the gatekeeper itself changes (a
// login, a host session, a logout, a share link redeemed) empties the cache at once; a revocation
// made elsewhere (`share rm`, `share set-private`, `domain rm`, `logout` or `token rm`, over SSH
// or the API; a VM stopped or removed) reaches requests to VMs' apps within decision_ttl.
// Refusals, DOMAIN's pages and the API, /__vmctl/ paths and share links are never cached.
//
// Does not own the services, which must outlive it. Threading: Decide and DecideCached are
// thread-safe (the cache has its own lock, held for short map operations alone); Decide blocks on
// the services, DecideCached never does.
class Gatekeeper final : public Access {
 public:
  // The cache's bound: a full cache first drops its expired decisions, and all of them when that
  // frees less than a quarter of it, so that distinct credentials cannot grow it and a sweep
  // comes at most once per quarter of it.
  static constexpr size_t kMaxCachedDecisions = 4096;

  // kInvalidArgument for a web_url that is not http(s)://HOST[:PORT].
  static Result<std::unique_ptr<Gatekeeper>> Create(GatekeeperOptions options,
                                                    controller::AuthService& auth,
                                                    controller::SharingService& sharing);

  Decision Decide(const boost::beast::http::request_header<>& head, std::string_view host,
                  const std::string& client) override;
  std::shared_ptr<const Decision> DecideCached(const boost::beast::http::request_header<>& head,
                                               std::string_view host,
                                               const std::string& client) override;

 private:
  struct Request;
  struct Credentials;
  // Every input a forward to a VM is decided from, for a request that is neither under /__vmctl/
  // nor a share link (whose method matters) and has at most one Authorization header. The client
  // counts because a rate-limited address is refused even a good token.
  struct CacheKey {
    std::string host;
    std::string client;
    std::string session;        // the session cookie's value; empty without one
    std::string authorization;  // the Authorization header; empty without one
    bool operator==(const CacheKey&) const = default;
  };
  struct CacheKeyHash {
    size_t operator()(const CacheKey& key) const;
  };
  struct CachedDecision {
    std::shared_ptr<const Decision> decision;  // shared, so that a hit copies it outside the lock
    std::chrono::steady_clock::time_point decided_at;  // before the services were asked
  };

  Gatekeeper(GatekeeperOptions options, WebOrigin origin, controller::AuthService& auth,
             controller::SharingService& sharing);

  std::optional<WebHost> Classify(std::string_view host) const;
  Credentials ReadCredentials(const Request& request, bool foreign_authorization) const;
  std::optional<controller::Identity> DomainSession(const Request& request) const;
  bool IsLoginHost(std::string_view host) const;
  bool IsSameOrigin(const Request& request) const;
  std::string HostLoginUrl(std::string_view host, std::string_view next) const;
  // The Set-Cookie value for a granted session, or the grant's error.
  Result<std::string> SessionCookie(Result<controller::SessionGrant> grant) const;

  // The request's key, or nothing when caching is off or the request is not cached.
  std::optional<CacheKey> CacheKeyOf(const boost::beast::http::request_header<>& head,
                                     std::string_view host, const std::string& client) const;
  // Caches a forward, unless the cache was emptied after `generation` was read: the decision
  // may predate that change.
  void Remember(CacheKey key, const Decision& decision,
                std::chrono::steady_clock::time_point decided_at, uint64_t generation);
  // After the gatekeeper changed who may reach what: no decision made before is given again.
  void ForgetDecisions();

  Decision DecideApex(const Request& request);
  Decision DecideApi(const Request& request) const;
  bool TokenMayReach(const controller::Identity& identity, std::string_view path) const;
  Decision HomePage(const Request& request) const;
  Decision RedeemLoginLink(const Request& request);
  Decision Logout(const Request& request);
  Decision StartHostLogin(const Request& request) const;
  bool RevealsIdentity(std::string_view host, const controller::Identity& identity) const;

  Decision DecideVmHost(const Request& request, const WebHost& name);
  Decision RedeemHostTicket(const Request& request);
  Decision RedeemShareLink(const Request& request, const Credentials& credentials,
                           const std::string& secret);
  Decision LoginRequired(const Request& request, const Credentials& credentials) const;

  GatekeeperOptions options_;
  WebOrigin origin_;
  controller::AuthService& auth_;
  controller::SharingService& sharing_;

  std::mutex cache_mutex_;
  // Guarded by cache_mutex_. The generation counts the times the cache was emptied.
  uint64_t cache_generation_ = 0;
  std::unordered_map<CacheKey, CachedDecision, CacheKeyHash> cache_;
};

}  // namespace vmctl::proxy

#endif  // VMCTL_PROXY_GATEKEEPER_H_
