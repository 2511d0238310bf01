#ifndef VMCTL_SSH_GATEWAY_ROUTING_H_
#define VMCTL_SSH_GATEWAY_ROUTING_H_

#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace vmctl::ssh_gateway {

// Where an SSH username asks to go: "web" is VM web as the image's default user, "web+alice"
// is VM web as alice. A name that is not a valid VM name (or guest user) names no VM.
struct Route {
  std::string vm;          // empty: no VM, command mode
  std::string guest_user;  // empty: the image's default user
};
Route RouteForUsername(std::string_view username);

// The username a client logs in as, checked before anything routes on it: kInvalidArgument if
// it is not UTF-8, holds a control character or is longer than 256 bytes.
Result<void> ValidateUsername(std::string_view username);

// "127.0.1.1-127.0.1.20" (or one address): the gateway's routing address pool, in order.
// kInvalidArgument for anything but IPv4 addresses in order, or more than 4096 of them.
Result<std::vector<std::string>> ParseAddressRange(std::string_view text);

}  // namespace vmctl::ssh_gateway

#endif  // VMCTL_SSH_GATEWAY_ROUTING_H_
