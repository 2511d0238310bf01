#ifndef VMCTL_SSH_GATEWAY_COMMAND_LINE_H_
#define VMCTL_SSH_GATEWAY_COMMAND_LINE_H_

#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace vmctl::ssh_gateway {

// The longest command line the gateway accepts (`ssh host CMD` or a lobby line).
inline constexpr size_t kMaxCommandLine = 4096;

// Splits a command line as a POSIX shell would split words: blanks separate, single quotes keep
// everything literal, double quotes and backslashes escape. No expansion of any kind.
// kInvalidArgument for an unterminated quote, a line longer than kMaxCommandLine, or one that is
// not UTF-8 or holds control characters other than blanks (ValidateText).
Result<std::vector<std::string>> SplitCommandLine(std::string_view line);

}  // namespace vmctl::ssh_gateway

#endif  // VMCTL_SSH_GATEWAY_COMMAND_LINE_H_
