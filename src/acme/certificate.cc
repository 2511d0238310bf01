#include "acme/certificate.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>

#include "acme/openssl_util.h"

namespace vmctl::acme {
namespace {

struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
using UniqueX509 = std::unique_ptr<X509, X509Free>;

Result<std::chrono::system_clock::time_point> TimePoint(const ASN1_TIME* t) {
  struct tm tm = {};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) return InvalidArgument("bad certificate time");
  return std::chrono::system_clock::from_time_t(timegm(&tm));
}

}  // namespace

Result<CsrAndKey> MakeCsr(const std::vector<std::string>& names) {
  if (names.empty()) return InvalidArgument("a certificate needs at least one name");
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(
      EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"), EVP_PKEY_free);
  std::unique_ptr<X509_REQ, decltype(&X509_REQ_free)> req(X509_REQ_new(), X509_REQ_free);
  if (!key || !req) return Internal("creating a CSR: " + OpenSslError());
  X509_NAME* subject = X509_REQ_get_subject_name(req.get());
  // A CN is limited to 64 bytes; SANs carry the names anyway, so a longer first name gets none.
  if (names[0].size() <= 64) {
    X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_UTF8,
                               reinterpret_cast<const unsigned char*>(names[0].c_str()), -1, -1, 0);
  }
  std::string san;
  for (const std::string& name : names) {
    if (!san.empty()) san += ",";
    san += "DNS:" + name;
  }
  std::unique_ptr<STACK_OF(X509_EXTENSION), void (*)(STACK_OF(X509_EXTENSION)*)> exts(
      sk_X509_EXTENSION_new_null(),
      [](STACK_OF(X509_EXTENSION) * s) { sk_X509_EXTENSION_pop_free(s, X509_EXTENSION_free); });
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, nullptr, NID_subject_alt_name, san.c_str());
  if (ext == nullptr) return InvalidArgument("bad names for a certificate: " + OpenSslError());
  sk_X509_EXTENSION_push(exts.get(), ext);
  if (X509_REQ_set_version(req.get(), 0) != 1 || X509_REQ_set_pubkey(req.get(), key.get()) != 1 ||
      X509_REQ_add_extensions(req.get(), exts.get()) != 1 ||
      X509_REQ_sign(req.get(), key.get(), EVP_sha256()) <= 0) {
    return Internal("signing the CSR: " + OpenSslError());
  }
  CsrAndKey out;
  int len = i2d_X509_REQ(req.get(), nullptr);
  out.csr_der.resize(static_cast<size_t>(len));
  auto p = reinterpret_cast<unsigned char*>(out.csr_der.data());
  i2d_X509_REQ(req.get(), &p);
  UniqueBio bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_PrivateKey(bio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr);
  out.key_pem = BioContents(bio.get());
  return out;
}

Result<LeafInfo> ParseChainLeaf(std::string_view chain_pem) {
  UniqueBio bio = MemoryBio(chain_pem);
  UniqueX509 leaf(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!leaf) {
    OpenSslError();
    return InvalidArgument("the certificate chain holds no PEM certificate");
  }
  // The rest must be certificates too: a chain with junk in it is not what we would serve.
  for (;;) {
    UniqueX509 next(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (next) continue;
    bool clean_end = ERR_GET_REASON(ERR_peek_last_error()) == PEM_R_NO_START_LINE;
    OpenSslError();
    if (!clean_end) return InvalidArgument("the certificate chain holds a bad PEM block");
    break;
  }
  LeafInfo info;
  VMCTL_ASSIGN_OR_RETURN(info.not_before, TimePoint(X509_get0_notBefore(leaf.get())));
  VMCTL_ASSIGN_OR_RETURN(info.not_after, TimePoint(X509_get0_notAfter(leaf.get())));
  std::unique_ptr<GENERAL_NAMES, decltype(&GENERAL_NAMES_free)> sans(
      static_cast<GENERAL_NAMES*>(
          X509_get_ext_d2i(leaf.get(), NID_subject_alt_name, nullptr, nullptr)),
      GENERAL_NAMES_free);
  for (int i = 0; sans && i < sk_GENERAL_NAME_num(sans.get()); ++i) {
    const GENERAL_NAME* gn = sk_GENERAL_NAME_value(sans.get(), i);
    if (gn->type != GEN_DNS) continue;
    const ASN1_IA5STRING* s = gn->d.dNSName;
    info.dns_names.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                                static_cast<size_t>(ASN1_STRING_length(s)));
  }
  return info;
}

}  // namespace vmctl::acme
