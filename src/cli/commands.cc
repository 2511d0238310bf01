#include "cli/commands.h"

#include <cstdio>

#include "cli/command_support.h"

namespace vmctl::cli {

Io TerminalIo() {
  return {[](std::string_view s) { std::fwrite(s.data(), 1, s.size(), stdout); },
          [](std::string_view s) {
            std::fflush(stdout);
            std::fwrite(s.data(), 1, s.size(), stderr);
          }};
}

void AddCommands(CLI::App& app, int* exit_code, const CommandOptions& options) {
  auto g = std::make_shared<Globals>();
  g->socket = options.socket;
  g->user = options.user;
  g->io = options.io;
  g->next_step = options.next_step;
  if (options.socket.empty()) {
    app.add_option("--socket", g->socket,
                   "daemon API socket (default $VMCTL_SOCKET or "
                   "/run/vmctl/vmctl.sock)");
  }
  Done done = [exit_code](int code) { *exit_code = code; };
  AddVmCommands(app, g, done);
  AddShareCommands(app, g, done);
  AddExecCommands(app, g, done);
  AddImageCommands(app, g, done);
  if (!options.only.empty()) {
    for (auto* sub : app.get_subcommands([](CLI::App*) { return true; })) {
      if (!options.only.count(sub->get_name())) app.remove_subcommand(sub);
    }
  }
}

}  // namespace vmctl::cli
