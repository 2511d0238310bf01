#include <nlohmann/json.hpp>

#include "cli/command_support.h"

namespace vmctl::cli {

void AddCaCommands(CLI::App& app, const GlobalsPtr& g, const Done& done) {
  auto* ca = app.add_subcommand(
      "ca", "print the local CA's certificate (PEM), to trust the daemon's HTTPS certificates");
  ca->callback([g, done] {
    auto answer = Client(*g).Call("GET", "/v1/ca");
    if (!answer.ok()) return done(Fail(*g, answer.error()));
    const auto& pem = (*answer)["certificate"];
    if (!pem.is_string()) return done(Fail(*g, Internal("the daemon sent no certificate")));
    Print(*g, "{}", pem.get<std::string>());
    done(0);
  });
}

}  // namespace vmctl::cli
