// libFuzzer target for the HTTPS front end's access decisions: Cookie and Authorization headers,
// query parameters and percent-coding, redirect-target checks, the web URL, and whole request
// heads through the Gatekeeper (host classification included) against in-memory services. The
// first byte picks the parser, the rest is its input (docs/fuzzing.md).

#include <boost/beast/http.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/access_url.h"
#include "proxy/cookies.h"
#include "proxy/gatekeeper.h"
#include "testing/fake_web_services/fake_web_services.h"

namespace {

namespace http = boost::beast::http;
using namespace vmctl::proxy;  // NOLINT: the whole module is under test

constexpr std::string_view kOrigin = "https://vmctl.test:8443";

void CheckCookies(std::string_view input) {
  for (const auto& [name, value] : ParseCookieHeader(input)) {
    if (name.empty() || name.find(';') != std::string_view::npos) std::abort();
    if (value.find(';') != std::string_view::npos) std::abort();
    if (!FindCookie(input, name)) std::abort();
  }
  if (auto token = BearerToken(input); token && token->empty()) std::abort();
}

void CheckQuery(std::string_view input) {
  if (auto decoded = PercentDecode(PercentEncode(input), true); !decoded || *decoded != input) {
    std::abort();
  }
  (void)PercentDecode(input, true);
  Target split = SplitTarget(input);
  if (split.path.find('?') != std::string_view::npos) std::abort();
  std::string without = WithoutQueryParam(input, "share");
  if (QueryParam(SplitTarget(without).query, "share")) std::abort();
  (void)QueryParam(split.query, "next");
}

void CheckRedirectPath(std::string_view input) {
  if (!IsSafeRedirectPath(input)) return;
  if (input[0] != '/' || input.starts_with("//") || input.find('\\') != std::string_view::npos) {
    std::abort();
  }
}

void CheckWebOrigin(std::string_view input) {
  auto origin = ParseWebOrigin(input);
  if (origin.ok() && !ParseWebOrigin(origin->For()).ok()) std::abort();
}

struct World {
  World() : auth("vmctl.test"), sharing("vmctl.test") {
    auth.AddUser("u1", "alice@example.com");
    sharing.AddUser("u1", "alice@example.com");
    vmctl::VmRecord vm;
    vm.id = "0000000000a1";
    vm.owner = "u1";
    vm.name = "web";
    sharing.AddVm(vm);
    auth.AddVm("web", vm.id);
    (void)sharing.AddDomain("u1", "web", "web.example.com");
    GatekeeperOptions options{"vmctl.test", std::string(kOrigin), "ssh vmctl.test",
                              [] { return int64_t{1'000'000}; }};
    gatekeeper = *Gatekeeper::Create(std::move(options), auth, sharing);
  }
  vmctl::testing::FakeAuthService auth;
  vmctl::testing::FakeSharingService sharing;
  std::unique_ptr<Gatekeeper> gatekeeper;
};

// A redirect leads to a path of the same host, to DOMAIN, or to a host under DOMAIN or a
// registered custom domain: never anywhere else.
bool IsOwnLocation(std::string_view location) {
  if (location.empty() || IsSafeRedirectPath(location)) return true;
  if (!location.starts_with("https://")) return false;
  std::string_view rest = location.substr(8);
  size_t slash = rest.find('/');
  if (slash == std::string_view::npos || rest.substr(slash).starts_with("//")) return false;
  std::string_view authority = rest.substr(0, slash);
  std::string_view host = authority.substr(0, authority.find(':'));
  if (authority.substr(host.size()) != ":8443") return false;
  return host == "vmctl.test" || host == "web.example.com" ||
         (host.ends_with(".vmctl.test") && host.find('.') == host.size() - 11);
}

// Lines: method, target, host, Cookie, Authorization, Origin (missing lines are absent headers).
void CheckDecide(std::string_view input) {
  World world;  // fresh for each input, so that each input alone decides what happens
  std::vector<std::string> lines;
  for (size_t start = 0; lines.size() < 6;) {
    size_t end = input.find('\n', start);
    std::string line(input.substr(start, end - start));
    std::erase_if(line, [](char c) { return c == '\r' || c == '\0'; });
    lines.push_back(std::move(line));
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  lines.resize(6);
  http::request<http::empty_body> request;
  request.method(http::string_to_verb(lines[0]) == http::verb::unknown
                     ? http::verb::get
                     : http::string_to_verb(lines[0]));
  request.target(lines[1].empty() ? "/" : lines[1]);
  request.version(11);
  if (!lines[3].empty()) request.set(http::field::cookie, lines[3]);
  if (!lines[4].empty()) request.set(http::field::authorization, lines[4]);
  if (!lines[5].empty()) request.set(http::field::origin, lines[5]);
  Decision decision = world.gatekeeper->Decide(request.base(), lines[2], "192.0.2.1");
  if (decision.kind == Decision::Kind::kForwardToApi &&
      (!decision.identity || !decision.api_target.starts_with("/v1"))) {
    std::abort();
  }
  if (decision.kind == Decision::Kind::kRespond &&
      !IsOwnLocation(decision.response[http::field::location])) {
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 5) {
    case 0:
      CheckCookies(input);
      break;
    case 1:
      CheckQuery(input);
      break;
    case 2:
      CheckRedirectPath(input);
      break;
    case 3:
      CheckWebOrigin(input);
      break;
    case 4:
      CheckDecide(input);
      break;
  }
  return 0;
}
