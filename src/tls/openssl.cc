#include "tls/openssl.h"

#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <ctime>

#include "base/ascii.h"

namespace vmctl::tls {
namespace {

UniqueBio ReadOnlyBio(std::string_view data) {
  return UniqueBio(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
}

Result<std::string> BioContents(BIO* bio) {
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  if (n < 0) return OpenSslError("read memory BIO");
  return std::string(data, static_cast<size_t>(n));
}

std::chrono::system_clock::time_point ToTimePoint(const ASN1_TIME* t) {
  std::tm tm{};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) return {};
  return std::chrono::system_clock::from_time_t(timegm(&tm));
}

}  // namespace

SharedSslCtx AdoptSslCtx(SSL_CTX* ctx) {
  if (ctx == nullptr) return nullptr;
  return SharedSslCtx(ctx, SSL_CTX_free);
}

Error OpenSslError(std::string_view what, ErrorCode code) {
  std::string message(what);
  char sep = ':';
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    message += sep;
    message += ' ';
    message += buf;
    sep = ';';
  }
  return Error(code, std::move(message));
}

Result<UniquePkey> GenerateP256Key() {
  UniquePkey key(EVP_EC_gen(SN_X9_62_prime256v1));
  if (!key) return OpenSslError("generate P-256 key");
  return key;
}

Result<std::string> PrivateKeyToPem(EVP_PKEY* key) {
  UniqueBio bio(BIO_new(BIO_s_mem()));
  if (!bio ||
      PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return OpenSslError("write private key");
  }
  return BioContents(bio.get());
}

Result<UniquePkey> ParsePrivateKey(std::string_view pem) {
  UniqueBio bio = ReadOnlyBio(pem);
  // An empty passphrase callback makes an encrypted key fail instead of prompting on a terminal.
  auto no_passphrase = [](char*, int, int, void*) { return 0; };
  UniquePkey key(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, no_passphrase, nullptr)
                     : nullptr);
  if (!key) return OpenSslError("no valid PEM private key", ErrorCode::kInvalidArgument);
  return key;
}

Result<std::string> CertificateToPem(X509* cert) {
  UniqueBio bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) return OpenSslError("write certificate");
  return BioContents(bio.get());
}

Result<std::string> ChainToPem(const std::vector<UniqueX509>& chain) {
  std::string out;
  for (const auto& cert : chain) {
    VMCTL_ASSIGN_OR_RETURN(std::string pem, CertificateToPem(cert.get()));
    out += pem;
  }
  return out;
}

Result<std::vector<UniqueX509>> ParseCertificateChain(std::string_view pem) {
  UniqueBio bio = ReadOnlyBio(pem);
  if (!bio) return OpenSslError("memory BIO");
  std::vector<UniqueX509> chain;
  ERR_clear_error();
  // One past the limit, to tell a chain that is too long from one that is exactly long enough.
  while (chain.size() <= kMaxChainLength) {
    UniqueX509 cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (!cert) break;
    chain.push_back(std::move(cert));
  }
  if (chain.size() > kMaxChainLength) {
    ERR_clear_error();
    return InvalidArgument("more than " + std::to_string(kMaxChainLength) +
                           " certificates in the chain");
  }
  // Running out of PEM blocks ends the chain; any other failure is a malformed certificate.
  unsigned long e = ERR_peek_last_error();
  if (e != 0 && !(ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE)) {
    return OpenSslError("malformed certificate", ErrorCode::kInvalidArgument);
  }
  ERR_clear_error();
  if (chain.empty()) return InvalidArgument("no PEM certificate");
  return chain;
}

std::vector<std::string> DnsNames(X509* cert) {
  std::vector<std::string> names;
  auto* sans =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (sans == nullptr) return names;
  for (int i = 0; i < sk_GENERAL_NAME_num(sans); ++i) {
    const GENERAL_NAME* gn = sk_GENERAL_NAME_value(sans, i);
    if (gn->type != GEN_DNS) continue;
    const ASN1_IA5STRING* s = gn->d.dNSName;
    std::string name(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                     static_cast<size_t>(ASN1_STRING_length(s)));
    LowercaseAsciiInPlace(name);
    names.push_back(std::move(name));
  }
  GENERAL_NAMES_free(sans);
  return names;
}

std::chrono::system_clock::time_point NotBefore(X509* cert) {
  return ToTimePoint(X509_get0_notBefore(cert));
}

std::chrono::system_clock::time_point NotAfter(X509* cert) {
  return ToTimePoint(X509_get0_notAfter(cert));
}

}  // namespace vmctl::tls
