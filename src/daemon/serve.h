#ifndef VMCTL_DAEMON_SERVE_H_
#define VMCTL_DAEMON_SERVE_H_

#include <CLI/CLI.hpp>

namespace vmctl::daemon {

// Adds `vmctl serve` to app: the control-plane daemon. Stores its exit code in *exit_code.
void AddServeCommand(CLI::App& app, int* exit_code);

}  // namespace vmctl::daemon

#endif  // VMCTL_DAEMON_SERVE_H_
