#include <algorithm>
#include <ctime>
#include <nlohmann/json.hpp>

#include "cli/command_support.h"
#include "model/web_auth.h"

namespace vmctl::cli {
namespace {

using nlohmann::json;

// "2026-12-02 01:30 UTC", or "never" for 0.
std::string When(int64_t at) {
  if (at == 0) return "never";
  std::time_t t = static_cast<std::time_t>(at);
  std::tm utc{};
  ::gmtime_r(&t, &utc);
  char text[32];
  std::strftime(text, sizeof(text), "%Y-%m-%d %H:%M UTC", &utc);
  return text;
}

void AddLogin(CLI::App& app, const GlobalsPtr& g, const Done& done) {
  auto* login = app.add_subcommand("login", "a one-time URL that logs a browser in");
  login->callback([g, done] {
    auto r = Client(*g).Call("POST", "/v1/login-link");
    if (!r.ok()) return done(Fail(*g, r.error()));
    // To the nearest minute: the clock has moved on by a second or so since the link was made.
    int64_t left = std::max<int64_t>(r->value("expires_at", int64_t{0}) - std::time(nullptr), 0);
    if (left >= 60) left = (left + 30) / 60 * 60;
    Print(*g, "{}\n", r->value("url", ""));
    Print(*g, "Open it in your browser within {}; it works once.\n",
          FormatDuration(std::chrono::seconds(left)));
    done(0);
  });
  auto* logout = app.add_subcommand("logout", "end every browser session of yours");
  logout->callback([g, done] {
    auto r = Client(*g).Call("POST", "/v1/logout");
    if (!r.ok()) return done(Fail(*g, r.error()));
    int sessions = r->value("sessions", 0);
    Print(*g, "Logged out: {} browser session{} ended.\n", sessions, sessions == 1 ? "" : "s");
    done(0);
  });
}

}  // namespace

// login, logout, token new|ls|rm
void AddAuthCommands(CLI::App& app, const GlobalsPtr& g, const Done& done) {
  AddLogin(app, g, done);
  struct Opts {
    std::string vm, expires, id;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  auto* token = app.add_subcommand("token", "API tokens for programs (Authorization: Bearer)");
  token->require_subcommand(1);
  auto* create = token->add_subcommand("new", "create a token; its secret is shown once");
  create->add_option("--vm", o->vm, "limit the token to this VM of yours");
  create->add_option("--expires", o->expires, "lifetime such as 30d, 12h or 90m (default: never)");
  create->callback([g, o, done] {
    json body = json::object();
    if (!o->vm.empty()) body["vm"] = o->vm;
    if (!o->expires.empty()) body["expires"] = o->expires;
    auto r = Client(*g).Call("POST", "/v1/tokens", body);
    if (!r.ok()) return done(Fail(*g, r.error()));
    const json& info = (*r)["token"];
    Print(*g, "{}\n", r->value("secret", ""));
    Print(*g, "Token {}{}, expires {}. Copy the secret now: it is shown only once.\n",
          info.value("id", ""),
          info.value("vm", "").empty() ? "" : " for VM '" + info.value("vm", "") + "'",
          When(info.value("expires_at", int64_t{0})));
    done(0);
  });
  auto* ls = token->add_subcommand("ls", "your tokens (never their secrets)");
  ls->add_flag("--json", o->json, "print JSON");
  ls->callback([g, o, done] {
    auto r = Client(*g).Call("GET", "/v1/tokens");
    if (!r.ok()) return done(Fail(*g, r.error()));
    if (o->json) {
      Print(*g, "{}\n", (*r)["tokens"].dump(2));
      return done(0);
    }
    Print(*g, "{:<14} {:<20} {:<21} {:<21} {}\n", "ID", "VM", "CREATED", "EXPIRES", "LAST USED");
    for (const auto& t : (*r)["tokens"]) {
      Print(*g, "{:<14} {:<20} {:<21} {:<21} {}\n", t.value("id", ""),
            t.value("vm", "").empty() ? "(all)" : t.value("vm", ""),
            When(t.value("created_at", int64_t{0})), When(t.value("expires_at", int64_t{0})),
            When(t.value("last_used_at", int64_t{0})));
    }
    done(0);
  });
  auto* rm = token->add_subcommand("rm", "remove a token: programs using it are refused");
  rm->add_option("id", o->id, "token id (from `token ls`)")->required();
  rm->callback([g, o, done] {
    auto r = Client(*g).Call("DELETE", "/v1/tokens/" + PathSegment(o->id));
    if (!r.ok()) return done(Fail(*g, r.error()));
    Print(*g, "Token {} removed.\n", o->id);
    done(0);
  });
}

}  // namespace vmctl::cli
