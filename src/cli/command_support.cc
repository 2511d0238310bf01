#include "cli/command_support.h"

#include <ctime>
#include <filesystem>

namespace vmctl::cli {

int Fail(const Globals& g, const Error& error) {
  g.io.err("vmctl: " + error.message() + "\n");
  return error.ExitCode();
}

ApiClient Client(const Globals& g) {
  return ApiClient(g.socket.empty() ? DefaultSocketPath() : std::filesystem::path(g.socket),
                   g.user);
}

std::function<void(const std::string&)> Progress(const Globals& g) {
  return [&g](const std::string& line) { g.io.err("==> " + line + "\n"); };
}

std::string Mib(int64_t mib) {
  if (mib >= 1024 && mib % 1024 == 0) return fmt::format("{}G", mib / 1024);
  return fmt::format("{}M", mib);
}

std::string Age(int64_t created) {
  int64_t s = std::time(nullptr) - created;
  if (s < 120) return fmt::format("{}s", s);
  if (s < 7200) return fmt::format("{}m", s / 60);
  if (s < 172800) return fmt::format("{}h", s / 3600);
  return fmt::format("{}d", s / 86400);
}

Result<int64_t> ParseMib(const std::string& text) {
  if (text.empty()) return InvalidArgument("empty size");
  size_t used = 0;
  int64_t value = 0;
  try {
    value = std::stoll(text, &used);
  } catch (const std::exception&) {
    return InvalidArgument(fmt::format("bad size '{}' (examples: 512M, 2G)", text));
  }
  std::string unit = text.substr(used);
  if (unit.empty() || unit == "M" || unit == "m" || unit == "MiB") return value;
  if (unit == "G" || unit == "g" || unit == "GiB") return value * 1024;
  return InvalidArgument(fmt::format("bad size '{}' (examples: 512M, 2G)", text));
}

}  // namespace vmctl::cli
