#include <nlohmann/json.hpp>

#include "cli/command_support.h"

namespace vmctl::cli {

using nlohmann::json;

// share ls|add|rm
void AddShareCommands(CLI::App& app, const GlobalsPtr& g, const Done& done) {
  struct Opts {
    std::string name, email;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  auto* share = app.add_subcommand("share", "share a VM with other users, by their email");
  share->require_subcommand(1);
  auto path = [o] { return "/v1/vms/" + PathSegment(o->name) + "/shares"; };
  auto* ls = share->add_subcommand("ls", "who a VM is shared with");
  ls->add_option("name", o->name, "VM name")->required();
  ls->add_flag("--json", o->json, "print JSON");
  ls->callback([g, o, path, done] {
    auto r = Client(*g).Call("GET", path());
    if (!r.ok()) return done(Fail(*g, r.error()));
    if (o->json) {
      Print(*g, "{}\n", (*r)["shares"].dump(2));
      return done(0);
    }
    for (const auto& s : (*r)["shares"]) {
      Print(*g, "{} ({})\n", s.value("email", ""), s.value("name", ""));
    }
    done(0);
  });
  for (const char* verb : {"add", "rm"}) {
    bool add = std::string(verb) == "add";
    auto* cmd = share->add_subcommand(
        verb, add ? "share a VM with a registered user" : "stop sharing a VM with a user");
    cmd->add_option("name", o->name, "VM name")->required();
    cmd->add_option("email", o->email, "the user's email")->required();
    cmd->callback([g, o, path, done, add] {
      auto r = add ? Client(*g).Call("POST", path(), json{{"email", o->email}})
                   : Client(*g).Call("DELETE", path() + "?email=" + PathSegment(o->email));
      if (!r.ok()) return done(Fail(*g, r.error()));
      if (add) {
        Print(*g, "VM '{}' is shared with {}.\n", o->name, o->email);
      } else {
        Print(*g, "VM '{}' is no longer shared with {}.\n", o->name, o->email);
      }
      done(0);
    });
  }
}

}  // namespace vmctl::cli
