#ifndef VMCTL_CLI_API_CLIENT_H_
#define VMCTL_CLI_API_CLIENT_H_

#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>

#include "agent/client.h"
#include "base/result.h"
#include "base/unique_fd.h"

namespace vmctl::cli {

// The daemon's socket: $VMCTL_SOCKET, else /run/vmctl/vmctl.sock.
std::filesystem::path DefaultSocketPath();

// A name as one percent-encoded path segment, so "a/b" or "x?y" reaches the daemon as a name to
// judge rather than as a different endpoint.
std::string PathSegment(std::string_view name);

// Blocking client of the daemon's REST API (docs/api.md). One request per connection.
// Errors: kUnavailable when the daemon cannot be reached; otherwise the daemon's own error
// (code and message from its JSON error body).
class ApiClient {
 public:
  // `user`: the user id requests act as (X-Vmctl-User); empty for the daemon's local admin.
  explicit ApiClient(std::filesystem::path socket, std::string user = "")
      : socket_(std::move(socket)), user_(std::move(user)) {}

  Result<nlohmann::json> Call(const std::string& method, const std::string& target,
                              const std::optional<nlohmann::json>& body = std::nullopt);
  // For long operations: progress lines go to `progress` as they arrive.
  Result<nlohmann::json> CallWithProgress(const std::string& method, const std::string& target,
                                          const std::optional<nlohmann::json>& body,
                                          const std::function<void(const std::string&)>& progress);
  // Writes the console log to `out`; with follow, keeps streaming until the VM is removed or the
  // connection breaks.
  Result<void> Logs(const std::string& name, bool follow, std::ostream& out);
  // Starts a process in the VM and returns the upgraded connection speaking exec frames.
  Result<UniqueFd> StartExec(const std::string& name, const agent::ExecRequest& request,
                             std::string* early_bytes);

 private:
  std::filesystem::path socket_;
  std::string user_;
};

}  // namespace vmctl::cli

#endif  // VMCTL_CLI_API_CLIENT_H_
