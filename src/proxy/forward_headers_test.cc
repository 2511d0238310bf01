#include "proxy/forward_headers.h"

#include <gtest/gtest.h>

namespace vmctl::proxy {
namespace {

namespace http = boost::beast::http;

std::vector<std::string> All(const http::fields& fields, http::field name) {
  std::vector<std::string> values;
  for (const auto& field : fields) {
    if (field.name() == name) values.emplace_back(field.value());
  }
  return values;
}

TEST(ForwardHeadersTest, RemovesTheProxysCookieAndKeepsTheOthers) {
  EXPECT_EQ(RemoveCookie("a=1; __Host-vmctl-session=s; b=2", kSessionCookie), "a=1; b=2");
  EXPECT_EQ(RemoveCookie("__Host-vmctl-session=s", kSessionCookie), "");
  EXPECT_EQ(RemoveCookie("a=1;__Host-vmctl-session=s;b", kSessionCookie), "a=1; b");
  EXPECT_EQ(RemoveCookie("x__Host-vmctl-session=s; __host-vmctl-session=t", kSessionCookie),
            "x__Host-vmctl-session=s; __host-vmctl-session=t")
      << "names are case-sensitive and compared whole";
  EXPECT_EQ(RemoveCookie("", kSessionCookie), "");
  EXPECT_EQ(RemoveCookie(" ; ;", kSessionCookie), "");
}

TEST(ForwardHeadersTest, RemovesDomainFromSetCookie) {
  EXPECT_EQ(RemoveCookieDomain("id=1; Domain=vmctl.localhost; Path=/; HttpOnly"),
            "id=1; Path=/; HttpOnly");
  EXPECT_EQ(RemoveCookieDomain("id=1; domain=.x; DOMAIN = y"), "id=1");
  EXPECT_EQ(RemoveCookieDomain("domain=x; Secure"), "domain=x; Secure")
      << "a cookie may be named domain";
}

TEST(ForwardHeadersTest, UpstreamRequestsCarryTheIdentityAndNoSpoofedHeaders) {
  http::request_header<> head;
  head.method(http::verb::get);
  head.target("/x");
  head.set(http::field::host, "web.vmctl.localhost");
  head.insert("X-Vmctl-User-Id", "spoofed");
  head.insert("x-vmctl-email", "spoofed@example.com");
  head.insert("X-Vmctl-Anything", "spoofed");
  head.insert("X-Forwarded-For", "6.6.6.6");
  head.insert(http::field::forwarded, "for=6.6.6.6");
  head.insert(http::field::authorization, "Bearer secret");
  head.insert(http::field::cookie, "a=1; __Host-vmctl-session=s");
  head.insert(http::field::cookie, "__Host-vmctl-session=t");
  head.insert(http::field::connection, "keep-alive, X-Private");
  head.insert("X-Private", "hop");
  head.insert(http::field::keep_alive, "timeout=5");
  head.insert(http::field::te, "trailers");
  Decision decision;
  decision.kind = Decision::Kind::kForwardToVm;
  decision.identity = controller::Identity{"u1", "alice@example.com", ""};
  decision.consumed_authorization = true;
  PrepareUpstreamRequest(head, decision, "10.0.0.7", "https");

  EXPECT_EQ(head["X-Vmctl-User-Id"], "u1");
  EXPECT_EQ(head["X-Vmctl-Email"], "alice@example.com");
  EXPECT_EQ(head.count("X-Vmctl-Anything"), 0u);
  EXPECT_EQ(head.count("X-Vmctl-User-Id"), 1u);
  EXPECT_EQ(head["X-Forwarded-For"], "10.0.0.7");
  EXPECT_EQ(head.count("X-Forwarded-For"), 1u);
  EXPECT_EQ(head["X-Forwarded-Proto"], "https");
  EXPECT_EQ(head["X-Forwarded-Host"], "web.vmctl.localhost");
  EXPECT_EQ(head.count(http::field::forwarded), 0u);
  EXPECT_EQ(head.count(http::field::authorization), 0u);
  EXPECT_EQ(All(head, http::field::cookie), std::vector<std::string>{"a=1"});
  EXPECT_EQ(head.count(http::field::connection), 0u);
  EXPECT_EQ(head.count("X-Private"), 0u);
  EXPECT_EQ(head.count(http::field::keep_alive), 0u);
  EXPECT_EQ(head.count(http::field::te), 0u);
}

TEST(ForwardHeadersTest, AnonymousAndUnconsumedAuthorization) {
  http::request_header<> head;
  head.set(http::field::host, "web.vmctl.localhost");
  head.insert(http::field::authorization, "Basic YXBwOnB3");
  head.insert("X-Vmctl-Email", "spoofed@example.com");
  Decision decision;
  decision.kind = Decision::Kind::kForwardToVm;
  PrepareUpstreamRequest(head, decision, "10.0.0.7", "https");
  EXPECT_EQ(head[http::field::authorization], "Basic YXBwOnB3") << "the app's own credentials";
  EXPECT_EQ(head.count("X-Vmctl-Email"), 0u);
  EXPECT_EQ(head.count("X-Vmctl-User-Id"), 0u);
}

TEST(ForwardHeadersTest, ApiRequestsNameTheUserAndTheApiTarget) {
  http::request_header<> head;
  head.target("/api/v1/vms");
  head.set(http::field::host, "vmctl.localhost");
  head.insert("X-Vmctl-User", "root");
  Decision decision;
  decision.kind = Decision::Kind::kForwardToApi;
  decision.api_target = "/v1/vms";
  decision.identity = controller::Identity{"u1", "alice@example.com", ""};
  PrepareUpstreamRequest(head, decision, "10.0.0.7", "https");
  EXPECT_EQ(head.target(), "/v1/vms");
  EXPECT_EQ(head["X-Vmctl-User"], "u1");
  EXPECT_EQ(head.count("X-Vmctl-User"), 1u);
  EXPECT_EQ(head.count("X-Vmctl-Email"), 0u);
}

TEST(ForwardHeadersTest, WebSocketUpgradesKeepTheirUpgradeHeaders) {
  http::request_header<> head;
  head.set(http::field::host, "web.vmctl.localhost");
  head.set(http::field::connection, "keep-alive, Upgrade");
  head.set(http::field::upgrade, "websocket");
  head.set(http::field::sec_websocket_key, "dGhlIHNhbXBsZSBub25jZQ==");
  PrepareUpstreamRequest(head, Decision{.kind = Decision::Kind::kForwardToVm}, "1.2.3.4", "https");
  EXPECT_EQ(head[http::field::connection], "upgrade");
  EXPECT_EQ(head[http::field::upgrade], "websocket");
  EXPECT_EQ(head[http::field::sec_websocket_key], "dGhlIHNhbXBsZSBub25jZQ==");

  http::request_header<> other;
  other.set(http::field::connection, "Upgrade");
  other.set(http::field::upgrade, "h2c");
  PrepareUpstreamRequest(other, Decision{.kind = Decision::Kind::kForwardToVm}, "1.2.3.4", "https");
  EXPECT_EQ(other.count(http::field::upgrade), 0u) << "only WebSocket upgrades pass";
}

TEST(ForwardHeadersTest, DownstreamResponsesLoseCookieDomainsAndHopByHopHeaders) {
  http::response_header<> head;
  head.result(http::status::ok);
  head.insert(http::field::set_cookie, "a=1; Domain=vmctl.localhost; Path=/");
  head.insert(http::field::set_cookie, "b=2; Secure");
  head.insert(http::field::connection, "close");
  head.insert(http::field::keep_alive, "timeout=5");
  PrepareDownstreamResponse(head);
  EXPECT_EQ(All(head, http::field::set_cookie),
            (std::vector<std::string>{"a=1; Path=/", "b=2; Secure"}));
  EXPECT_EQ(head.count(http::field::connection), 0u);
  EXPECT_EQ(head.count(http::field::keep_alive), 0u);

  http::response_header<> upgrade;
  upgrade.result(http::status::switching_protocols);
  upgrade.set(http::field::connection, "Upgrade");
  upgrade.set(http::field::upgrade, "websocket");
  PrepareDownstreamResponse(upgrade);
  EXPECT_EQ(upgrade[http::field::upgrade], "websocket");
}

}  // namespace
}  // namespace vmctl::proxy
