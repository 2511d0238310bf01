#include <charconv>
#include <nlohmann/json.hpp>
#include <string_view>

#include "cli/command_support.h"
#include "model/email.h"

namespace vmctl::cli {

using nlohmann::json;

std::string WebPortText(const json& sharing) {
  return fmt::format("{}{}", sharing.value("web_port", 0),
                     sharing.value("web_port_explicit", false) ? "" : " (the image's default)");
}

Result<uint16_t> ParseWebPortArgument(std::string_view text) {
  if (text == "default") return uint16_t{0};
  unsigned value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || value > 65535) {
    return InvalidArgument(
        fmt::format("bad port '{}': give 1-65535, or 0 or \"default\"", EscapeForDisplay(text)));
  }
  return static_cast<uint16_t>(value);
}

void PrintSharing(const Globals& g, const json& s) {
  Print(g, "{}, web port {}: {}\n", s.value("public", false) ? "public" : "private", WebPortText(s),
        s.value("url", ""));
  for (const auto& u : s.value("users", json::array())) {
    Print(g, "user    {} ({})\n", u.value("email", ""), u.value("name", ""));
  }
  for (const auto& l : s.value("links", json::array())) {
    Print(g, "link    {} (unused, made {} ago)\n", l.value("id", ""),
          Age(l.value("created_at", int64_t{0})));
  }
  for (const auto& d : s.value("domains", json::array())) {
    Print(g, "domain  {}\n", d.get<std::string>());
  }
}

namespace {

std::string VmPath(const std::string& name, const std::string& what) {
  return "/v1/vms/" + PathSegment(name) + "/" + what;
}

struct Opts {
  std::string name, arg;
  bool json = false;
};

using OptsPtr = std::shared_ptr<Opts>;

CLI::App* VmCommand(CLI::App& parent, const char* verb, const char* help, const OptsPtr& o,
                    const char* arg = nullptr, const char* arg_help = nullptr) {
  auto* cmd = parent.add_subcommand(verb, help);
  cmd->add_option("name", o->name, "VM name")->required();
  if (arg) cmd->add_option(arg, o->arg, arg_help)->required();
  return cmd;
}

void AddVisibilityCommands(CLI::App& share, const GlobalsPtr& g, const Done& done,
                           const OptsPtr& o) {
  for (bool is_public : {true, false}) {
    auto* cmd = VmCommand(share, is_public ? "set-public" : "set-private",
                          is_public ? "let everyone reach the VM's web app, without logging in"
                                    : "let only its owner and the users it is shared with in",
                          o);
    cmd->callback([g, o, done, is_public] {
      auto r = Client(*g).Call("PUT", VmPath(o->name, "sharing"), json{{"public", is_public}});
      if (!r.ok()) return done(Fail(*g, r.error()));
      Print(*g, "VM '{}' is {}: {}\n", o->name, is_public ? "public" : "private",
            r->value("url", ""));
      done(0);
    });
  }
  auto* port = VmCommand(share, "port", "the port of the VM that https://VM.DOMAIN reaches", o,
                         "port", "1-65535, or 0 or \"default\" for the image's default");
  port->callback([g, o, done] {
    auto value = ParseWebPortArgument(o->arg);
    if (!value.ok()) return done(Fail(*g, value.error()));
    auto r = Client(*g).Call("PUT", VmPath(o->name, "sharing"), json{{"web_port", *value}});
    if (!r.ok()) return done(Fail(*g, r.error()));
    Print(*g, "VM '{}' serves web port {}.\n", o->name, WebPortText(*r));
    done(0);
  });
}

void AddShareTargetCommands(CLI::App& share, const GlobalsPtr& g, const Done& done,
                            const OptsPtr& o) {
  auto* add =
      VmCommand(share, "add", "share a VM with a registered user", o, "email", "the user's email");
  add->callback([g, o, done] {
    auto r = Client(*g).Call("POST", VmPath(o->name, "shares"), json{{"email", o->arg}});
    if (!r.ok()) return done(Fail(*g, r.error()));
    Print(*g, "VM '{}' is shared with {}.\n", o->name, o->arg);
    done(0);
  });
  auto* link = VmCommand(share, "add-link",
                         "a link that gives whoever opens it logged in a share (shown once)", o);
  link->callback([g, o, done] {
    auto r = Client(*g).Call("POST", VmPath(o->name, "share-links"), json::object());
    if (!r.ok()) return done(Fail(*g, r.error()));
    Print(*g, "{}\n", r->value("url", ""));
    g->io.err(fmt::format(
        "This link is shown once. The first logged-in user to open it gets a share of '{}'; "
        "`share rm {} {}` revokes it unused.\n",
        o->name, o->name, r->value("id", "")));
    done(0);
  });
  auto* rm = VmCommand(share, "rm", "stop sharing a VM with a user, or revoke an unused link", o,
                       "target", "the user's email or the link's id (`share ls`)");
  rm->callback([g, o, done] {
    auto r = Client(*g).Call("DELETE", VmPath(o->name, "shares/" + PathSegment(o->arg)));
    if (!r.ok()) return done(Fail(*g, r.error()));
    if (o->arg.find('@') != std::string::npos) {
      Print(*g, "VM '{}' is no longer shared with {}.\n", o->name, o->arg);
    } else {
      Print(*g, "Share link {} of VM '{}' is revoked.\n", o->arg, o->name);
    }
    done(0);
  });
  auto* ls = VmCommand(share, "ls", "who and what reaches a VM's web app", o);
  ls->add_flag("--json", o->json, "print JSON");
  ls->callback([g, o, done] {
    auto r = Client(*g).Call("GET", VmPath(o->name, "sharing"));
    if (!r.ok()) return done(Fail(*g, r.error()));
    if (o->json) {
      Print(*g, "{}\n", r->dump(2));
    } else {
      PrintSharing(*g, *r);
    }
    done(0);
  });
}

}  // namespace

