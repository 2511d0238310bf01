#ifndef VMCTL_CLI_COMMANDS_H_
#define VMCTL_CLI_COMMANDS_H_

#include <CLI/CLI.hpp>

namespace vmctl::cli {

// Adds the client subcommands (create, ls, show, start, stop, restart, rm, exec, logs, image) to
// `app`. The one that runs stores its process exit code in *exit_code: 0, an Error's ExitCode()
// after printing "vmctl: <message>" to stderr, or for exec the remote command's status.
void AddCommands(CLI::App& app, int* exit_code);

}  // namespace vmctl::cli

#endif  // VMCTL_CLI_COMMANDS_H_
