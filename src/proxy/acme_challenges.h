#ifndef VMCTL_PROXY_ACME_CHALLENGES_H_
#define VMCTL_PROXY_ACME_CHALLENGES_H_

#include <optional>
#include <string>
#include <string_view>

namespace vmctl::proxy {

// The ACME HTTP-01 answers the plain-HTTP listener serves at
// /.well-known/acme-challenge/TOKEN (RFC 8555 section 8.3); the ACME client publishes them.
//
// Threading: called concurrently from the proxy's event-loop threads; must not block.
class AcmeHttpChallenges {
 public:
  virtual ~AcmeHttpChallenges() = default;

  // The key authorization for `token`, or nothing if no challenge is pending for it.
  virtual std::optional<std::string> KeyAuthorization(std::string_view token) = 0;
};

}  // namespace vmctl::proxy

#endif  // VMCTL_PROXY_ACME_CHALLENGES_H_
