#ifndef VMCTL_TLS_CERTIFICATE_SOURCE_H_
#define VMCTL_TLS_CERTIFICATE_SOURCE_H_

#include <openssl/ssl.h>

#include <functional>
#include <memory>
#include <string_view>

namespace vmctl::tls {

// The HTTPS front end's certificates, chosen by SNI at each handshake.
//
// Each certificate comes as a ready server SSL_CTX (certificate, key, chain, protocol versions,
// ciphers and ALPN already set); the proxy moves a connection onto it with SSL_set_SSL_CTX from its
// ClientHello callback. The source keeps ownership; a shared_ptr keeps a context alive while a
// renewal swaps in a new one, and each connection moved onto it holds OpenSSL's own reference
// (so the shared_ptr's deleter must be SSL_CTX_free, as tls::AdoptSslCtx's is).
//
// Threading: called concurrently from the proxy's event-loop threads, so it must not block: no
// disk or network I/O (certificates are loaded ahead; one not yet issued is obtained in the
// background while this returns null, see AwaitCertificate).
class CertificateSource {
 public:
  virtual ~CertificateSource() = default;

  // The context for `server_name` (lowercase, no trailing dot); "" (a ClientHello without SNI)
  // gets the domain's own certificate. Null when nothing covers the name: the handshake then
  // fails with an unrecognized_name alert.
  virtual std::shared_ptr<SSL_CTX> ForServerName(std::string_view server_name) = 0;

  // For a name ForServerName has nothing for yet: true when a certificate may come soon (a
  // registered custom domain's first use starts its issuance), and then `ready` is called once,
  // from any thread, when it is served or has been given up on; false (and `ready` is never
  // called) when none is coming. Lets the proxy hold a first handshake instead of failing it.
  // Must not block. A source that has every certificate ahead has none coming.
  virtual bool AwaitCertificate(std::string_view /*server_name*/, std::function<void()> /*ready*/) {
    return false;
  }
};

}  // namespace vmctl::tls

#endif  // VMCTL_TLS_CERTIFICATE_SOURCE_H_
