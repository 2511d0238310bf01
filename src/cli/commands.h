#ifndef VMCTL_CLI_COMMANDS_H_
#define VMCTL_CLI_COMMANDS_H_

#include <CLI/CLI.hpp>
#include <functional>
#include <set>
#include <string>
#include <string_view>

namespace vmctl::cli {

// Where a command's output goes: the terminal for the CLI, an SSH channel for the gateway.
struct Io {
  std::function<void(std::string_view)> out, err;
};
Io TerminalIo();

struct CommandOptions {
  Io io = TerminalIo();
  // Acts as this user id (the API's X-Vmctl-User header); empty: the daemon's local admin.
  std::string user;
  // The daemon's API socket; empty: a --socket flag, $VMCTL_SOCKET or the default.
  std::string socket;
  // Only these subcommands (the SSH gateway's command mode); empty: all.
  std::set<std::string> only;
  // What `create` suggests doing next with the new VM, in this front end's words.
  std::function<std::string(const std::string& vm)> next_step = [](const std::string& vm) {
    return "Run a command:  vmctl exec " + vm + " -- uname -a";
  };
};

// Adds the client subcommands (create, ls, show, start, stop, restart, rm, resize, exec, logs,
// image, share, login, logout, token, ca) to `app`: the one implementation behind the CLI and the
// SSH gateway's command mode. The one that runs stores its exit code in *exit_code: 0, an Error's
// ExitCode() after printing "vmctl: <message>" to io.err, or for exec the remote command's status.
// exec and logs use the process's own stdin/stdout and are for the CLI only.
void AddCommands(CLI::App& app, int* exit_code, const CommandOptions& options = {});

}  // namespace vmctl::cli

#endif  // VMCTL_CLI_COMMANDS_H_
