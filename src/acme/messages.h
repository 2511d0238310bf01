#ifndef VMCTL_ACME_MESSAGES_H_
#define VMCTL_ACME_MESSAGES_H_

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace vmctl::acme {

// Parsers of the ACME server's JSON documents (RFC 8555 section 7.1). Each is a pure function of
// the response body: a member this client relies on that is missing or of the wrong type, a
// status outside the RFC's list, or a URL that is not https is kInvalidArgument naming the field.
// Members the client does not use are ignored, as RFC 8555 requires for extensibility.

// An RFC 7807 problem document.
struct Problem {
  std::string type;  // e.g. "urn:ietf:params:acme:error:badNonce"
  std::string detail;
  std::vector<Problem> subproblems;
};
Result<Problem> ParseProblem(std::string_view body);
// "acme error TYPE: DETAIL (SUB; SUB)", the message an Error carries for the server's problem,
// with the code that fits it (rate limits kResourceExhausted, server errors kUnavailable...).
Error ProblemError(const Problem& problem, int http_status);

struct Directory {
  std::string new_nonce;
  std::string new_account;
  std::string new_order;
  std::optional<std::string> terms_of_service;
};
Result<Directory> ParseDirectory(std::string_view body);

struct Account {
  std::string status;  // valid | deactivated | revoked
};
Result<Account> ParseAccount(std::string_view body);

struct Identifier {
  std::string type;  // "dns"
  std::string value;
};

struct Order {
  std::string status;  // pending | ready | processing | valid | invalid
  std::vector<Identifier> identifiers;
  std::vector<std::string> authorizations;
  std::string finalize;
  std::optional<std::string> certificate;
  std::optional<Problem> error;
};
Result<Order> ParseOrder(std::string_view body);

struct Challenge {
  std::string type;  // dns-01, http-01, tls-alpn-01, ...
  std::string url;
  std::string status;  // pending | processing | valid | invalid
  std::string token;   // base64url characters only (checked: it reaches DNS and URL paths)
  std::optional<Problem> error;
};
Result<Challenge> ParseChallenge(std::string_view body);

struct Authorization {
  Identifier identifier;
  std::string status;  // pending | valid | invalid | deactivated | expired | revoked
  std::vector<Challenge> challenges;
  bool wildcard = false;
};
Result<Authorization> ParseAuthorization(std::string_view body);

}  // namespace vmctl::acme

#endif  // VMCTL_ACME_MESSAGES_H_
