#include "proxy/pages.h"

#include <gtest/gtest.h>

namespace vmctl::proxy {
namespace {

namespace http = boost::beast::http;

controller::WebRoute Route() {
  controller::WebRoute route;
  route.vm.name = "web";
  route.vm.state = VmState::kStopped;
  route.port = 8080;
  return route;
}

TEST(PagesTest, StoppedVmSaysHowToStartIt) {
  auto page = VmNotRunningPage(Route(), "ssh -p 2222 vmctl.localhost", false, 11, true);
  EXPECT_EQ(page.result(), http::status::service_unavailable);
  EXPECT_NE(page.body().find("ssh -p 2222 vmctl.localhost start web"), std::string::npos);
  EXPECT_EQ(page[http::field::cache_control], "no-store");
  EXPECT_TRUE(page.keep_alive());
  EXPECT_EQ(page[http::field::content_length], std::to_string(page.body().size()));
}

TEST(PagesTest, NotListeningNamesThePort) {
  auto page = NotListeningPage(Route(), true, 11, false);
  EXPECT_EQ(page.result(), http::status::bad_gateway);
  EXPECT_NE(page.body().find("port 8080"), std::string::npos);
  EXPECT_NE(page.body().find("<html>"), std::string::npos);
  EXPECT_FALSE(page.keep_alive());
}

TEST(PagesTest, TimeoutAndErrors) {
  EXPECT_EQ(UpstreamTimeoutPage(Route(), false, 10, false).result(), http::status::gateway_timeout);
  auto page = ErrorPage(http::status::request_header_fields_too_large, "too large", 11, false);
  EXPECT_EQ(page.result_int(), 431);
  EXPECT_EQ(page.body(), "Request Header Fields Too Large: too large\n");
}

TEST(PagesTest, HtmlIsEscaped) {
  auto route = Route();
  route.vm.name = "<b>";
  EXPECT_EQ(NotListeningPage(route, true, 11, false).body().find("<b>"), std::string::npos);
}

}  // namespace
}  // namespace vmctl::proxy
