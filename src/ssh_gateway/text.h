#ifndef VMCTL_SSH_GATEWAY_TEXT_H_
#define VMCTL_SSH_GATEWAY_TEXT_H_

#include <cstddef>
#include <string>
#include <string_view>

#include "base/result.h"

namespace vmctl::ssh_gateway {

// The length of the longest prefix of `bytes` that is well-formed UTF-8 (RFC 3629: no overlong
// forms, no surrogates, nothing above U+10FFFF); bytes.size() if all of it is.
size_t Utf8ValidPrefix(std::string_view bytes);

// Text a client sends that the gateway routes on, stores or passes to the API (a command line, a
// user name): kInvalidArgument, naming `what` and the offending byte's offset, if it is not
// UTF-8 or holds a control character (C0, DEL or C1). Tab, newline and carriage return pass only
// with `allow_blanks` (they separate a command line's words).
Result<void> ValidateText(std::string_view bytes, std::string_view what, bool allow_blanks);

// `bytes` made safe to write to a terminal: control characters other than newline and tab (C0,
// DEL, and C1 as U+0080..U+009F), bidirectional overrides and isolates (U+202A..U+202E,
// U+2066..U+2069) and bytes that are not UTF-8 become visible escapes (\x1B, \u202E); everything
// else is kept as it is.
std::string EscapeForTerminal(std::string_view bytes);

}  // namespace vmctl::ssh_gateway

#endif  // VMCTL_SSH_GATEWAY_TEXT_H_
