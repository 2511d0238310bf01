#include "tls/server_context.h"

#include <openssl/ssl.h>

#include <string>

namespace vmctl::tls {
namespace {

// Mozilla's "intermediate" TLS 1.2 list: ECDHE only, AEAD only. TLS 1.3's defaults are all AEAD.
constexpr char kTls12Ciphers[] =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
constexpr char kGroups[] = "X25519:P-256:P-384";
constexpr unsigned char kSessionIdContext[] = "vmctl";

int SelectAlpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
               unsigned int inlen, void* arg) {
  const auto* ours = static_cast<const std::string*>(arg);
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, outlen, reinterpret_cast<const unsigned char*>(ours->data()),
                            static_cast<unsigned int>(ours->size()), in,
                            inlen) != OPENSSL_NPN_NEGOTIATED) {
    // Like common servers, a client offering none of ours goes on without ALPN (HTTP/1.1).
    return SSL_TLSEXT_ERR_NOACK;
  }
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

void FreeAlpn(void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) {
  delete static_cast<std::string*>(ptr);
}

int AlpnSlot() {
  static const int slot = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, FreeAlpn);
  return slot;
}

int SelectBySni(SSL* ssl, int* alert, void* arg) {
  auto* source = static_cast<CertificateSource*>(arg);
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  std::shared_ptr<SSL_CTX> ctx = source->ForServerName(name ? name : "");
  if (!ctx) {
    *alert = SSL_AD_UNRECOGNIZED_NAME;
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  }
  // The connection takes its own reference, so a renewal may drop the source's meanwhile.
  SSL_set_SSL_CTX(ssl, ctx.get());
  return SSL_TLSEXT_ERR_OK;
}

}  // namespace

Result<SharedSslCtx> NewBaseServerContext() {
  SharedSslCtx ctx = AdoptSslCtx(SSL_CTX_new(TLS_server_method()));
  if (!ctx) return OpenSslError("new SSL_CTX");
  SSL_CTX* c = ctx.get();
  SSL_CTX_set_options(c, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  // Idle connections (the proxy holds thousands) drop their read and write buffers.
  SSL_CTX_set_mode(c, SSL_MODE_RELEASE_BUFFERS);
  if (SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION) != 1 ||
      SSL_CTX_set_max_proto_version(c, TLS1_3_VERSION) != 1 ||
      SSL_CTX_set_cipher_list(c, kTls12Ciphers) != 1 || SSL_CTX_set1_groups_list(c, kGroups) != 1 ||
      SSL_CTX_set_session_id_context(c, kSessionIdContext, sizeof(kSessionIdContext) - 1) != 1) {
    return OpenSslError("configure SSL_CTX");
  }
  return ctx;
}

Result<SharedSslCtx> NewSniServerContext(CertificateSource& source) {
  VMCTL_ASSIGN_OR_RETURN(SharedSslCtx ctx, NewBaseServerContext());
  SSL_CTX_set_tlsext_servername_callback(ctx.get(), SelectBySni);
  SSL_CTX_set_tlsext_servername_arg(ctx.get(), &source);
  return ctx;
}

Result<SharedSslCtx> NewServerContext(const std::vector<UniqueX509>& chain, EVP_PKEY* key,
                                      std::string_view alpn) {
  if (chain.empty()) return InvalidArgument("empty certificate chain");
  VMCTL_ASSIGN_OR_RETURN(SharedSslCtx ctx, NewBaseServerContext());
  SSL_CTX* c = ctx.get();
  if (SSL_CTX_use_certificate(c, chain.front().get()) != 1) {
    return OpenSslError("use certificate", ErrorCode::kInvalidArgument);
  }
  for (size_t i = 1; i < chain.size(); ++i) {
    if (SSL_CTX_add1_chain_cert(c, chain[i].get()) != 1) return OpenSslError("add chain cert");
  }
  if (SSL_CTX_use_PrivateKey(c, key) != 1 || SSL_CTX_check_private_key(c) != 1) {
    return OpenSslError("the key does not match the certificate", ErrorCode::kInvalidArgument);
  }
  // The context owns its copy of the list (freed with it through the ex_data slot).
  auto* ours = new std::string(alpn);
  if (SSL_CTX_set_ex_data(c, AlpnSlot(), ours) != 1) {
    delete ours;
    return OpenSslError("SSL_CTX_set_ex_data");
  }
  SSL_CTX_set_alpn_select_cb(c, SelectAlpn, ours);
  return ctx;
}

}  // namespace vmctl::tls
