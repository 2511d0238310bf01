#ifndef VMCTL_MODEL_EMAIL_H_
#define VMCTL_MODEL_EMAIL_H_

#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace vmctl {

// Validates an email address as users type it (no display names, comments or quoted local
// parts) and returns it normalized: the domain in lowercase (ASCII letters; non-ASCII domains are
// kept as written, in UTF-8), the local part unchanged. Refused with kInvalidArgument: invalid
// UTF-8, control characters (C0, DEL, C1), invisible and bidirectional formatting characters
// (U+200B-U+200F, U+2028-U+202E, U+2060-U+206F, U+FEFF, U+061C), spaces, anything but exactly one
// '@', a local part over 64 bytes or with RFC 5322 specials or misplaced dots, a domain that is
// not at least two labels of 1-63 bytes (letters, digits, inner '-', or UTF-8), over 254 bytes in
// all. The error message shows the input with unsafe bytes escaped (\xNN), so it is safe to print.
// Pure; callable on any byte string.
Result<std::string> NormalizeEmail(std::string_view email);

// `text` with every byte that is not printable ASCII or part of valid UTF-8 text (and every
// control or bidi character) written as \xNN: for echoing outside input in messages.
std::string EscapeForDisplay(std::string_view text);

// Who may register (`vmctl serve --allow-email`): addresses and "@domain" entries. An address
// entry matches that address (domain case-insensitive); "@example.com" matches every address at
// exactly that domain (not its subdomains).
class EmailAllowList {
 public:
  // Comma-separated entries, blanks around them ignored. kInvalidArgument naming the first bad
  // entry (an invalid address or domain, or an empty entry). Pure; callable on any byte string.
  static Result<EmailAllowList> Parse(std::string_view list);

  bool empty() const { return addresses_.empty() && domains_.empty(); }
  // `email` as NormalizeEmail returns it.
  bool Allows(std::string_view email) const;

 private:
  std::vector<std::string> addresses_;  // normalized
  std::vector<std::string> domains_;    // lowercase, without '@'
};

}  // namespace vmctl

#endif  // VMCTL_MODEL_EMAIL_H_
