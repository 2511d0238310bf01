#ifndef VMCTL_TLS_CLIENT_HELLO_H_
#define VMCTL_TLS_CLIENT_HELLO_H_

#include <cstdint>
#include <optional>
#include <span>
#include <string>

namespace vmctl::tls {

// The largest first record PeekServerName reads (TLS's maximum plaintext record plus header).
inline constexpr size_t kMaxClientHelloPeek = 5 + 16384;

// The SNI host name (RFC 6066 section 3) in the first bytes a TLS client sent, read before the
// handshake starts so that the proxy can wait for a certificate that is being issued. Pure.
// nullopt: `bytes` ends before the first record does (read more). "" when the first record is
// no ClientHello, the ClientHello has no server_name, does not fit in the first record or is
// malformed: OpenSSL then judges the connection itself. The name is returned as sent (not
// checked: the caller normalizes it as it does the servername callback's).
std::optional<std::string> PeekServerName(std::span<const uint8_t> bytes);

}  // namespace vmctl::tls

#endif  // VMCTL_TLS_CLIENT_HELLO_H_
