#include <CLI/CLI.hpp>

#include "base/log.h"
#include "cli/commands.h"
#include "daemon/serve.h"

int main(int argc, char** argv) {
  vmctl::InitLogging();
  CLI::App app{"vmctl: Linux VMs as a service", "vmctl"};
  app.require_subcommand(1);
  int exit_code = 0;
  vmctl::daemon::AddServeCommand(app, &exit_code);
  vmctl::cli::AddCommands(app, &exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return exit_code;
}
