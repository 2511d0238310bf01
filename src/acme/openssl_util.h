#ifndef VMCTL_ACME_OPENSSL_UTIL_H_
#define VMCTL_ACME_OPENSSL_UTIL_H_

#include <openssl/bio.h>

#include <memory>
#include <string>
#include <string_view>

namespace vmctl::acme {

// Small RAII helpers shared by the acme sources that call OpenSSL; not part of the interface.
struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
using UniqueBio = std::unique_ptr<BIO, BioFree>;

// A read-only memory BIO over `data` (which must outlive it).
UniqueBio MemoryBio(std::string_view data);
// Everything written to a memory BIO.
std::string BioContents(BIO* bio);
// The oldest queued OpenSSL error as text ("" if none), clearing the queue.
std::string OpenSslError();
// SHA-256 of data (32 bytes).
std::string Sha256(std::string_view data);

}  // namespace vmctl::acme

#endif  // VMCTL_ACME_OPENSSL_UTIL_H_
