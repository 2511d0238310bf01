#ifndef VMCTL_TLS_NAMES_H_
#define VMCTL_TLS_NAMES_H_

#include <string>
#include <string_view>

#include "base/result.h"

// Pure rules for the DNS names certificates are issued for and selected by.
namespace vmctl::tls {

// A name a certificate may be stored for: lowercase LDH labels ("a-z0-9-", 1-63 bytes, no hyphen
// at either end) joined by dots, at most 253 bytes, at least two labels, optionally behind one
// leading "*." (a wildcard covering exactly one more label). kInvalidArgument says what is wrong.
Result<void> ValidateCertificateName(std::string_view name);

// The wildcard that would cover `server_name` ("a.b.c" -> "*.b.c"); "" when it has one label.
std::string WildcardFor(std::string_view server_name);

// The file stem a certificate is stored under: its first name, "*" spelled "_" (which no host
// name contains, so stems cannot collide).
std::string FileStem(std::string_view first_name);

}  // namespace vmctl::tls

#endif  // VMCTL_TLS_NAMES_H_