// share set-public|set-private|add|add-link|rm|ls|port
void AddShareCommands(CLI::App& app, const GlobalsPtr& g, const Done& done) {
  auto o = std::make_shared<Opts>();
  auto* share =
      app.add_subcommand("share", "who reaches a VM's web app: public, users, links, port");
  share->require_subcommand(1);
  AddVisibilityCommands(*share, g, done, o);
  AddShareTargetCommands(*share, g, done, o);
}

// domain add|rm|ls
void AddDomainCommands(CLI::App& app, const GlobalsPtr& g, const Done& done) {
  auto o = std::make_shared<Opts>();
  auto* domain = app.add_subcommand("domain", "custom domains that reach a VM's web app");
  domain->require_subcommand(1);
  for (bool add : {true, false}) {
    auto* cmd = VmCommand(*domain, add ? "add" : "rm",
                          add ? "serve the VM's web app at a domain that points to this host"
                              : "stop serving the VM at a domain",
                          o, "domain", "e.g. example.com");
    cmd->callback([g, o, done, add] {
      auto r = add ? Client(*g).Call("POST", VmPath(o->name, "domains"), json{{"domain", o->arg}})
                   : Client(*g).Call("DELETE", VmPath(o->name, "domains/" + PathSegment(o->arg)));
      if (!r.ok()) return done(Fail(*g, r.error()));
      Print(*g, "VM '{}' is {} at {}.\n", o->name, add ? "served" : "no longer served", o->arg);
      done(0);
    });
  }
  auto* ls = VmCommand(*domain, "ls", "a VM's custom domains", o);
  ls->add_flag("--json", o->json, "print JSON");
  ls->callback([g, o, done] {
    auto r = Client(*g).Call("GET", VmPath(o->name, "domains"));
    if (!r.ok()) return done(Fail(*g, r.error()));
    if (o->json) {
      Print(*g, "{}\n", (*r)["domains"].dump(2));
      return done(0);
    }
    for (const auto& d : (*r)["domains"]) Print(*g, "{}\n", d.get<std::string>());
    done(0);
  });
}

}  // namespace vmctl::cli
