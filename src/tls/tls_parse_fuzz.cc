// libFuzzer target for the certificate material the daemon reads back or is handed (ACME results,
// stored NAME.crt/NAME.key files): PEM certificate chains and private keys, and the names a
// certificate is stored and selected by. The first byte picks the parser.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "tls/names.h"
#include "tls/openssl.h"

namespace {

namespace tls = vmctl::tls;

// A chain that parses is 1..kMaxChainLength certificates that write back out as PEM and parse
// again to the same certificates.
void CheckChain(std::string_view pem) {
  auto chain = tls::ParseCertificateChain(pem);
  if (!chain.ok()) return;
  if (chain->empty() || chain->size() > tls::kMaxChainLength) std::abort();
  auto again = tls::ChainToPem(*chain);
  if (!again.ok()) std::abort();
  auto reparsed = tls::ParseCertificateChain(*again);
  if (!reparsed.ok() || reparsed->size() != chain->size()) std::abort();
  for (size_t i = 0; i < chain->size(); ++i) {
    if (X509_cmp((*chain)[i].get(), (*reparsed)[i].get()) != 0) std::abort();
    (void)tls::DnsNames((*chain)[i].get());
    (void)tls::NotAfter((*chain)[i].get());
  }
}

// A valid name has no character a path or an openssl.cnf value could misread, and its wildcard
// form (if any) is what a one-label-deeper name maps to.
void CheckName(std::string_view name) {
  if (!tls::ValidateCertificateName(name).ok()) return;
  for (char c : name) {
    if (c == '/' || c == ',' || c == ':' || c == '\0' || (c >= 'A' && c <= 'Z')) std::abort();
  }
  if (!name.starts_with("*.") &&
      tls::WildcardFor("x." + std::string(name)) != "*." + std::string(name)) {
    std::abort();
  }
  if (tls::FileStem(name).find('*') != std::string::npos) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 3) {
    case 0:
      CheckChain(input);
      break;
    case 1:
      (void)tls::ParsePrivateKey(input);
      break;
    case 2:
      CheckName(input);
      break;
  }
  return 0;
}
