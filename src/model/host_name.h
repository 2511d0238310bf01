#ifndef VMCTL_MODEL_HOST_NAME_H_
#define VMCTL_MODEL_HOST_NAME_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "base/result.h"

namespace vmctl {

// A DNS domain VMs live under ("vm.example.com"): dot-separated labels of [a-z0-9-].
Result<void> ValidateDomain(std::string_view domain);

// The VM a name such as an SSH ProxyJump destination means: "web" or "web.DOMAIN" (any domain:
// DNS decides which names reach us). Empty if the first label is not a VM name, or the name is
// not a DNS name.
std::string VmForDestination(std::string_view host);

// What an HTTPS request's Host header (or a TLS server name) names under `domain`.
struct WebHost {
  enum class Kind {
    kApex,    // DOMAIN itself: the daemon's own pages and the API
    kVm,      // VM.DOMAIN (port 0: the VM's web port) or VM--PORT.DOMAIN
    kCustom,  // any other DNS name: maybe a VM's custom domain
  };
  Kind kind = Kind::kApex;
  std::string host;  // lowercase, without port or trailing dot
  std::string vm;    // kVm only
  uint16_t port = 0;
};

// Parses a Host header ("Web.Example.com.:8443") against `domain` (already valid, lowercase).
// Pure. kInvalidArgument for anything that is not a DNS name (IP literals, empty labels, bytes
// outside [A-Za-z0-9-.], a bad port, a VM--PORT label with a port outside 1-65535, names under
// the domain whose first label is no VM name, or more than one label before the domain).
Result<WebHost> ParseWebHost(std::string_view host_header, std::string_view domain);

}  // namespace vmctl

#endif  // VMCTL_MODEL_HOST_NAME_H_
