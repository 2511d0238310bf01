#include "agent/boot_status.h"

#include <fmt/format.h>

namespace vmctl::agent {
namespace {

constexpr size_t kMaxText = 256;

// A string member of at most kMaxText printable ASCII bytes; absent counts as empty unless
// required.
Result<std::string> TextField(const nlohmann::json& reply, const char* name, bool required) {
  auto it = reply.find(name);
  if (it == reply.end()) {
    if (required) return Internal(fmt::format("boot_status reply without '{}'", name));
    return std::string();
  }
  if (!it->is_string()) return Internal(fmt::format("boot_status '{}' is not a string", name));
  const auto& text = it->get_ref<const std::string&>();
  if (text.size() > kMaxText) {
    return Internal(fmt::format("boot_status '{}' is longer than {} bytes", name, kMaxText));
  }
  // It ends up in progress lines on users' terminals.
  for (unsigned char c : text) {
    if (c < 0x20 || c > 0x7e) {
      return Internal(
          fmt::format("boot_status '{}' holds a byte other than printable ASCII", name));
    }
  }
  return text;
}

}  // namespace

Result<BootStatus> ParseBootStatus(const nlohmann::json& reply) {
  if (!reply.is_object()) return Internal("boot_status reply is not an object");
  auto finished = reply.find("finished");
  if (finished == reply.end() || !finished->is_boolean()) {
    return Internal("boot_status 'finished' is missing or not a boolean");
  }
  BootStatus status;
  status.finished = finished->get<bool>();
  VMCTL_ASSIGN_OR_RETURN(status.state, TextField(reply, "state", true));
  VMCTL_ASSIGN_OR_RETURN(status.init, TextField(reply, "init", false));
  VMCTL_ASSIGN_OR_RETURN(status.detail, TextField(reply, "detail", false));
  return status;
}

}  // namespace vmctl::agent
