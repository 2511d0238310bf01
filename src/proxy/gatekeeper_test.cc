#include "proxy/gatekeeper.h"

#include <gtest/gtest.h>

#include <boost/beast/http.hpp>
#include <chrono>
#include <functional>
#include <optional>
#include <sstream>
#include <thread>

#include "testing/fake_web_services/fake_web_services.h"

namespace vmctl::proxy {
namespace {

namespace http = boost::beast::http;
using Kind = Decision::Kind;

constexpr std::string_view kDomain = "vmctl.test";
constexpr std::string_view kOrigin = "https://vmctl.test:8443";
constexpr int64_t kNow = 1'000'000;  // the fakes' clock too
constexpr std::string_view kClient = "192.0.2.1";

using Headers = std::vector<std::pair<std::string, std::string>>;

std::string Header(const Decision& decision, http::field field) {
  return std::string(decision.response[field]);
}

std::vector<std::string> SetCookies(const Decision& decision) {
  std::vector<std::string> cookies;
  auto [field, end] = decision.response.equal_range(http::field::set_cookie);
  for (; field != end; ++field) cookies.emplace_back(field->value());
  return cookies;
}

// "NAME=VALUE; ..." -> "VALUE".
std::string CookieValue(const std::string& set_cookie) {
  size_t equals = set_cookie.find('=');
  return set_cookie.substr(equals + 1, set_cookie.find(';') - equals - 1);
}

std::string Serialized(const Decision& decision) {
  std::ostringstream out;
  out << decision.response;
  return out.str();
}

std::string SessionCookieLine(std::string_view id) {
  return std::string(kSessionCookie) + "=" + std::string(id) +
         "; Max-Age=604800; Path=/; Secure; HttpOnly; SameSite=Lax";
}

class GatekeeperTest : public ::testing::Test {
 protected:
  GatekeeperTest() : auth_(std::string(kDomain)), sharing_(std::string(kDomain)) {
    for (auto [id, email] : {std::pair{"u1", "alice@example.com"},
                             {"u2", "bob@example.com"},
                             {"u3", "carol<script>@example.com"}}) {
      auth_.AddUser(id, email);
      sharing_.AddUser(id, email);
    }
    AddVm("0000000000a1", "u1", "web");
    AddVm("0000000000a2", "u1", "db");
    AddVm("0000000000a3", "u1", "blog");
    EXPECT_TRUE(sharing_.SetPublic("u1", "blog", true).ok());
    EXPECT_TRUE(sharing_.AddDomain("u1", "blog", "blog.example.com").ok());
    EXPECT_TRUE(sharing_.AddDomain("u1", "db", "db.example.com").ok());
    gatekeeper_ = MakeGatekeeper(std::chrono::seconds(1));
  }

  std::unique_ptr<Gatekeeper> MakeGatekeeper(std::chrono::milliseconds decision_ttl) {
    GatekeeperOptions options{std::string(kDomain), std::string(kOrigin) + "/",
                              "ssh -p 2222 vmctl.test", [] { return kNow; }};
    options.decision_ttl = decision_ttl;
    options.steady_now = [this] { return steady_now_; };
    Result<std::unique_ptr<Gatekeeper>> gatekeeper =
        Gatekeeper::Create(std::move(options), auth_, sharing_);
    EXPECT_TRUE(gatekeeper.ok());
    return std::move(*gatekeeper);
  }

  void AddVm(const std::string& id, const std::string& owner, const std::string& name) {
    VmRecord vm;
    vm.id = id;
    vm.owner = owner;
    vm.name = name;
    vm.state = VmState::kRunning;
    vm.address = "10.0.0." + std::to_string(sharing_counter_++);
    sharing_.AddVm(vm);
    auth_.AddVm(name, id);
  }

  static http::request<http::empty_body> Request(http::verb method, std::string_view target,
                                                 const Headers& headers) {
    http::request<http::empty_body> request{method, target, 11};
    for (const auto& [name, value] : headers) request.insert(name, value);
    return request;
  }
  Decision Send(http::verb method, std::string_view host, std::string_view target,
                const Headers& headers = {}, std::string_view client = kClient) {
    return gatekeeper_->Decide(Request(method, target, headers).base(), host, std::string(client));
  }
  Decision Get(std::string_view host, std::string_view target, const Headers& headers = {}) {
    return Send(http::verb::get, host, target, headers);
  }
  std::shared_ptr<const Decision> Cached(std::string_view host, std::string_view target,
                                         const Headers& headers = {},
                                         std::string_view client = kClient,
                                         http::verb method = http::verb::get) {
    return gatekeeper_->DecideCached(Request(method, target, headers).base(), host,
                                     std::string(client));
  }
  static Headers WithCookie(std::string_view session) {
    return {{"Cookie", "theme=dark; " + std::string(kSessionCookie) + "=" + std::string(session)}};
  }

  // The session cookie value DOMAIN gets for `user_id` from a login link.
  std::string Login(const std::string& user_id) {
    Result<controller::LoginLink> link = auth_.CreateLoginLink(user_id);
    EXPECT_TRUE(link.ok());
    std::string path = link->url.substr(link->url.find("/login/"));
    Decision decision = Get(kDomain, path);
    EXPECT_EQ(decision.response.result(), http::status::found);
    return CookieValue(SetCookies(decision).at(0));
  }

  // The whole round trip for a session on `host`: VM host -> DOMAIN/auth -> VM host.
  std::string HostSession(const std::string& domain_session, std::string_view host,
                          std::string_view target = "/") {
    Decision start = Get(host, target);
    std::string auth_url = Header(start, http::field::location);
    EXPECT_TRUE(auth_url.starts_with(std::string(kOrigin) + "/auth?")) << auth_url;
    Decision ticket = Get(kDomain, auth_url.substr(kOrigin.size()), WithCookie(domain_session));
    std::string back = Header(ticket, http::field::location);
    std::string host_origin = "https://" + std::string(host) + ":8443";
    EXPECT_TRUE(back.starts_with(host_origin + "/__vmctl/auth?ticket=")) << back;
    Decision landed = Get(host, back.substr(host_origin.size()));
    EXPECT_EQ(landed.response.result(), http::status::found);
    EXPECT_EQ(Header(landed, http::field::location), target);
    return CookieValue(SetCookies(landed).at(0));
  }

