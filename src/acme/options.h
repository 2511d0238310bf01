#ifndef VMCTL_ACME_OPTIONS_H_
#define VMCTL_ACME_OPTIONS_H_

#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "acme/dns_publisher.h"
#include "acme/dns_update.h"
#include "base/result.h"

namespace vmctl::acme {

// `vmctl serve`'s ACME flags as given.
struct AcmeFlags {
  std::string directory_url;  // --acme-directory
  std::string email;          // --acme-email
  std::string ca_bundle;      // --acme-ca-bundle
  std::string dns_hook;       // --acme-dns-hook
  std::string dns_rfc2136;    // --acme-dns-rfc2136 HOST:PORT
  std::string tsig_key;       // --acme-tsig-key FILE
};

// The checked configuration the daemon builds its ACME client and DNS publisher from.
struct AcmeOptions {
  std::string directory_url;
  std::string email;                       // normalized; may be empty
  std::filesystem::path ca_bundle;         // empty: the system's roots
  std::filesystem::path dns_hook;          // set for the hook publisher...
  std::string rfc2136_host, rfc2136_port;  // ...or these with tsig_key for RFC 2136
  std::optional<TsigKey> tsig_key;
};

// Validates the flags: nullopt when ACME is off (no --acme-directory; then no other --acme-*
// flag may be given). The directory must be an https URL, exactly one of --acme-dns-hook and
// --acme-dns-rfc2136 is needed (DNS-01 is the only way to a wildcard), the hook must be an
// executable file, --acme-dns-rfc2136 needs --acme-tsig-key (read and parsed here) and the reverse,
// the CA bundle must exist. Each failure is one kInvalidArgument line naming the flag.
Result<std::optional<AcmeOptions>> ParseAcmeFlags(const AcmeFlags& flags);

// "HOST:PORT" or "[V6]:PORT" split; the port 1-65535. Pure.
Result<std::pair<std::string, std::string>> ParseHostPort(std::string_view text);

// The publisher the options name (hook or RFC 2136).
std::unique_ptr<DnsPublisher> MakeDnsPublisher(const AcmeOptions& options);

}  // namespace vmctl::acme

#endif  // VMCTL_ACME_OPTIONS_H_
