#include "tls/local_ca.h"

#include <openssl/bn.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <system_error>

#include "base/io.h"
#include "tls/durable_file.h"
#include "tls/names.h"

namespace vmctl::tls {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::system_clock;

// Leaves start a little in the past so that a client whose clock is slightly behind accepts them.
constexpr std::chrono::minutes kBackdate{5};
// X.509 caps a CN at 64 characters.
constexpr size_t kMaxCommonName = 64;

std::string CaName(std::string_view domain) {
  return std::string("vmctl local CA ").append(domain).substr(0, kMaxCommonName);
}

Result<void> SetSubjectName(X509* cert, std::string_view common_name) {
  X509_NAME* name = X509_get_subject_name(cert);
  std::string cn(common_name.substr(0, kMaxCommonName));
  if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1,
                                 0) != 1) {
    return OpenSslError("set subject name");
  }
  return Ok();
}

// A random positive 127-bit serial, as CAs must make serials unpredictable.
Result<void> SetRandomSerial(X509* cert) {
  std::unique_ptr<BIGNUM, decltype(&BN_free)> bn(BN_new(), BN_free);
  if (!bn || BN_rand(bn.get(), 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1 ||
      BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert)) == nullptr) {
    return OpenSslError("set serial");
  }
  return Ok();
}

Result<void> SetValidity(X509* cert, Clock::time_point from, std::chrono::seconds lifetime) {
  if (ASN1_TIME_set(X509_getm_notBefore(cert), Clock::to_time_t(from)) == nullptr ||
      ASN1_TIME_set(X509_getm_notAfter(cert), Clock::to_time_t(from + lifetime)) == nullptr) {
    return OpenSslError("set validity");
  }
  return Ok();
}

// Adds an extension written in openssl.cnf syntax; `issuer` is the cert itself when self-signed.
Result<void> AddExtension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_nconf_nid(nullptr, &ctx, nid, value.c_str());
  bool added = ext != nullptr && X509_add_ext(cert, ext, -1) == 1;
  X509_EXTENSION_free(ext);
  if (!added) return OpenSslError(std::string("add extension ") + OBJ_nid2sn(nid));
  return Ok();
}

// The fields every certificate here shares: v3, random serial, validity, public key.
Result<UniqueX509> NewCertificate(EVP_PKEY* key, Clock::time_point from,
                                  std::chrono::seconds lifetime) {
  UniqueX509 cert(X509_new());
  if (!cert || X509_set_version(cert.get(), X509_VERSION_3) != 1 ||
      X509_set_pubkey(cert.get(), key) != 1) {
    return OpenSslError("new certificate");
  }
  VMCTL_TRY(SetRandomSerial(cert.get()));
  VMCTL_TRY(SetValidity(cert.get(), from, lifetime));
  return cert;
}

Result<UniqueX509> SelfSign(EVP_PKEY* key, std::string_view domain) {
  VMCTL_ASSIGN_OR_RETURN(UniqueX509 cert,
                         NewCertificate(key, Clock::now() - kBackdate, LocalCa::kCaLifetime));
  X509* c = cert.get();
  VMCTL_TRY(SetSubjectName(c, CaName(domain)));
  if (X509_set_issuer_name(c, X509_get_subject_name(c)) != 1) return OpenSslError("set issuer");
  VMCTL_TRY(AddExtension(c, c, NID_basic_constraints, "critical,CA:TRUE,pathlen:0"));
  VMCTL_TRY(AddExtension(c, c, NID_key_usage, "critical,keyCertSign,cRLSign"));
  VMCTL_TRY(AddExtension(c, c, NID_subject_key_identifier, "hash"));
  VMCTL_TRY(AddExtension(c, c, NID_authority_key_identifier, "keyid:always"));
  // DNS:DOMAIN permits DOMAIN and every name below it (RFC 5280 4.2.1.10), nothing else.
  VMCTL_TRY(
      AddExtension(c, c, NID_name_constraints, "critical,permitted;DNS:" + std::string(domain)));
  if (X509_sign(c, key, EVP_sha256()) == 0) return OpenSslError("sign CA certificate");
  return cert;
}

Result<UniqueX509> LoadCaCertificate(const fs::path& path, EVP_PKEY* key, std::string_view domain) {
  VMCTL_ASSIGN_OR_RETURN(std::string pem, ReadFile(path));
  VMCTL_ASSIGN_OR_RETURN(auto chain,
                         std::move(ParseCertificateChain(pem)).WithContext(path.string()));
  UniqueX509 cert = std::move(chain.front());
  if (X509_check_private_key(cert.get(), key) != 1) {
    return OpenSslError(path.string() + " does not match its key", ErrorCode::kFailedPrecondition);
  }
  char cn[kMaxCommonName + 1] = {};
  X509_NAME_get_text_by_NID(X509_get_subject_name(cert.get()), NID_commonName, cn, sizeof(cn));
  if (cn != CaName(domain)) {
    return FailedPrecondition(path.string() + " is '" + cn + "', not the CA for " +
                              std::string(domain) +
                              "; move the tls directory away to create a new CA");
  }
  return cert;
}

}  // namespace

