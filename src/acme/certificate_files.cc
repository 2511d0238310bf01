#include "acme/certificate_files.h"

#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/stat.h>

#include <memory>

#include "acme/openssl_util.h"
#include "base/io.h"

namespace vmctl::acme {
namespace {

// Whether the private key in `key_pem` belongs to the first certificate of `chain_pem`.
bool KeyMatches(const std::string& chain_pem, const std::string& key_pem) {
  UniqueBio chain = MemoryBio(chain_pem), key_bio = MemoryBio(key_pem);
  std::unique_ptr<X509, decltype(&X509_free)> leaf(
      PEM_read_bio_X509(chain.get(), nullptr, nullptr, nullptr), X509_free);
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(
      PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr), EVP_PKEY_free);
  bool ok = leaf && key && X509_check_private_key(leaf.get(), key.get()) == 1;
  OpenSslError();
  return ok;
}

}  // namespace

Result<void> SaveCertificate(const std::filesystem::path& dir, const std::string& name,
                             const IssuedCertificate& cert) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Internal("creating " + dir.string() + ": " + ec.message());
  ::chmod(dir.c_str(), 0700);
  VMCTL_TRY(WriteFileAtomic(dir / (name + ".key"), cert.key_pem, 0600));
  return WriteFileAtomic(dir / (name + ".crt"), cert.chain_pem, 0600);
}

Result<std::optional<IssuedCertificate>> LoadCertificate(const std::filesystem::path& dir,
                                                         const std::string& name) {
  std::filesystem::path crt = dir / (name + ".crt"), key = dir / (name + ".key");
  std::error_code ec;
  if (!std::filesystem::exists(crt, ec) && !std::filesystem::exists(key, ec)) {
    return std::optional<IssuedCertificate>();
  }
  IssuedCertificate cert;
  VMCTL_ASSIGN_OR_RETURN(cert.chain_pem, ReadFile(crt));
  VMCTL_ASSIGN_OR_RETURN(cert.key_pem, ReadFile(key));
  VMCTL_ASSIGN_OR_RETURN(LeafInfo leaf, ParseChainLeaf(cert.chain_pem).WithContext(crt.string()));
  if (!KeyMatches(cert.chain_pem, cert.key_pem)) {
    return InvalidArgument(key.string() + " is not the key of " + crt.string());
  }
  cert.not_before = leaf.not_before;
  cert.not_after = leaf.not_after;
  return std::optional<IssuedCertificate>(std::move(cert));
}

}  // namespace vmctl::acme
