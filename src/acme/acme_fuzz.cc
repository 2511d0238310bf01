// libFuzzer target for everything the ACME client reads from outside: the server's JSON
// documents, certificate chains and signatures, DNS UPDATE responses, TSIG key files, URLs and
// header values. The first byte picks the parser, the rest is its input (docs/fuzzing.md).

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "acme/certificate.h"
#include "acme/client.h"
#include "acme/dns_update.h"
#include "acme/https_client.h"
#include "acme/jws.h"
#include "acme/messages.h"
#include "acme/options.h"

namespace {

using namespace vmctl::acme;  // NOLINT: a fuzz driver naming a dozen parsers

void CheckUpdateResponse(std::string_view input) {
  TsigKey key{"acme-key", "0123456789abcdef0123456789abcdef"};
  auto r = ParseUpdateResponse(input, &key, std::string(32, 'm'));
  if (r.ok() && (r->rcode < 0 || r->rcode > 15)) std::abort();
  (void)ParseUpdateResponse(input, nullptr, "");
}

void CheckUrl(std::string_view input) {
  auto u = ParseHttpsUrl(input);
  if (u.ok() && (u->host.empty() || u->target.empty() || u->target[0] != '/')) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 13) {
    case 0:
      (void)ParseDirectory(input);
      break;
    case 1:
      (void)ParseAccount(input);
      break;
    case 2:
      (void)ParseOrder(input);
      break;
    case 3:
      (void)ParseAuthorization(input);
      break;
    case 4:
      (void)ParseChallenge(input);
      break;
    case 5:
      (void)ParseProblem(input);
      break;
    case 6:
      (void)ParseTsigKeyFile(input);
      break;
    case 7:
      CheckUpdateResponse(input);
      break;
    case 8:
      (void)ParseChainLeaf(input);
      break;
    case 9:
      (void)EcdsaDerToRaw(input);
      break;
    case 10:
      CheckUrl(input);
      break;
    case 11:
      (void)ParseRetryAfter(input, std::chrono::system_clock::now());
      break;
    case 12:
      (void)ParseHostPort(input);
      break;
  }
  return 0;
}
