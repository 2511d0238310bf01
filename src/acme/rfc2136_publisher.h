#ifndef VMCTL_ACME_RFC2136_PUBLISHER_H_
#define VMCTL_ACME_RFC2136_PUBLISHER_H_

#include <chrono>
#include <string>

#include "acme/dns_publisher.h"
#include "acme/dns_update.h"

namespace vmctl::acme {

// Publishes by RFC 2136 dynamic update signed with TSIG (`--acme-dns-rfc2136 HOST:PORT
// --acme-tsig-key FILE`), the way knot, bind and PowerDNS accept changes. The zone updated is the
// name without its first label (`_acme-challenge.DOMAIN` updates zone DOMAIN). Sent over UDP,
// retried, and over TCP when the answer is truncated or UDP gets no answer. A response that is not
// NOERROR is kUnavailable naming the rcode (NOTAUTH and TSIG errors kUnauthenticated).
class Rfc2136Publisher : public DnsPublisher {
 public:
  Rfc2136Publisher(std::string host, std::string port, TsigKey key,
                   std::chrono::milliseconds timeout = std::chrono::seconds(10))
      : host_(std::move(host)), port_(std::move(port)), key_(std::move(key)), timeout_(timeout) {}

  Result<void> Add(std::string_view name, std::string_view value) override;
  Result<void> Remove(std::string_view name, std::string_view value) override;

 private:
  Result<void> Send(std::string_view name, std::string_view value, UpdateOp op);

  std::string host_;
  std::string port_;
  TsigKey key_;
  std::chrono::milliseconds timeout_;
};

}  // namespace vmctl::acme

#endif  // VMCTL_ACME_RFC2136_PUBLISHER_H_
