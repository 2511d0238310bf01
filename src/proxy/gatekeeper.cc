#include "proxy/gatekeeper.h"

#include <spdlog/spdlog.h>

#include <boost/beast/core/string.hpp>
#include <boost/container_hash/hash.hpp>
#include <chrono>
#include <nlohmann/json.hpp>
#include <utility>

#include "model/vm.h"
#include "proxy/cookies.h"
#include "proxy/login_pages.h"

namespace vmctl::proxy {

namespace http = boost::beast::http;
using controller::Identity;
using controller::SessionGrant;

namespace {

using Response = http::response<http::string_body>;
using Head = http::request_header<>;

constexpr std::string_view kChallenge = "Bearer realm=\"vmctl\"";
// Long enough to run `ssh host login` and open its link.
constexpr std::chrono::seconds kContinueLifetime{900};
constexpr std::string_view kApiPrefix = "/api";
// Sessions and tokens are far shorter. Longer credentials (an app's own Authorization scheme) are
// not cached, so that kMaxCachedDecisions entries hold a few MB at most, not a request head each.
constexpr size_t kMaxCachedCredentialBytes = 1024;

bool IsGetOrHead(const Head& head) {
  return head.method() == http::verb::get || head.method() == http::verb::head;
}

bool KeepAlive(const Head& head) {
  http::token_list connection(head[http::field::connection]);
  return head.version() < 11 ? connection.exists("keep-alive") : !connection.exists("close");
}

// Every answer of the gatekeeper is private to its request: never cached, and never handing the
// secrets in its URLs to another site through Referer.
Response MakeResponse(const Head& head, http::status status, std::string_view content_type,
                      std::string body) {
  Response response{status, head.version()};
  response.keep_alive(KeepAlive(head));
  response.set(http::field::cache_control, "no-store");
  response.set("Referrer-Policy", "no-referrer");
  response.set("X-Content-Type-Options", "nosniff");
  if (!content_type.empty()) response.set(http::field::content_type, content_type);
  response.body() = std::move(body);
  response.prepare_payload();
  // A HEAD answer keeps the Content-Length of the GET answer, without its body.
  if (head.method() == http::verb::head) response.body().clear();
  return response;
}

Response Html(const Head& head, http::status status, std::string body) {
  Response response = MakeResponse(head, status, "text/html; charset=utf-8", std::move(body));
  response.set("Content-Security-Policy",
               "default-src 'none'; form-action 'self'; frame-ancestors 'none'");
  return response;
}

// A page whose form POSTs back to DOMAIN, where the request must carry `Origin` (logout,
// consent). Browsers send `Origin: null` for a POST from a page under `no-referrer` (Fetch,
// "serializing a request origin"), so such a page sends its referrer to its own origin alone.
Response FormPage(const Head& head, std::string body) {
  Response response = Html(head, http::status::ok, std::move(body));
  response.set("Referrer-Policy", "same-origin");
  return response;
}

Response Text(const Head& head, http::status status, std::string_view text) {
  return MakeResponse(head, status, "text/plain; charset=utf-8", std::string(text) + "\n");
}

Response Redirect(const Head& head, http::status status, std::string_view location) {
  Response response = MakeResponse(head, status, "", "");
  response.set(http::field::location, location);
  return response;
}

Decision Respond(Response response) {
  Decision decision;
  decision.response = std::move(response);
  return decision;
}

Decision MethodNotAllowed(const Head& head, std::string_view allow) {
  Response response = Text(head, http::status::method_not_allowed, "method not allowed");
  response.set(http::field::allow, allow);
  return Respond(std::move(response));
}

// One page for a VM that does not exist and for one the user may not see, the same bytes
// whatever the reason, so that nobody learns which names exist.
Decision NoSuchVm(const Head& head) {
  return Respond(Html(
      head, http::status::not_found,
      MessagePage("No such VM", "There is no VM at this address, or you may not use it.", "")));
}

Decision NoSuchPage(const Head& head) {
  return Respond(
      Html(head, http::status::not_found, MessagePage("Not found", "There is no such page.", "")));
}

Decision TooManyAttempts(const Head& head) {
  return Respond(
      Html(head, http::status::too_many_requests,
           MessagePage("Too many attempts",
                       "Too many wrong links or tokens came from your address lately. Wait a few "
                       "minutes, then try again.",
                       "")));
}

Decision InternalError(const Head& head, const Error& error) {
  spdlog::error("proxy: access check failed: {}", error.message());
  return Respond(Html(head, http::status::internal_server_error,
                      MessagePage("Something went wrong",
                                  "vmctl could not check this request. Try again later.", "")));
}

// The answer for a service's error that is not a plain refusal: too many wrong secrets from this
// client, or a failure of the service itself.
std::optional<Decision> ServiceTrouble(const Head& head, const Error& error) {
  if (error.code() == ErrorCode::kResourceExhausted) return TooManyAttempts(head);
  if (error.code() == ErrorCode::kInternal) return InternalError(head, error);
  return std::nullopt;
}

std::string ExpiredCookie(std::string_view name) {
  return BuildSetCookie(name, "", std::chrono::seconds(0));
}

// 401 with the challenge, for programs (never a redirect).
Decision Unauthorized(const Head& head, std::string_view why) {
  Response response = Text(head, http::status::unauthorized, why);
  response.set(http::field::www_authenticate, kChallenge);
  return Respond(std::move(response));
}

// The API's own error shape ({"error": {"code", "message"}}, docs/api.md).
Decision ApiError(const Head& head, const Error& error) {
  if (error.code() == ErrorCode::kInternal) spdlog::error("proxy: API access: {}", error.message());
  nlohmann::json body = {
      {"error", {{"code", ErrorCodeName(error.code())}, {"message", error.message()}}}};
  Response response = MakeResponse(head, static_cast<http::status>(error.HttpStatus()),
                                   "application/json", body.dump() + "\n");
  if (error.code() == ErrorCode::kUnauthenticated) {
    response.set(http::field::www_authenticate, kChallenge);
  }
  return Respond(std::move(response));
}

// The value of the first cookie called `name` in the request's Cookie headers; empty if none.
std::string RequestCookie(const Head& head, std::string_view name) {
  auto [field, end] = head.equal_range(http::field::cookie);
  for (; field != end; ++field) {
    if (auto value = FindCookie(field->value(), name)) return std::string(*value);
  }
  return "";
}

std::string SafeNext(std::string_view query) {
  std::optional<std::string> next = QueryParam(query, "next");
  return next && IsSafeRedirectPath(*next) ? *next : "/";
}

// A target the continue cookie may hold: DOMAIN's own /auth step.
bool IsContinueTarget(std::string_view target) {
  return IsSafeRedirectPath(target) && target.starts_with("/auth?");
}

int64_t SystemNow() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

struct Gatekeeper::Request {
  const Head& head;
  std::string_view host;
  const std::string& client;
  std::string_view target;
  std::string_view path;
  std::string_view query;
};

struct Gatekeeper::Credentials {
  bool has_authorization = false;  // any Authorization header came
  bool bearer = false;             // it was a Bearer token: the proxy's, not forwarded
  std::optional<Identity> identity;
  std::optional<Error> error;  // the token (or the Authorization header) was refused
};

Result<std::unique_ptr<Gatekeeper>> Gatekeeper::Create(GatekeeperOptions options,
                                                       controller::AuthService& auth,
                                                       controller::SharingService& sharing) {
  Result<WebOrigin> origin = ParseWebOrigin(options.web_url);
  if (!origin.ok()) return origin.error();
  if (!options.now) options.now = SystemNow;
  if (!options.steady_now) options.steady_now = std::chrono::steady_clock::now;
  return std::unique_ptr<Gatekeeper>(
      new Gatekeeper(std::move(options), std::move(*origin), auth, sharing));
}

Gatekeeper::Gatekeeper(GatekeeperOptions options, WebOrigin origin, controller::AuthService& auth,
                       controller::SharingService& sharing)
    : options_(std::move(options)), origin_(std::move(origin)), auth_(auth), sharing_(sharing) {}

Decision Gatekeeper::Decide(const Head& head, std::string_view host, const std::string& client) {
  std::string_view target(head.target().data(), head.target().size());
  Target split = SplitTarget(target);
  Request request{head, host, client, target, split.path, split.query};
  std::optional<WebHost> name = Classify(host);
  if (!name) return NoSuchVm(head);
  if (name->kind == WebHost::Kind::kApex) return DecideApex(request);
  std::optional<CacheKey> key = CacheKeyOf(head, host, client);
  if (!key) return DecideVmHost(request, *name);
  // Both before asking the services: the entry's age covers the whole decision, and a change the
  // gatekeeper makes meanwhile keeps the decision out of the cache.
  std::chrono::steady_clock::time_point decided_at = options_.steady_now();
  uint64_t generation;
  {
    std::lock_guard lock(cache_mutex_);
    generation = cache_generation_;
  }
  Decision decision = DecideVmHost(request, *name);
  if (decision.kind == Decision::Kind::kForwardToVm) {
    Remember(std::move(*key), decision, decided_at, generation);
  }
  return decision;
}

std::shared_ptr<const Decision> Gatekeeper::DecideCached(const Head& head, std::string_view host,
                                                         const std::string& client) {
  std::optional<CacheKey> key = CacheKeyOf(head, host, client);
  if (!key) return nullptr;
  std::chrono::steady_clock::time_point now = options_.steady_now();
  std::shared_ptr<const Decision> decision;
  {
    std::lock_guard lock(cache_mutex_);
    auto found = cache_.find(*key);
    if (found == cache_.end() || now - found->second.decided_at >= options_.decision_ttl) {
      return nullptr;
    }
    decision = found->second.decision;
  }
  return decision;
}

size_t Gatekeeper::CacheKeyHash::operator()(const CacheKey& key) const {
  size_t seed = 0;
  for (const std::string* part : {&key.host, &key.client, &key.session, &key.authorization}) {
    boost::hash_combine(seed, *part);
  }
  return seed;
}

std::optional<Gatekeeper::CacheKey> Gatekeeper::CacheKeyOf(const Head& head, std::string_view host,
                                                           const std::string& client) const {
  if (options_.decision_ttl <= std::chrono::milliseconds::zero()) return std::nullopt;
  Target split = SplitTarget(std::string_view(head.target().data(), head.target().size()));
  if (split.path.starts_with("/__vmctl/") || QueryParam(split.query, "share")) return std::nullopt;
  if (head.count(http::field::authorization) > 1) return std::nullopt;
  CacheKey key{std::string(host), client, RequestCookie(head, kSessionCookie),
               std::string(head[http::field::authorization])};
  if (key.session.size() + key.authorization.size() > kMaxCachedCredentialBytes) {
    return std::nullopt;
  }
  return key;
}

void Gatekeeper::Remember(CacheKey key, const Decision& decision,
                          std::chrono::steady_clock::time_point decided_at, uint64_t generation) {
  CachedDecision entry{std::make_shared<const Decision>(decision), decided_at};
  std::lock_guard lock(cache_mutex_);
  if (generation != cache_generation_) return;
  if (cache_.size() >= kMaxCachedDecisions && !cache_.contains(key)) {
    std::chrono::steady_clock::time_point now = options_.steady_now();
    std::erase_if(cache_, [&](const auto& cached) {
      return now - cached.second.decided_at >= options_.decision_ttl;
    });
    if (cache_.size() > kMaxCachedDecisions / 4 * 3) cache_.clear();
  }
  cache_.insert_or_assign(std::move(key), std::move(entry));
}

void Gatekeeper::ForgetDecisions() {
  std::lock_guard lock(cache_mutex_);
  cache_.clear();
  ++cache_generation_;
}

std::optional<WebHost> Gatekeeper::Classify(std::string_view host) const {
  Result<WebHost> name = ParseWebHost(host, options_.domain);
  // Only the canonical spelling (lowercase, no port, no trailing dot): hosts reach here parsed
  // already, or from a query parameter, where another spelling would name a different cookie.
  if (!name.ok() || name->host != host) return std::nullopt;
  return std::move(*name);
}

Gatekeeper::Credentials Gatekeeper::ReadCredentials(const Request& request,
                                                    bool foreign_authorization) const {
  Credentials credentials;
  size_t authorizations = request.head.count(http::field::authorization);
  if (authorizations > 1) {
    credentials.has_authorization = true;
    credentials.error = Unauthenticated("more than one Authorization header");
    return credentials;
  }
  if (authorizations == 1) {
    credentials.has_authorization = true;
    std::string_view value = request.head[http::field::authorization];
    if (std::optional<std::string_view> token = BearerToken(value)) {
      credentials.bearer = true;
      Result<Identity> identity = auth_.AuthenticateToken(*token, request.client);
      if (identity.ok()) {
        credentials.identity = std::move(*identity);
      } else {
        credentials.error = std::move(identity).error();
      }
      return credentials;
    }
    if (!foreign_authorization) {
      credentials.error = Unauthenticated("only Bearer tokens are accepted");
      return credentials;
    }
  }
  // A session that no longer authenticates is no identity, not an error: the browser signs in
  // again and gets a new cookie.
  std::string session = RequestCookie(request.head, kSessionCookie);
  if (!session.empty()) {
    Result<Identity> identity = auth_.AuthenticateSession(session, request.host);
    if (identity.ok()) credentials.identity = std::move(*identity);
  }
  return credentials;
}

std::optional<Identity> Gatekeeper::DomainSession(const Request& request) const {
  std::string session = RequestCookie(request.head, kSessionCookie);
  if (session.empty()) return std::nullopt;
  Result<Identity> identity = auth_.AuthenticateSession(session, options_.domain);
  if (!identity.ok()) return std::nullopt;
  return std::move(*identity);
}

bool Gatekeeper::IsLoginHost(std::string_view host) const {
  std::optional<WebHost> name = Classify(host);
  if (!name) return false;
  switch (name->kind) {
    case WebHost::Kind::kVm:
      return true;
    case WebHost::Kind::kCustom:
      return sharing_.IsCustomDomain(host);
    case WebHost::Kind::kApex:
      return false;
  }
  return false;
}

bool Gatekeeper::IsSameOrigin(const Request& request) const {
  auto origin = request.head.find(http::field::origin);
  return origin != request.head.end() && boost::beast::iequals(origin->value(), origin_.For());
}

std::string Gatekeeper::HostLoginUrl(std::string_view host, std::string_view next) const {
  return origin_.For() + "/auth?host=" + PercentEncode(host) + "&next=" + PercentEncode(next);
}

Result<std::string> Gatekeeper::SessionCookie(Result<SessionGrant> grant) const {
  if (!grant.ok()) return std::move(grant).error();
  if (!IsCookieValue(grant->session_id) || grant->session_id.empty()) {
    return Internal("the session id is not a cookie value");
  }
  return BuildSetCookie(kSessionCookie, grant->session_id,
                        std::chrono::seconds(grant->expires_at - options_.now()));
}

// DOMAIN's own pages and the HTTPS API.

Decision Gatekeeper::DecideApex(const Request& request) {
  std::string_view path = request.path;
  if (path == "/api/v1" || path.starts_with("/api/v1/")) return DecideApi(request);
  if (path == "/") return HomePage(request);
  if (path.starts_with("/login/")) return RedeemLoginLink(request);
  if (path == "/logout") return Logout(request);
  if (path == "/auth") return StartHostLogin(request);
  return NoSuchPage(request.head);
}

Decision Gatekeeper::DecideApi(const Request& request) const {
  const Head& head = request.head;
  Credentials credentials = ReadCredentials(request, /*foreign_authorization=*/false);
  if (credentials.error) return ApiError(head, *credentials.error);
  if (!credentials.identity) {
    return ApiError(head, Unauthenticated("a bearer token (Authorization: Bearer) or a session "
                                          "is required"));
  }
  // Every VM host is same-site with DOMAIN, so SameSite=Lax does not keep a VM's page from
  // sending DOMAIN's cookie along with a POST: a session changes things only for DOMAIN's pages.
  if (!credentials.bearer && !IsGetOrHead(head) && !IsSameOrigin(request)) {
    return ApiError(head, Unauthenticated("a session is accepted only from " + origin_.For() +
                                          "'s own pages (Origin)"));
  }
  if (!credentials.identity->vm_id.empty() && !TokenMayReach(*credentials.identity, request.path)) {
    return ApiError(head, NotFound("not found: this token is limited to one VM"));
  }
  Decision decision;
  decision.kind = Decision::Kind::kForwardToApi;
  decision.identity = std::move(credentials.identity);
  decision.api_target = std::string(request.target.substr(kApiPrefix.size()));
  decision.consumed_authorization = credentials.bearer;
  return decision;
}

// A VM-limited token reaches /api/v1/vms/ITS-VM and what lies below it, nothing else. The rest
// of the path is checked to be plain segments, so that no "..", encoding or empty segment can
// make the API server see another path than the one checked here.
bool Gatekeeper::TokenMayReach(const Identity& identity, std::string_view path) const {
  static constexpr std::string_view kVms = "/api/v1/vms/";
  if (!path.starts_with(kVms)) return false;
  std::string_view rest = path.substr(kVms.size());
  size_t slash = rest.find('/');
  std::string_view vm = rest.substr(0, slash);
  if (!ValidateVmName(vm).ok()) return false;
  while (slash != std::string_view::npos) {
    rest = rest.substr(slash + 1);
    slash = rest.find('/');
    std::string_view segment = rest.substr(0, slash);
    if (segment.empty()) return false;
    for (char c : segment) {
      if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_')) {
        return false;
      }
    }
  }
  Result<controller::WebRoute> route = sharing_.RouteWeb(vm, 0, &identity);
  return route.ok() && route->vm.id == identity.vm_id;
}

Decision Gatekeeper::HomePage(const Request& request) const {
  if (!IsGetOrHead(request.head)) return MethodNotAllowed(request.head, "GET, HEAD");
  if (std::optional<Identity> identity = DomainSession(request)) {
    return Respond(FormPage(request.head, SignedInPage(identity->email)));
  }
  return Respond(Html(request.head, http::status::ok, LoginPage(options_.ssh_command, "")));
}

// GET /login/SECRET, the link `ssh host login` prints: DOMAIN's session, then on to `next`, or
// to where the continue cookie says (the cross-host round trip), or to /.
Decision Gatekeeper::RedeemLoginLink(const Request& request) {
  const Head& head = request.head;
  // Only GET spends the link, so that a HEAD from a link checker cannot.
  if (head.method() != http::verb::get) return MethodNotAllowed(head, "GET");
  std::string_view secret = request.path.substr(std::string_view("/login/").size());
  Result<SessionGrant> grant = secret.empty() || secret.find('/') != std::string_view::npos
                                   ? Result<SessionGrant>(Unauthenticated("no login secret"))
                                   : auth_.RedeemLoginLink(secret, request.client);
  Result<std::string> cookie = SessionCookie(std::move(grant));
  if (!cookie.ok()) {
    if (auto trouble = ServiceTrouble(head, cookie.error())) return *trouble;
    return Respond(Html(head, http::status::forbidden,
                        MessagePage("Login link not valid",
                                    "This login link is not valid: it has expired or was used "
                                    "already. Run " +
                                        options_.ssh_command + " login for a new one.",
                                    "")));
  }
  ForgetDecisions();
  std::string next = "/";
  std::string pending = RequestCookie(head, kContinueCookie);
  if (std::optional<std::string> asked = QueryParam(request.query, "next");
      asked && IsSafeRedirectPath(*asked)) {
    next = *asked;
  } else if (IsContinueTarget(pending)) {
    next = pending;
  }
  Response response = Redirect(head, http::status::found, next);
  response.insert(http::field::set_cookie, *cookie);
  if (!pending.empty()) {
    response.insert(http::field::set_cookie, ExpiredCookie(kContinueCookie));
  }
  return Respond(std::move(response));
}

Decision Gatekeeper::Logout(const Request& request) {
  const Head& head = request.head;
  if (head.method() != http::verb::post) return MethodNotAllowed(head, "POST");
  if (!IsSameOrigin(request)) {
    return Respond(
        Html(head, http::status::forbidden,
             MessagePage("Not signed out", "Sign out with the button on vmctl's page.", "/")));
  }
  std::string session = RequestCookie(head, kSessionCookie);
  if (!session.empty()) {
    Result<void> ended = auth_.Logout(session);
    if (ended.ok()) {
      ForgetDecisions();
    } else if (ended.error().code() == ErrorCode::kInternal) {
      return InternalError(head, ended.error());
    }
  }
  Response response = Redirect(head, http::status::see_other, "/");
  response.insert(http::field::set_cookie, ExpiredCookie(kSessionCookie));
  return Respond(std::move(response));
}

// GET /auth?host=VMHOST&next=PATH: a VM host sends a browser here to get a session of its own.
// Signed in on DOMAIN: a host ticket, and back to VMHOST. Not signed in: the login page, and a
// continue cookie that brings the browser back here once the login link has set the session.
// A public VM of another user learns who signs in on its host; since any page can send a browser
// here, that takes the user's consent: a form that POSTs back here from DOMAIN's own page.
Decision Gatekeeper::StartHostLogin(const Request& request) const {
  const Head& head = request.head;
  if (head.method() != http::verb::get && head.method() != http::verb::post) {
    return MethodNotAllowed(head, "GET, POST");
  }
  std::optional<std::string> host = QueryParam(request.query, "host");
  if (!host || !IsLoginHost(*host)) {
    return Respond(Html(
        head, http::status::bad_request,
        MessagePage("Not a vmctl host", "This sign-in request names no host of this vmctl.", "")));
  }
  std::string next = SafeNext(request.query);
  std::string again = "/auth?host=" + PercentEncode(*host) + "&next=" + PercentEncode(next);
  std::string session = RequestCookie(head, kSessionCookie);
  std::optional<Identity> identity = DomainSession(request);
  if (identity) {
    bool consented = head.method() == http::verb::post && IsSameOrigin(request);
    if (!consented && RevealsIdentity(*host, *identity)) {
      return Respond(FormPage(head, ConsentPage(*host, identity->email, again)));
    }
    Result<std::string> ticket = auth_.CreateHostTicket(session, *host);
    if (ticket.ok()) {
      return Respond(Redirect(
          head, head.method() == http::verb::post ? http::status::see_other : http::status::found,
          origin_.For(*host) + "/__vmctl/auth?ticket=" + PercentEncode(*ticket) +
              "&next=" + PercentEncode(next)));
    }
    if (ticket.error().code() != ErrorCode::kUnauthenticated) {
      return InternalError(head, ticket.error());
    }
  }
  Response response = Html(head, http::status::ok, LoginPage(options_.ssh_command, *host));
  if (IsCookieValue(again)) {
    response.insert(http::field::set_cookie,
                    BuildSetCookie(kContinueCookie, again, kContinueLifetime));
  }
  return Respond(std::move(response));
}

// Whether a session on `host` would tell someone new who `identity` is: the host is a public VM
// of another user (a private VM's app sees only its owner and the users it is shared with).
bool Gatekeeper::RevealsIdentity(std::string_view host, const Identity& identity) const {
  std::optional<WebHost> name = Classify(host);
  if (!name) return false;
  Result<controller::WebRoute> route = name->kind == WebHost::Kind::kVm
                                           ? sharing_.RouteWeb(name->vm, name->port, &identity)
                                           : sharing_.RouteDomain(host, &identity);
  return route.ok() && route->is_public && !route->is_owner;
}

// VM hosts (VM.DOMAIN, VM--PORT.DOMAIN) and custom domains.

Decision Gatekeeper::DecideVmHost(const Request& request, const WebHost& name) {
  const Head& head = request.head;
  if (request.path.starts_with("/__vmctl/")) {
    if (request.path == "/__vmctl/auth") return RedeemHostTicket(request);
    // For apps of public VMs that want to know who is there: the same round trip on demand.
    if (request.path == "/__vmctl/login" && IsGetOrHead(head)) {
      return Respond(
          Redirect(head, http::status::found, HostLoginUrl(request.host, SafeNext(request.query))));
    }
    return NoSuchPage(head);
  }
  Credentials credentials = ReadCredentials(request, /*foreign_authorization=*/true);
  if (credentials.error) {
    if (auto trouble = ServiceTrouble(head, *credentials.error)) return *trouble;
    return Unauthorized(head, "the bearer token is not valid");
  }
  if (std::optional<std::string> share = QueryParam(request.query, "share");
      share && head.method() == http::verb::get) {
    return RedeemShareLink(request, credentials, *share);
  }
  const Identity* identity = credentials.identity ? &*credentials.identity : nullptr;
  Result<controller::WebRoute> route = name.kind == WebHost::Kind::kVm
                                           ? sharing_.RouteWeb(name.vm, name.port, identity)
                                           : sharing_.RouteDomain(request.host, identity);
  if (!route.ok()) {
    switch (route.error().code()) {
      case ErrorCode::kUnauthenticated:
        if (!identity) return LoginRequired(request, credentials);
        return NoSuchVm(head);
      case ErrorCode::kNotFound:
        return NoSuchVm(head);
      default:
        return InternalError(head, route.error());
    }
  }
  if (identity && !identity->vm_id.empty() && route->vm.id != identity->vm_id) {
    return NoSuchVm(head);
  }
  Decision decision;
  decision.kind = Decision::Kind::kForwardToVm;
  decision.route = std::move(*route);
  decision.identity = std::move(credentials.identity);
  decision.consumed_authorization = credentials.bearer;
  return decision;
}

// GET /__vmctl/auth?ticket=T&next=PATH on a VM host, the end of the round trip through DOMAIN.
Decision Gatekeeper::RedeemHostTicket(const Request& request) {
  const Head& head = request.head;
  if (head.method() != http::verb::get) return MethodNotAllowed(head, "GET");
  std::string next = SafeNext(request.query);
  std::optional<std::string> ticket = QueryParam(request.query, "ticket");
  Result<SessionGrant> grant = ticket
                                   ? auth_.RedeemHostTicket(*ticket, request.host, request.client)
                                   : Result<SessionGrant>(Unauthenticated("no ticket"));
  Result<std::string> cookie = SessionCookie(std::move(grant));
  if (!cookie.ok()) {
    if (auto trouble = ServiceTrouble(head, cookie.error())) return *trouble;
    return Respond(Html(head, http::status::forbidden,
                        MessagePage("Sign-in expired",
                                    "This sign-in link has expired or was used already.", next)));
  }
  ForgetDecisions();
  Response response = Redirect(head, http::status::found, next);
  response.insert(http::field::set_cookie, *cookie);
  return Respond(std::move(response));
}

// ?share=SECRET: a signed-in user gets the share, then the clean URL (the secret leaves the
// address bar and never reaches the app). A used or unknown link just leads to the clean URL,
// where the user has access or gets the same page as for any VM they may not see.
Decision Gatekeeper::RedeemShareLink(const Request& request, const Credentials& credentials,
                                     const std::string& secret) {
  const Head& head = request.head;
  if (!credentials.identity) return LoginRequired(request, credentials);
  if (!credentials.identity->vm_id.empty()) return NoSuchVm(head);
  Result<VmRecord> shared = sharing_.RedeemShareLink(secret, *credentials.identity, request.client);
  if (shared.ok()) {
    ForgetDecisions();
  } else if (auto trouble = ServiceTrouble(head, shared.error())) {
    return *trouble;
  }
  std::string clean = WithoutQueryParam(request.target, "share");
  return Respond(
      Redirect(head, http::status::found, IsSafeRedirectPath(clean) ? clean : std::string("/")));
}

// No identity for a VM that needs one: programs (any Authorization header) get a 401, browsers
// the round trip through DOMAIN that gets this host a session and comes back to this URL.
Decision Gatekeeper::LoginRequired(const Request& request, const Credentials& credentials) const {
  const Head& head = request.head;
  if (credentials.has_authorization) return Unauthorized(head, "a valid bearer token is required");
  if (!IsGetOrHead(head)) return Unauthorized(head, "sign in first");
  std::string next = IsSafeRedirectPath(request.target) ? std::string(request.target) : "/";
  return Respond(Redirect(head, http::status::found, HostLoginUrl(request.host, next)));
}

}  // namespace vmctl::proxy
