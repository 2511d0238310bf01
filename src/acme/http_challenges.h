#ifndef VMCTL_ACME_HTTP_CHALLENGES_H_
#define VMCTL_ACME_HTTP_CHALLENGES_H_

#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace vmctl::acme {

// The HTTP-01 answers (RFC 8555 section 8.3) the plain-HTTP listener serves at
// `/.well-known/acme-challenge/TOKEN`. The ACME client adds a token's key authorization before
// it tells the server to validate and removes it afterwards; the listener looks tokens up from
// its own threads. Thread-safe; never blocks on I/O.
class HttpChallenges {
 public:
  void Add(std::string token, std::string key_authorization);
  void Remove(const std::string& token);
  // The body to answer with (content type application/octet-stream), or nullopt: 404.
  std::optional<std::string> Lookup(std::string_view token) const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::string, std::less<>> answers_;
};

}  // namespace vmctl::acme

#endif  // VMCTL_ACME_HTTP_CHALLENGES_H_
