#ifndef VMCTL_CLI_COMMAND_SUPPORT_H_
#define VMCTL_CLI_COMMAND_SUPPORT_H_

// Internal to vmctl_cli: what every command group (vm_commands.cc, share_commands.cc, ...) uses.

#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "base/result.h"
#include "cli/api_client.h"
#include "cli/commands.h"

namespace vmctl::cli {

// What the commands of one AddCommands call share; owned by their callbacks.
struct Globals {
  std::string socket;
  std::string user;
  Io io;
  std::function<std::string(const std::string& vm)> next_step;
};
using GlobalsPtr = std::shared_ptr<Globals>;
// Stores the exit code of the command that ran.
using Done = std::function<void(int)>;

template <typename... Args>
void Print(const Globals& g, fmt::format_string<Args...> format, Args&&... args) {
  g.io.out(fmt::format(format, std::forward<Args>(args)...));
}

// Prints "vmctl: <message>" and returns the error's exit code.
int Fail(const Globals& g, const Error& error);
ApiClient Client(const Globals& g);
// Prints progress lines of long operations as "==> line" to io.err.
std::function<void(const std::string&)> Progress(const Globals& g);

// 1024 -> "1G", 512 -> "512M".
std::string Mib(int64_t mib);
// How long ago a Unix time was: "42s", "3m", "5h", "2d".
std::string Age(int64_t created);
// Parses sizes like 512, 512M, 2G into MiB.
Result<int64_t> ParseMib(const std::string& text);

// The command groups AddCommands is made of.
void AddVmCommands(CLI::App& app, const GlobalsPtr& g, const Done& done);
void AddShareCommands(CLI::App& app, const GlobalsPtr& g, const Done& done);
void AddExecCommands(CLI::App& app, const GlobalsPtr& g, const Done& done);
void AddImageCommands(CLI::App& app, const GlobalsPtr& g, const Done& done);

}  // namespace vmctl::cli

#endif  // VMCTL_CLI_COMMAND_SUPPORT_H_
