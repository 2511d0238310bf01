#ifndef VMCTL_TLS_SERVER_CONTEXT_H_
#define VMCTL_TLS_SERVER_CONTEXT_H_

#include <string_view>
#include <vector>

#include "base/result.h"
#include "tls/certificate_source.h"
#include "tls/openssl.h"

namespace vmctl::tls {

// ALPN protocols a server context accepts, in OpenSSL's wire format (length-prefixed names), most
// preferred first. "h2" goes in front here once the proxy speaks HTTP/2; a TLS-ALPN-01 challenge
// context (RFC 8737) would pass "\x0a" "acme-tls/1" instead.
inline constexpr std::string_view kAlpnHttp1 = "\x08http/1.1";

// A server context without a certificate: TLS 1.2 and 1.3 only, forward-secret AEAD ciphers, no
// compression or renegotiation, session tickets, small idle buffers. The listener creates its
// connections from one of these: OpenSSL keeps the protocol bounds, options, buffers and ticket
// keys of the context a connection was created from when SNI moves it to a certificate's context.
Result<SharedSslCtx> NewBaseServerContext();

// The listener's context: a base context whose servername callback moves each connection to
// source.ForServerName(its SNI, "" without one), or fails the handshake with unrecognized_name
// when that is null. `source` must outlive the context.
Result<SharedSslCtx> NewSniServerContext(CertificateSource& source);

// A base context serving `chain` (leaf first) with `key`, selecting from `alpn` (a client offering
// none of them goes on without ALPN). kInvalidArgument if the key does not match.
Result<SharedSslCtx> NewServerContext(const std::vector<UniqueX509>& chain, EVP_PKEY* key,
                                      std::string_view alpn = kAlpnHttp1);

}  // namespace vmctl::tls

#endif  // VMCTL_TLS_SERVER_CONTEXT_H_
