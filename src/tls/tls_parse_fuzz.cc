// libFuzzer target for the certificate material the daemon reads back or is handed (ACME results,
// stored NAME.crt/NAME.key files): PEM certificate chains and private keys, the names a
// certificate is stored and selected by, and the ClientHello the proxy peeks at for its SNI
// name. The first byte picks the parser.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "tls/client_hello.h"
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

// The SNI peek judges the first record alone: once it answers, more bytes change nothing, and a
// name is never longer than the record that held it.
void CheckClientHello(std::string_view input) {
  std::vector<uint8_t> bytes(input.begin(), input.end());
  auto name = tls::PeekServerName(bytes);
  if (!name) return;
  if (name->size() > tls::kMaxClientHelloPeek) std::abort();
  bytes.push_back(0x16);
  if (tls::PeekServerName(bytes) != name) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 4) {
    case 0:
      CheckChain(input);
      break;
    case 1:
      (void)tls::ParsePrivateKey(input);
      break;
    case 2:
      CheckName(input);
      break;
    case 3:
      CheckClientHello(input);
      break;
  }
  return 0;
}
