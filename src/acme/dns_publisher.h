#ifndef VMCTL_ACME_DNS_PUBLISHER_H_
#define VMCTL_ACME_DNS_PUBLISHER_H_

#include <string_view>

#include "base/result.h"

namespace vmctl::acme {

// Publishes the TXT records of DNS-01 challenges (RFC 8555 section 8.4).
//
// A name may carry several values at once (DOMAIN and *.DOMAIN share `_acme-challenge.DOMAIN`):
// Add adds one value next to the others and Remove deletes that one value only. Names come
// without the trailing dot. Both block until the change is made (or fail); the caller owns the
// publisher and calls it from one thread. Errors: kUnavailable when the DNS server or hook cannot
// be reached or fails, kDeadlineExceeded on timeout, kUnauthenticated when the server refuses the
// key.
class DnsPublisher {
 public:
  virtual ~DnsPublisher() = default;
  virtual Result<void> Add(std::string_view name, std::string_view value) = 0;
  virtual Result<void> Remove(std::string_view name, std::string_view value) = 0;
};

}  // namespace vmctl::acme

#endif  // VMCTL_ACME_DNS_PUBLISHER_H_