  int sharing_counter_ = 10;
  std::chrono::steady_clock::time_point steady_now_;
  testing::FakeAuthService auth_;
  testing::FakeSharingService sharing_;
  std::unique_ptr<Gatekeeper> gatekeeper_;
};

TEST_F(GatekeeperTest, RefusesABadWebUrl) {
  GatekeeperOptions options;
  options.web_url = "ftp://vmctl.test";
  EXPECT_EQ(Gatekeeper::Create(options, auth_, sharing_).error().code(),
            ErrorCode::kInvalidArgument);
}

TEST_F(GatekeeperTest, LoginLinkSetsAnExactSessionCookie) {
  Result<controller::LoginLink> link = auth_.CreateLoginLink("u1");
  ASSERT_TRUE(link.ok());
  Decision decision = Get(kDomain, link->url.substr(link->url.find("/login/")));
  EXPECT_EQ(decision.kind, Kind::kRespond);
  EXPECT_EQ(decision.response.result(), http::status::found);
  EXPECT_EQ(Header(decision, http::field::location), "/");
  EXPECT_EQ(Header(decision, http::field::cache_control), "no-store");
  EXPECT_EQ(std::string(decision.response["Referrer-Policy"]), "no-referrer");
  std::vector<std::string> cookies = SetCookies(decision);
  ASSERT_EQ(cookies.size(), 1u);
  EXPECT_EQ(cookies[0], SessionCookieLine("session-2"));
  EXPECT_EQ(cookies[0].find("Domain"), std::string::npos);

  Decision home = Get(kDomain, "/", WithCookie("session-2"));
  EXPECT_EQ(home.response.result(), http::status::ok);
  EXPECT_NE(home.response.body().find("Signed in as <strong>alice@example.com</strong>"),
            std::string::npos);
  EXPECT_NE(home.response.body().find("<form method=\"post\" action=\"/logout\">"),
            std::string::npos);
  EXPECT_EQ(Header(home, http::field::cache_control), "no-store");
  // Under no-referrer a browser would send `Origin: null` with the sign-out POST.
  EXPECT_EQ(std::string(home.response["Referrer-Policy"]), "same-origin");
}

TEST_F(GatekeeperTest, CookieLivesUntilTheSessionExpires) {
  auth_.SetNow(kNow + 100);  // the session ends 100 s later than from the gatekeeper's clock
  Result<controller::LoginLink> link = auth_.CreateLoginLink("u1");
  Decision decision = Get(kDomain, link->url.substr(link->url.find("/login/")));
  ASSERT_EQ(SetCookies(decision).size(), 1u);
  EXPECT_NE(SetCookies(decision)[0].find("; Max-Age=604900;"), std::string::npos);
}

TEST_F(GatekeeperTest, ReplayedAndWrongLoginLinksAreRefusedThenRateLimited) {
  Result<controller::LoginLink> link = auth_.CreateLoginLink("u1");
  std::string path = link->url.substr(link->url.find("/login/"));
  ASSERT_EQ(Get(kDomain, path).response.result(), http::status::found);
  Decision replay = Get(kDomain, path);
  EXPECT_EQ(replay.response.result(), http::status::forbidden);
  EXPECT_TRUE(SetCookies(replay).empty());
  EXPECT_NE(replay.response.body().find("ssh -p 2222 vmctl.test login"), std::string::npos);
  EXPECT_EQ(Get(kDomain, "/login/guess").response.body(), replay.response.body());
  EXPECT_EQ(Get(kDomain, "/login/").response.result(), http::status::forbidden);
  EXPECT_EQ(Get(kDomain, "/login/guess-2").response.result(), http::status::forbidden);
  // The fake allows three wrong secrets per source; then even a good link waits.
  Result<controller::LoginLink> good = auth_.CreateLoginLink("u1");
  Decision limited = Get(kDomain, good->url.substr(good->url.find("/login/")));
  EXPECT_EQ(limited.response.result(), http::status::too_many_requests);
  EXPECT_TRUE(SetCookies(limited).empty());
}

TEST_F(GatekeeperTest, OnlyGetSpendsALoginLink) {
  Result<controller::LoginLink> link = auth_.CreateLoginLink("u1");
  std::string path = link->url.substr(link->url.find("/login/"));
  Decision head = Send(http::verb::head, kDomain, path);
  EXPECT_EQ(head.response.result(), http::status::method_not_allowed);
  EXPECT_EQ(Header(head, http::field::allow), "GET");
  EXPECT_EQ(Get(kDomain, path).response.result(), http::status::found);
}

TEST_F(GatekeeperTest, LoginLinkFollowsOnlyALocalNext) {
  auto next_after = [&](std::string_view next) {
    Result<controller::LoginLink> link = auth_.CreateLoginLink("u1");
    std::string path = link->url.substr(link->url.find("/login/"));
    return Header(Get(kDomain, path + "?next=" + std::string(next)), http::field::location);
  };
  EXPECT_EQ(next_after("%2Fdashboard%3Fa%3D1"), "/dashboard?a=1");
  EXPECT_EQ(next_after("%2F%2Fevil.com"), "/");
  EXPECT_EQ(next_after("https%3A%2F%2Fevil.com"), "/");
  EXPECT_EQ(next_after("%2F%5Cevil.com"), "/");
}

TEST_F(GatekeeperTest, HomePageWithoutSessionIsTheLoginPage) {
  Decision decision = Get(kDomain, "/");
  EXPECT_EQ(decision.response.result(), http::status::ok);
  EXPECT_NE(decision.response.body().find("<code>ssh -p 2222 vmctl.test login</code>"),
            std::string::npos);
  EXPECT_EQ(Header(decision, http::field::content_type), "text/html; charset=utf-8");
  EXPECT_EQ(Header(decision, http::field::cache_control), "no-store");
  // A stale cookie is no session either.
  EXPECT_EQ(Get(kDomain, "/", WithCookie("session-999")).response.body(), decision.response.body());
  EXPECT_EQ(Send(http::verb::post, kDomain, "/").response.result(),
            http::status::method_not_allowed);
  EXPECT_EQ(Get(kDomain, "/nothing").response.result(), http::status::not_found);
}

TEST_F(GatekeeperTest, PagesEscapeWhatTheyPrint) {
  std::string session = Login("u3");
  Decision home = Get(kDomain, "/", WithCookie(session));
  EXPECT_NE(home.response.body().find("carol&lt;script&gt;@example.com"), std::string::npos);
  EXPECT_EQ(home.response.body().find("<script>"), std::string::npos);
}

TEST_F(GatekeeperTest, HeadAnswersWithoutABody) {
  Decision get = Get(kDomain, "/");
  Decision head = Send(http::verb::head, kDomain, "/");
  EXPECT_TRUE(head.response.body().empty());
  EXPECT_EQ(Header(head, http::field::content_length), std::to_string(get.response.body().size()));
}

TEST_F(GatekeeperTest, ResponsesFollowTheRequestsVersionAndKeepAlive) {
  http::request<http::empty_body> request{http::verb::get, "/", 10};
  Decision old = gatekeeper_->Decide(request.base(), kDomain, std::string(kClient));
  EXPECT_EQ(old.response.version(), 10u);
  EXPECT_FALSE(old.response.keep_alive());
  EXPECT_TRUE(Get(kDomain, "/").response.keep_alive());
  EXPECT_FALSE(Get(kDomain, "/", {{"Connection", "close"}}).response.keep_alive());
}

TEST_F(GatekeeperTest, LogoutEndsTheSessionFromDomainsOwnPageOnly) {
  std::string session = Login("u1");
  Headers cookie = WithCookie(session);
  // No Origin, or another one (a VM's page is same-site with DOMAIN): refused.
  EXPECT_EQ(Send(http::verb::post, kDomain, "/logout", cookie).response.result(),
            http::status::forbidden);
  Headers cross = cookie;
  cross.emplace_back("Origin", "https://web.vmctl.test:8443");
  EXPECT_EQ(Send(http::verb::post, kDomain, "/logout", cross).response.result(),
            http::status::forbidden);
  EXPECT_NE(Get(kDomain, "/", cookie).response.body().find("Signed in"), std::string::npos);

  std::string web_session = HostSession(session, "web.vmctl.test");
  Headers same = cookie;
  same.emplace_back("Origin", std::string(kOrigin));
  Decision out = Send(http::verb::post, kDomain, "/logout", same);
  EXPECT_EQ(out.response.result(), http::status::see_other);
  EXPECT_EQ(Header(out, http::field::location), "/");
  EXPECT_EQ(SetCookies(out),
            std::vector<std::string>{std::string(kSessionCookie) +
                                     "=; Max-Age=0; Path=/; Secure; HttpOnly; SameSite=Lax"});
  EXPECT_EQ(Get(kDomain, "/", cookie).response.body().find("Signed in"), std::string::npos);
  // The VM host's session derived from it ends too.
  EXPECT_EQ(Get("web.vmctl.test", "/", WithCookie(web_session)).kind, Kind::kRespond);
  EXPECT_EQ(Get(kDomain, "/logout").response.result(), http::status::method_not_allowed);
}

TEST_F(GatekeeperTest, HostTicketRoundTrip) {
  std::string session = Login("u1");
  Decision start = Get("web.vmctl.test", "/page?x=1");
  EXPECT_EQ(start.response.result(), http::status::found);
  EXPECT_EQ(Header(start, http::field::location),
            "https://vmctl.test:8443/auth?host=web.vmctl.test&next=/page%3Fx%3D1");
  EXPECT_TRUE(SetCookies(start).empty());

  Decision ticket =
      Get(kDomain, "/auth?host=web.vmctl.test&next=/page%3Fx%3D1", WithCookie(session));
  EXPECT_EQ(ticket.response.result(), http::status::found);
  std::string back = Header(ticket, http::field::location);
  EXPECT_EQ(back, "https://web.vmctl.test:8443/__vmctl/auth?ticket=ticket-3&next=/page%3Fx%3D1");
  EXPECT_EQ(std::string(ticket.response["Referrer-Policy"]), "no-referrer");

  std::string landing = "/__vmctl/auth?ticket=ticket-3&next=/page%3Fx%3D1";
  // The ticket is for web.vmctl.test alone.
  EXPECT_EQ(Get("db.vmctl.test", landing).response.result(), http::status::forbidden);
  Decision landed = Get("web.vmctl.test", landing);
  EXPECT_EQ(landed.response.result(), http::status::found);
  EXPECT_EQ(Header(landed, http::field::location), "/page?x=1");
  EXPECT_EQ(SetCookies(landed), std::vector<std::string>{SessionCookieLine("session-4")});
  // Single use.
  Decision replay = Get("web.vmctl.test", landing);
  EXPECT_EQ(replay.response.result(), http::status::forbidden);
  EXPECT_TRUE(SetCookies(replay).empty());
  EXPECT_NE(replay.response.body().find("href=\"/page?x=1\""), std::string::npos);

  Decision app = Get("web.vmctl.test", "/page?x=1", WithCookie("session-4"));
  ASSERT_EQ(app.kind, Kind::kForwardToVm);
  EXPECT_EQ(app.route.vm.name, "web");
  EXPECT_EQ(app.route.port, 80);
  ASSERT_TRUE(app.identity);
  EXPECT_EQ(app.identity->user_id, "u1");
  EXPECT_EQ(app.identity->email, "alice@example.com");
  EXPECT_FALSE(app.consumed_authorization);
  // DOMAIN's session is not good on the VM host, nor the VM host's on another.
  EXPECT_EQ(Get("web.vmctl.test", "/", WithCookie(session)).kind, Kind::kRespond);
  EXPECT_EQ(Get("db.vmctl.test", "/", WithCookie("session-4")).kind, Kind::kRespond);
}

TEST_F(GatekeeperTest, LoginPageRemembersWhereToGoAfterLogin) {
  Decision page = Get(kDomain, "/auth?host=web.vmctl.test&next=/p%3Fshare%3Dx");
  EXPECT_EQ(page.response.result(), http::status::ok);
  EXPECT_NE(page.response.body().find("ssh -p 2222 vmctl.test login"), std::string::npos);
  EXPECT_NE(page.response.body().find("<strong>web.vmctl.test</strong>"), std::string::npos);
  std::string continue_cookie = std::string(kContinueCookie) +
                                "=/auth?host=web.vmctl.test&next=/p%3Fshare%3Dx; Max-Age=900; "
                                "Path=/; Secure; HttpOnly; SameSite=Lax";
  EXPECT_EQ(SetCookies(page), std::vector<std::string>{continue_cookie});

  Result<controller::LoginLink> link = auth_.CreateLoginLink("u1");
  Decision login =
      Get(kDomain, link->url.substr(link->url.find("/login/")),
          {{"Cookie", std::string(kContinueCookie) + "=" + CookieValue(continue_cookie)}});
  EXPECT_EQ(Header(login, http::field::location), "/auth?host=web.vmctl.test&next=/p%3Fshare%3Dx");
  std::vector<std::string> cookies = SetCookies(login);
  ASSERT_EQ(cookies.size(), 2u);
  EXPECT_TRUE(cookies[0].starts_with(std::string(kSessionCookie) + "="));
  EXPECT_EQ(cookies[1],
            std::string(kContinueCookie) + "=; Max-Age=0; Path=/; Secure; HttpOnly; SameSite=Lax");

  // A continue cookie that points anywhere but /auth is ignored (and expired).
  Result<controller::LoginLink> other = auth_.CreateLoginLink("u1");
  Decision tossed = Get(kDomain, other->url.substr(other->url.find("/login/")),
                        {{"Cookie", std::string(kContinueCookie) + "=//evil.com"}});
  EXPECT_EQ(Header(tossed, http::field::location), "/");
  EXPECT_EQ(SetCookies(tossed).size(), 2u);
}

TEST_F(GatekeeperTest, AuthRefusesHostsThatAreNotOurs) {
  std::string session = Login("u1");
  for (std::string_view host :
       {"evil.com", "sub.web.vmctl.test", "vmctl.test", "web.vmctl.test.evil.com", "WEB.vmctl.test",
        "web.vmctl.test:443", "", "-web.vmctl.test", "web--0.vmctl.test", "web--70000.vmctl.test",
        "web.vmctl.test%2F@evil.com", "db.example.com.evil"}) {
    Decision decision =
        Get(kDomain, "/auth?host=" + PercentEncode(host) + "&next=/", WithCookie(session));
    EXPECT_EQ(decision.response.result(), http::status::bad_request) << host;
    EXPECT_TRUE(Header(decision, http::field::location).empty()) << host;
  }
  EXPECT_EQ(Get(kDomain, "/auth?next=/", WithCookie(session)).response.result(),
            http::status::bad_request);
  // A registered custom domain, and a VM's other port, are ours.
  EXPECT_EQ(Header(Get(kDomain, "/auth?host=db.example.com&next=/", WithCookie(session)),
                   http::field::location)
                .substr(0, 46),
            "https://db.example.com:8443/__vmctl/auth?ticke");
  EXPECT_EQ(Get(kDomain, "/auth?host=web--8080.vmctl.test", WithCookie(session)).response.result(),
            http::status::found);
}

TEST_F(GatekeeperTest, RedirectTargetsStayOnTheHost) {
  std::string session = Login("u1");
  for (std::string_view next : {"//evil.com", "https://evil", "/\\evil.com", "///evil.com",
                                "evil.com", "/a//b", "/\r\nSet-Cookie:x"}) {
    std::string target = "/auth?host=web.vmctl.test&next=" + PercentEncode(next);
    std::string back = Header(Get(kDomain, target, WithCookie(session)), http::field::location);
    EXPECT_TRUE(back.ends_with("&next=/")) << next << " -> " << back;
    size_t from = back.find("ticket=") + 7;
    std::string ticket = back.substr(from, back.find('&', from) - from);
    Decision landed =
        Get("web.vmctl.test", "/__vmctl/auth?ticket=" + ticket + "&next=" + PercentEncode(next));
    EXPECT_EQ(Header(landed, http::field::location), "/") << next;
  }
  // A network-path target on the VM host itself is not echoed into the round trip.
  EXPECT_EQ(Header(Get("web.vmctl.test", "//evil.com/x"), http::field::location),
            "https://vmctl.test:8443/auth?host=web.vmctl.test&next=/");
}

TEST_F(GatekeeperTest, AuthorizationHeaderGets401NeverARedirect) {
  for (std::string_view authorization : {"Bearer wrong", "Basic YTpi", "Bearer"}) {
    Decision decision = Get("web.vmctl.test", "/", {{"Authorization", std::string(authorization)}});
    EXPECT_EQ(decision.kind, Kind::kRespond);
    EXPECT_EQ(decision.response.result(), http::status::unauthorized) << authorization;
    EXPECT_EQ(Header(decision, http::field::www_authenticate), "Bearer realm=\"vmctl\"");
    EXPECT_TRUE(Header(decision, http::field::location).empty());
  }
  // A browser's POST without a session is not redirected either (its body would be lost).
  Decision post = Send(http::verb::post, "web.vmctl.test", "/form");
  EXPECT_EQ(post.response.result(), http::status::unauthorized);
}

TEST_F(GatekeeperTest, BearerTokensReachVmHostsAndAreConsumed) {
  Result<controller::NewToken> token = auth_.CreateToken("u1", "", std::chrono::seconds(0));
  ASSERT_TRUE(token.ok());
  Decision decision = Get("web.vmctl.test", "/x", {{"Authorization", "Bearer " + token->secret}});
  ASSERT_EQ(decision.kind, Kind::kForwardToVm);
  EXPECT_TRUE(decision.consumed_authorization);
  EXPECT_EQ(decision.identity->user_id, "u1");
  // Another scheme is the app's own business: passed on, not consumed.
  std::string web_session = HostSession(Login("u1"), "web.vmctl.test");
  Headers both = WithCookie(web_session);
  both.emplace_back("Authorization", "Basic YTpi");
  Decision basic = Get("web.vmctl.test", "/", both);
  ASSERT_EQ(basic.kind, Kind::kForwardToVm);
  EXPECT_FALSE(basic.consumed_authorization);
  EXPECT_EQ(basic.identity->user_id, "u1");
}

TEST_F(GatekeeperTest, IdentityComesOnlyFromTheCookieOrTheToken) {
  Headers spoofed = {{"X-Vmctl-User-Id", "u1"},
                     {"X-Vmctl-Email", "alice@example.com"},
                     {"X-Vmctl-User", "u1"},
                     {"Cookie", "vmctl-session=session-1; __Host-vmctl-session-x=session-1"}};
  Decision vm = Get("web.vmctl.test", "/", spoofed);
  EXPECT_EQ(vm.kind, Kind::kRespond);
  EXPECT_EQ(vm.response.result(), http::status::found);
  Decision public_vm = Get("blog.vmctl.test", "/", spoofed);
  ASSERT_EQ(public_vm.kind, Kind::kForwardToVm);
  EXPECT_FALSE(public_vm.identity);
  Decision api = Get(kDomain, "/api/v1/vms", spoofed);
  EXPECT_EQ(api.response.result(), http::status::unauthorized);
}

TEST_F(GatekeeperTest, ApiNeedsATokenOrASession) {
  Decision none = Get(kDomain, "/api/v1/vms");
  EXPECT_EQ(none.kind, Kind::kRespond);
  EXPECT_EQ(none.response.result(), http::status::unauthorized);
  EXPECT_EQ(Header(none, http::field::www_authenticate), "Bearer realm=\"vmctl\"");
  EXPECT_EQ(Header(none, http::field::content_type), "application/json");
  EXPECT_TRUE(none.response.body().starts_with("{\"error\":{\"code\":\"unauthenticated\""))
      << none.response.body();
  for (std::string_view bad : {"Bearer nope", "Basic YTpi"}) {
    Decision decision = Get(kDomain, "/api/v1/vms", {{"Authorization", std::string(bad)}});
    EXPECT_EQ(decision.response.result(), http::status::unauthorized) << bad;
    EXPECT_EQ(Header(decision, http::field::www_authenticate), "Bearer realm=\"vmctl\"");
  }
  Result<controller::NewToken> token = auth_.CreateToken("u1", "", std::chrono::seconds(0));
  Headers bearer = {{"Authorization", "Bearer " + token->secret}};
  Headers twice = {bearer[0], bearer[0]};
  EXPECT_EQ(Get(kDomain, "/api/v1/vms", twice).response.result(), http::status::unauthorized);

  Decision by_token = Send(http::verb::post, kDomain, "/api/v1/vms?x=1", bearer);
  ASSERT_EQ(by_token.kind, Kind::kForwardToApi);
  EXPECT_EQ(by_token.api_target, "/v1/vms?x=1");
  EXPECT_TRUE(by_token.consumed_authorization);
  EXPECT_EQ(by_token.identity->user_id, "u1");
  EXPECT_EQ(Get(kDomain, "/api/v1", bearer).api_target, "/v1");
  EXPECT_EQ(Get(kDomain, "/api/v1x", bearer).response.result(), http::status::not_found);
  EXPECT_EQ(Get(kDomain, "/api/v2/vms", bearer).kind, Kind::kRespond);
}

TEST_F(GatekeeperTest, ApiSessionsChangeThingsOnlyFromDomainsOwnPages) {
  std::string session = Login("u2");
  Decision read = Get(kDomain, "/api/v1/vms", WithCookie(session));
  ASSERT_EQ(read.kind, Kind::kForwardToApi);
  EXPECT_FALSE(read.consumed_authorization);
  EXPECT_EQ(read.identity->user_id, "u2");
  Headers cross = WithCookie(session);
  cross.emplace_back("Origin", "https://evil.vmctl.test:8443");
  for (const Headers& headers : {WithCookie(session), cross}) {
    Decision write = Send(http::verb::delete_, kDomain, "/api/v1/vms/web", headers);
    EXPECT_EQ(write.response.result(), http::status::unauthorized);
  }
  Headers same = WithCookie(session);
  same.emplace_back("Origin", std::string(kOrigin));
  EXPECT_EQ(Send(http::verb::delete_, kDomain, "/api/v1/vms/web", same).kind, Kind::kForwardToApi);
  // A VM host's session is not DOMAIN's.
  std::string web_session = HostSession(Login("u1"), "web.vmctl.test");
  EXPECT_EQ(Get(kDomain, "/api/v1/vms", WithCookie(web_session)).response.result(),
            http::status::unauthorized);
}

TEST_F(GatekeeperTest, VmLimitedTokensReachTheirVmOnly) {
  Result<controller::NewToken> token = auth_.CreateToken("u1", "web", std::chrono::seconds(60));
  ASSERT_TRUE(token.ok());
  Headers bearer = {{"Authorization", "Bearer " + token->secret}};
  for (std::string_view target :
       {"/api/v1/vms/web", "/api/v1/vms/web/start", "/api/v1/vms/web/logs?follow=1",
        "/api/v1/vms/web/shares?email=a%40b"}) {
    EXPECT_EQ(Get(kDomain, target, bearer).kind, Kind::kForwardToApi) << target;
  }
  for (std::string_view target :
       {"/api/v1/vms", "/api/v1/vms/", "/api/v1/vms/db", "/api/v1/vms/db/start",
        "/api/v1/vms/web/../db", "/api/v1/vms/web/./start", "/api/v1/vms/web//start",
        "/api/v1/vms/web/", "/api/v1/vms/web%2F..%2Fdb", "/api/v1/vms/w%65b", "/api/v1/images",
        "/api/v1/health", "/api/v1/vms/blog"}) {
    Decision decision = Get(kDomain, target, bearer);
    EXPECT_EQ(decision.response.result(), http::status::not_found) << target;
    EXPECT_NE(decision.response.body().find("\"not_found\""), std::string::npos);
  }
  EXPECT_EQ(Get("web.vmctl.test", "/", bearer).kind, Kind::kForwardToVm);
  // Not another VM's host, even a public one, nor the owner's other ports' hosts of another VM.
  for (std::string_view host : {"db.vmctl.test", "blog.vmctl.test", "db--22.vmctl.test"}) {
    EXPECT_EQ(Get(host, "/", bearer).response.result(), http::status::not_found) << host;
  }
  // Expired: refused like any wrong token.
  auth_.SetNow(kNow + 61);
  EXPECT_EQ(Get(kDomain, "/api/v1/vms/web", bearer).response.result(), http::status::unauthorized);
}

TEST_F(GatekeeperTest, ShareLinkFlow) {
  Result<controller::ShareLink> link = sharing_.CreateShareLink("u1", "web");
  ASSERT_TRUE(link.ok());
  std::string secret = link->url.substr(link->url.find("share=") + 6);
  std::string target = "/?share=" + secret;
  // Not signed in: the round trip keeps the share parameter.
  Decision start = Get("web.vmctl.test", target);
  EXPECT_EQ(Header(start, http::field::location),
            "https://vmctl.test:8443/auth?host=web.vmctl.test&next=/%3Fshare%3D" + secret);
  std::string bob = HostSession(Login("u2"), "web.vmctl.test", target);

  Decision redeemed = Get("web.vmctl.test", target, WithCookie(bob));
  EXPECT_EQ(redeemed.kind, Kind::kRespond);
  EXPECT_EQ(redeemed.response.result(), http::status::found);
  EXPECT_EQ(Header(redeemed, http::field::location), "/");
  EXPECT_EQ(std::string(redeemed.response["Referrer-Policy"]), "no-referrer");
  Decision app = Get("web.vmctl.test", "/", WithCookie(bob));
  ASSERT_EQ(app.kind, Kind::kForwardToVm);
  EXPECT_EQ(app.identity->email, "bob@example.com");
  EXPECT_FALSE(app.route.is_owner);
  // Used: bob, who has the share now, still just lands on the clean URL; carol gets nothing.
  EXPECT_EQ(Header(Get("web.vmctl.test", target, WithCookie(bob)), http::field::location), "/");
  std::string carol = HostSession(Login("u3"), "web.vmctl.test");
  Decision late = Get("web.vmctl.test", "/a?b=1&share=" + secret + "&c=2", WithCookie(carol));
  EXPECT_EQ(Header(late, http::field::location), "/a?b=1&c=2");
  EXPECT_EQ(Get("web.vmctl.test", "/a?b=1&c=2", WithCookie(carol)).response.result(),
            http::status::not_found);
}

TEST_F(GatekeeperTest, WrongShareLinksAreRateLimited) {
  std::string bob = HostSession(Login("u2"), "web.vmctl.test");
  for (int i = 0; i < testing::kMaxWrongSecrets; ++i) {
    EXPECT_EQ(Get("web.vmctl.test", "/?share=guess", WithCookie(bob)).response.result(),
              http::status::found);
  }
  EXPECT_EQ(Get("web.vmctl.test", "/?share=guess", WithCookie(bob)).response.result(),
            http::status::too_many_requests);
}

TEST_F(GatekeeperTest, HiddenAndMissingVmsLookTheSame) {
  // Anonymous: the same login redirect, which differs only by the host the browser asked for.
  auto anonymous = [&](std::string_view host) {
    std::string text = Serialized(Get(host, "/x?y=1"));
    for (size_t at; (at = text.find(host)) != std::string::npos;)
      text.replace(at, host.size(), "H");
    return text;
  };
  EXPECT_EQ(anonymous("web.vmctl.test"), anonymous("nosuch.vmctl.test"));
  EXPECT_EQ(anonymous("web--22.vmctl.test"), anonymous("nosuch--22.vmctl.test"));
  EXPECT_EQ(anonymous("db.example.com"), anonymous("nosuch.example.com"));
  // Another user, signed in on each host: byte for byte the same 404.
  std::string bob = Login("u2");
  auto signed_in = [&](std::string_view host) {
    return Serialized(Get(host, "/x?y=1", WithCookie(HostSession(bob, host))));
  };
  std::string hidden = signed_in("web.vmctl.test");
  EXPECT_NE(hidden.find("404"), std::string::npos);
  EXPECT_EQ(hidden, signed_in("nosuch.vmctl.test"));
  EXPECT_EQ(hidden, signed_in("web--8080.vmctl.test"));  // another port of a VM bob may not see
  EXPECT_EQ(hidden, signed_in("blog--22.vmctl.test"));   // another port of a public VM
  EXPECT_EQ(hidden, Serialized(Get("a.b.vmctl.test", "/x?y=1")));
  EXPECT_EQ(hidden, Serialized(Get("bad_name.vmctl.test", "/x?y=1")));
}

TEST_F(GatekeeperTest, PublicVmsAndCustomDomains) {
  Decision anonymous = Get("blog.vmctl.test", "/");
  ASSERT_EQ(anonymous.kind, Kind::kForwardToVm);
  EXPECT_FALSE(anonymous.identity);
  EXPECT_TRUE(anonymous.route.is_public);
  EXPECT_EQ(Get("blog.example.com", "/").kind, Kind::kForwardToVm);
  // Other ports of a public VM are its owner's alone.
  EXPECT_EQ(Get("blog--8080.vmctl.test", "/").response.result(), http::status::found);
  std::string alice = Login("u1");
  Decision port =
      Get("blog--8080.vmctl.test", "/", WithCookie(HostSession(alice, "blog--8080.vmctl.test")));
  ASSERT_EQ(port.kind, Kind::kForwardToVm);
  EXPECT_EQ(port.route.port, 8080);
  Decision domain = Get("db.example.com", "/", WithCookie(HostSession(alice, "db.example.com")));
  ASSERT_EQ(domain.kind, Kind::kForwardToVm);
  EXPECT_EQ(domain.route.vm.name, "db");
  // An app of a public VM can ask for the visitor's identity: the same round trip on demand.
  EXPECT_EQ(Header(Get("blog.vmctl.test", "/__vmctl/login?next=/me"), http::field::location),
            "https://vmctl.test:8443/auth?host=blog.vmctl.test&next=/me");
  EXPECT_EQ(Get("blog.vmctl.test", "/__vmctl/other").response.result(), http::status::not_found);
}

TEST_F(GatekeeperTest, SigningInOnAnotherUsersPublicVmTakesConsent) {
  std::string bob = Login("u2");
  std::string target = "/auth?host=blog.vmctl.test&next=/me";
  Decision asked = Get(kDomain, target, WithCookie(bob));
  EXPECT_EQ(asked.response.result(), http::status::ok);
  EXPECT_TRUE(Header(asked, http::field::location).empty());
  EXPECT_NE(asked.response.body().find("<form method=\"post\" action=\"/auth?host=blog.vmctl.test"
                                       "&amp;next=/me\">"),
            std::string::npos)
      << asked.response.body();
  EXPECT_EQ(std::string(asked.response["Referrer-Policy"]), "same-origin");
  EXPECT_NE(asked.response.body().find("bob@example.com"), std::string::npos);
  // Only DOMAIN's own page can give the consent.
  Headers cross = WithCookie(bob);
  cross.emplace_back("Origin", "https://blog.vmctl.test:8443");
  for (const Headers& headers : {WithCookie(bob), cross}) {
    EXPECT_TRUE(
        Header(Send(http::verb::post, kDomain, target, headers), http::field::location).empty());
  }
  Headers same = WithCookie(bob);
  same.emplace_back("Origin", std::string(kOrigin));
  Decision consented = Send(http::verb::post, kDomain, target, same);
  EXPECT_EQ(consented.response.result(), http::status::see_other);
  EXPECT_TRUE(Header(consented, http::field::location)
                  .starts_with("https://blog.vmctl.test:8443/__vmctl/auth?ticket="));
  // The owner, and hosts whose apps see only who may use them, need no question.
  std::string alice = Login("u1");
  EXPECT_EQ(Get(kDomain, target, WithCookie(alice)).response.result(), http::status::found);
  EXPECT_EQ(Get(kDomain, "/auth?host=web.vmctl.test", WithCookie(bob)).response.result(),
            http::status::found);
  EXPECT_EQ(Send(http::verb::put, kDomain, target, same).response.result(),
            http::status::method_not_allowed);
}

TEST_F(GatekeeperTest, WrongHostTicketsAreRateLimited) {
  for (int i = 0; i < testing::kMaxWrongSecrets; ++i) {
    EXPECT_EQ(Get("web.vmctl.test", "/__vmctl/auth?ticket=guess").response.result(),
              http::status::forbidden);
  }
  EXPECT_EQ(Get("web.vmctl.test", "/__vmctl/auth?ticket=guess").response.result(),
            http::status::too_many_requests);
  EXPECT_EQ(Get("web.vmctl.test", "/__vmctl/auth?ticket=guess", {}).response.result(),
            http::status::too_many_requests);
  // Another client is not affected.
  EXPECT_EQ(Send(http::verb::get, "web.vmctl.test", "/__vmctl/auth?ticket=guess", {}, "192.0.2.9")
                .response.result(),
            http::status::forbidden);
}

TEST_F(GatekeeperTest, ForwardsAreAnsweredFromTheCache) {
  std::string alice = HostSession(Login("u1"), "web.vmctl.test");
  EXPECT_FALSE(Cached("web.vmctl.test", "/", WithCookie(alice)));
  Decision decided = Get("web.vmctl.test", "/", WithCookie(alice));
  ASSERT_EQ(decided.kind, Kind::kForwardToVm);
  // Neither the method nor the path changes a forward.
  std::shared_ptr<const Decision> cached =
      Cached("web.vmctl.test", "/other?x=1", WithCookie(alice), kClient, http::verb::post);
  ASSERT_TRUE(cached);
  EXPECT_EQ(cached->kind, Kind::kForwardToVm);
  EXPECT_EQ(cached->route.vm.id, decided.route.vm.id);
  EXPECT_EQ(cached->route.vm.address, decided.route.vm.address);
  EXPECT_EQ(cached->route.port, 80);
  ASSERT_TRUE(cached->identity);
  EXPECT_EQ(cached->identity->user_id, "u1");
  EXPECT_FALSE(cached->consumed_authorization);
  // The session cookie's value is what counts, not the other cookies beside it.
  EXPECT_TRUE(Cached("web.vmctl.test", "/",
                     {{"Cookie", "a=b"}, {"Cookie", std::string(kSessionCookie) + "=" + alice}}));

  // A token is not checked again.
  Result<controller::NewToken> token = auth_.CreateToken("u1", "", std::chrono::seconds(0));
  ASSERT_TRUE(token.ok());
  Headers bearer = {{"Authorization", "Bearer " + token->secret}};
  ASSERT_EQ(Get("web.vmctl.test", "/", bearer).kind, Kind::kForwardToVm);
  int checks = auth_.token_checks();
  std::shared_ptr<const Decision> by_token = Cached("web.vmctl.test", "/", bearer);
  ASSERT_TRUE(by_token);
  EXPECT_TRUE(by_token->consumed_authorization);
  EXPECT_EQ(auth_.token_checks(), checks);
}

TEST_F(GatekeeperTest, CachedForwardsAreForTheSameHostCredentialsAndClient) {
  std::string alice = HostSession(Login("u1"), "web.vmctl.test");
  Headers cookie = WithCookie(alice);
  ASSERT_EQ(Get("web.vmctl.test", "/", cookie).kind, Kind::kForwardToVm);
  ASSERT_TRUE(Cached("web.vmctl.test", "/", cookie));
  EXPECT_FALSE(Cached("web.vmctl.test", "/", WithCookie(alice + "x")));
  EXPECT_FALSE(Cached("web.vmctl.test", "/"));
  Headers basic = cookie;
  basic.emplace_back("Authorization", "Basic YTpi");
  EXPECT_FALSE(Cached("web.vmctl.test", "/", basic));
  EXPECT_FALSE(Cached("web--8080.vmctl.test", "/", cookie));
  EXPECT_FALSE(Cached("db.vmctl.test", "/", cookie));
  EXPECT_FALSE(Cached("web.vmctl.test", "/", cookie, "192.0.2.9"));

  ASSERT_EQ(Get("web.vmctl.test", "/", basic).kind, Kind::kForwardToVm);
  EXPECT_TRUE(Cached("web.vmctl.test", "/", basic));
  Headers basic_other = cookie;
  basic_other.emplace_back("Authorization", "Basic YTpj");
  EXPECT_FALSE(Cached("web.vmctl.test", "/", basic_other));
}

TEST_F(GatekeeperTest, ProxyPathsShareLinksAndRepeatedAuthorizationAreNeverCached) {
  ASSERT_EQ(Get("blog.vmctl.test", "/").kind, Kind::kForwardToVm);
  ASSERT_TRUE(Cached("blog.vmctl.test", "/"));
  EXPECT_FALSE(Cached("blog.vmctl.test", "/__vmctl/login?next=/"));
  EXPECT_FALSE(Cached("blog.vmctl.test", "/__vmctl/auth?ticket=x"));
  EXPECT_FALSE(Cached("blog.vmctl.test", "/?share=x"));
  EXPECT_FALSE(Cached("blog.vmctl.test", "/a?b=1&share=x", {}, kClient, http::verb::post));

  // A POST with ?share= is forwarded, but not cached.
  ASSERT_EQ(Send(http::verb::post, "blog.vmctl.test", "/f?share=x").kind, Kind::kForwardToVm);
  EXPECT_FALSE(Cached("blog.vmctl.test", "/f?share=x", {}, kClient, http::verb::post));
  Headers twice = {{"Authorization", "Basic YTpi"}, {"Authorization", "Basic YTpi"}};
  EXPECT_FALSE(Cached("blog.vmctl.test", "/", twice));
}

TEST_F(GatekeeperTest, CachedForwardsExpire) {
  ASSERT_EQ(Get("blog.vmctl.test", "/").kind, Kind::kForwardToVm);
  steady_now_ += std::chrono::milliseconds(999);
  EXPECT_TRUE(Cached("blog.vmctl.test", "/"));
  steady_now_ += std::chrono::milliseconds(1);
  EXPECT_FALSE(Cached("blog.vmctl.test", "/"));
  // A new decision is cached afresh.
  ASSERT_EQ(Get("blog.vmctl.test", "/").kind, Kind::kForwardToVm);
  EXPECT_TRUE(Cached("blog.vmctl.test", "/"));
}

TEST_F(GatekeeperTest, ZeroTtlCachesNothing) {
  gatekeeper_ = MakeGatekeeper(std::chrono::milliseconds(0));
  ASSERT_EQ(Get("blog.vmctl.test", "/").kind, Kind::kForwardToVm);
  EXPECT_FALSE(Cached("blog.vmctl.test", "/"));
}

TEST_F(GatekeeperTest, RefusalsAreNeverCached) {
  EXPECT_EQ(Header(Get("web.vmctl.test", "/"), http::field::location).substr(0, 29),
            "https://vmctl.test:8443/auth?");
  EXPECT_FALSE(Cached("web.vmctl.test", "/"));
  Headers wrong_token = {{"Authorization", "Bearer wrong"}};
  EXPECT_EQ(Get("blog.vmctl.test", "/", wrong_token).response.result(), http::status::unauthorized);
  EXPECT_FALSE(Cached("blog.vmctl.test", "/", wrong_token));
  std::string bob = HostSession(Login("u2"), "web.vmctl.test");
  EXPECT_EQ(Get("web.vmctl.test", "/", WithCookie(bob)).response.result(), http::status::not_found);
  EXPECT_FALSE(Cached("web.vmctl.test", "/", WithCookie(bob)));
  EXPECT_EQ(Get("nosuch.vmctl.test", "/").kind, Kind::kRespond);
  EXPECT_FALSE(Cached("nosuch.vmctl.test", "/"));
  // Nor DOMAIN's pages, nor the API.
  std::string alice = Login("u1");
  ASSERT_EQ(Get(kDomain, "/api/v1/vms", WithCookie(alice)).kind, Kind::kForwardToApi);
  EXPECT_FALSE(Cached(kDomain, "/api/v1/vms", WithCookie(alice)));
}

TEST_F(GatekeeperTest, WhatTheGatekeeperChangesEmptiesTheCache) {
  std::string alice_domain = Login("u1");
  std::string alice = HostSession(alice_domain, "web.vmctl.test");
  Result<controller::ShareLink> link = sharing_.CreateShareLink("u1", "web");
  ASSERT_TRUE(link.ok());
  std::string share = "/?share=" + link->url.substr(link->url.find("share=") + 6);
  std::string bob = HostSession(Login("u2"), "web.vmctl.test");
  Headers same_origin = WithCookie(alice_domain);
  same_origin.emplace_back("Origin", std::string(kOrigin));
  std::vector<std::pair<std::string, std::function<void()>>> changes = {
      {"login link", [&] { Login("u3"); }},
      {"host ticket", [&] { HostSession(alice_domain, "db.vmctl.test"); }},
      {"share link",
       [&] {
         EXPECT_EQ(Header(Get("web.vmctl.test", share, WithCookie(bob)), http::field::location),
                   "/");
       }},
      {"logout",
       [&] {
         EXPECT_EQ(Send(http::verb::post, kDomain, "/logout", same_origin).response.result(),
                   http::status::see_other);
       }},
  };
  for (const auto& [change, make] : changes) {
    ASSERT_EQ(Get("blog.vmctl.test", "/").kind, Kind::kForwardToVm);
    ASSERT_TRUE(Cached("blog.vmctl.test", "/")) << change;
    make();
    EXPECT_FALSE(Cached("blog.vmctl.test", "/")) << change;
  }
  // The logout ended alice's session on the VM host too: refused from now on.
  EXPECT_EQ(Get("web.vmctl.test", "/", WithCookie(alice)).kind, Kind::kRespond);
  EXPECT_FALSE(Cached("web.vmctl.test", "/", WithCookie(alice)));
  // A wrong secret changes nothing: the cache stays.
  ASSERT_EQ(Get("blog.vmctl.test", "/").kind, Kind::kForwardToVm);
  EXPECT_EQ(Get("blog.vmctl.test", "/__vmctl/auth?ticket=guess").response.result(),
            http::status::forbidden);
  EXPECT_TRUE(Cached("blog.vmctl.test", "/"));
}

TEST_F(GatekeeperTest, TheCacheIsBounded) {
  auto cookie = [](size_t i) { return WithCookie("anonymous-" + std::to_string(i)); };
  auto decide = [&](size_t from, size_t to) {
    for (size_t i = from; i < to; ++i) {
      ASSERT_EQ(Get("blog.vmctl.test", "/", cookie(i)).kind, Kind::kForwardToVm);
    }
  };
  constexpr size_t kMax = Gatekeeper::kMaxCachedDecisions;
  // Full, with a quarter expired: those are dropped, the others stay.
  decide(0, kMax / 4);
  steady_now_ += std::chrono::milliseconds(600);
  decide(kMax / 4, kMax);
  EXPECT_TRUE(Cached("blog.vmctl.test", "/", cookie(0)));
  steady_now_ += std::chrono::milliseconds(500);
  decide(kMax, kMax + 1);
  EXPECT_TRUE(Cached("blog.vmctl.test", "/", cookie(kMax / 4)));
  EXPECT_TRUE(Cached("blog.vmctl.test", "/", cookie(kMax)));
  // Full again, nothing expired: all are dropped but the newest.
  decide(kMax + 1, kMax + kMax / 4);
  EXPECT_TRUE(Cached("blog.vmctl.test", "/", cookie(kMax / 4)));
  decide(kMax + kMax / 4, kMax + kMax / 4 + 1);
  EXPECT_FALSE(Cached("blog.vmctl.test", "/", cookie(kMax / 4)));
  EXPECT_FALSE(Cached("blog.vmctl.test", "/", cookie(kMax + kMax / 4 - 1)));
  EXPECT_TRUE(Cached("blog.vmctl.test", "/", cookie(kMax + kMax / 4)));
}

TEST_F(GatekeeperTest, LongCredentialsAreNotCached) {
  Headers long_basic = {{"Authorization", "Basic " + std::string(2000, 'a')}};
  ASSERT_EQ(Get("blog.vmctl.test", "/", long_basic).kind, Kind::kForwardToVm);
  EXPECT_FALSE(Cached("blog.vmctl.test", "/", long_basic));
}

TEST_F(GatekeeperTest, CacheIsSharedByConcurrentCalls) {
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 300; ++i) {
        Headers cookie = WithCookie("anonymous-" + std::to_string(t) + "-" + std::to_string(i % 7));
        std::shared_ptr<const Decision> cached = Cached("blog.vmctl.test", "/", cookie);
        if (cached) {
          EXPECT_EQ(cached->kind, Kind::kForwardToVm);
        }
        EXPECT_EQ(Get("blog.vmctl.test", "/", cookie).kind, Kind::kForwardToVm);
      }
    });
  }
  threads.emplace_back([&] {
    for (int i = 0; i < 30; ++i) Login("u1");
  });
  for (std::thread& thread : threads) thread.join();
  ASSERT_EQ(Get("blog.vmctl.test", "/").kind, Kind::kForwardToVm);
  EXPECT_TRUE(Cached("blog.vmctl.test", "/"));
}

}  // namespace
}  // namespace vmctl::proxy