Result<LocalCa> LocalCa::Open(const fs::path& dir, std::string_view domain) {
  VMCTL_TRY(ValidateCertificateName(domain));
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Internal("create " + dir.string() + ": " + ec.message());
  if (::chmod(dir.c_str(), 0700) != 0) return ErrnoError("chmod " + dir.string(), errno);
  fs::path key_path = dir / "ca.key";
  fs::path cert_path = dir / "ca.crt";
  bool have_key = fs::exists(key_path);
  bool have_cert = fs::exists(cert_path);
  if (have_cert && !have_key) {
    return FailedPrecondition(cert_path.string() + " exists without " + key_path.string() +
                              "; restore the key or move both away to create a new CA");
  }
  UniquePkey key;
  if (have_key) {
    VMCTL_ASSIGN_OR_RETURN(std::string pem, ReadFile(key_path));
    VMCTL_ASSIGN_OR_RETURN(key, std::move(ParsePrivateKey(pem)).WithContext(key_path.string()));
  } else {
    VMCTL_ASSIGN_OR_RETURN(key, GenerateP256Key());
    VMCTL_ASSIGN_OR_RETURN(std::string pem, PrivateKeyToPem(key.get()));
    VMCTL_TRY(WriteFileDurably(key_path, pem, 0600));
  }
  UniqueX509 cert;
  if (have_cert) {
    VMCTL_ASSIGN_OR_RETURN(cert, LoadCaCertificate(cert_path, key.get(), domain));
  } else {
    // A key without a certificate is a first start that stopped in between: nobody can trust a
    // CA certificate that was never written, so one is made for the key now.
    VMCTL_ASSIGN_OR_RETURN(cert, SelfSign(key.get(), domain));
    VMCTL_ASSIGN_OR_RETURN(std::string pem, CertificateToPem(cert.get()));
    VMCTL_TRY(WriteFileDurably(cert_path, pem, 0644));
  }
  VMCTL_ASSIGN_OR_RETURN(std::string cert_pem, CertificateToPem(cert.get()));
  return LocalCa(std::move(key), std::move(cert), cert_path, std::move(cert_pem));
}

Result<IssuedCertificate> LocalCa::Issue(const std::vector<std::string>& names,
                                         std::chrono::seconds lifetime) const {
  if (names.empty()) return InvalidArgument("a certificate needs at least one name");
  std::string san;
  for (const std::string& name : names) {
    VMCTL_TRY(ValidateCertificateName(name));
    san += (san.empty() ? "DNS:" : ",DNS:") + name;
  }
  VMCTL_ASSIGN_OR_RETURN(UniquePkey key, GenerateP256Key());
  VMCTL_ASSIGN_OR_RETURN(UniqueX509 cert,
                         NewCertificate(key.get(), Clock::now() - kBackdate, lifetime));
  X509* c = cert.get();
  VMCTL_TRY(SetSubjectName(c, names.front()));
  if (X509_set_issuer_name(c, X509_get_subject_name(cert_.get())) != 1) {
    return OpenSslError("set issuer");
  }
  VMCTL_TRY(AddExtension(c, cert_.get(), NID_basic_constraints, "critical,CA:FALSE"));
  VMCTL_TRY(AddExtension(c, cert_.get(), NID_key_usage, "critical,digitalSignature"));
  VMCTL_TRY(AddExtension(c, cert_.get(), NID_ext_key_usage, "serverAuth"));
  VMCTL_TRY(AddExtension(c, cert_.get(), NID_subject_key_identifier, "hash"));
  VMCTL_TRY(AddExtension(c, cert_.get(), NID_authority_key_identifier, "keyid:always"));
  VMCTL_TRY(AddExtension(c, cert_.get(), NID_subject_alt_name, san));
  if (X509_sign(c, key_.get(), EVP_sha256()) == 0) return OpenSslError("sign certificate");
  VMCTL_ASSIGN_OR_RETURN(std::string chain_pem, CertificateToPem(c));
  VMCTL_ASSIGN_OR_RETURN(std::string key_pem, PrivateKeyToPem(key.get()));
  return IssuedCertificate{std::move(chain_pem), std::move(key_pem)};
}

}  // namespace vmctl::tls
