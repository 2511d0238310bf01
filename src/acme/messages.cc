#include "acme/messages.h"

#include <algorithm>
#include <initializer_list>
#include <nlohmann/json.hpp>

namespace vmctl::acme {
namespace {

using nlohmann::json;

Result<json> ParseObject(std::string_view body, std::string_view what) {
  json doc = json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return InvalidArgument(std::string(what) + " is not valid JSON");
  if (!doc.is_object()) return InvalidArgument(std::string(what) + " is not a JSON object");
  return doc;
}

Result<std::string> String(const json& doc, const char* field) {
  auto it = doc.find(field);
  if (it == doc.end()) return InvalidArgument(std::string("missing \"") + field + "\"");
  if (!it->is_string()) return InvalidArgument(std::string("\"") + field + "\" is not a string");
  return it->get<std::string>();
}

Result<std::optional<std::string>> OptionalString(const json& doc, const char* field) {
  if (!doc.contains(field)) return std::optional<std::string>();
  VMCTL_ASSIGN_OR_RETURN(std::string s, String(doc, field));
  return std::optional<std::string>(std::move(s));
}

Result<std::string> Url(const json& doc, const char* field) {
  VMCTL_ASSIGN_OR_RETURN(std::string url, String(doc, field));
  if (url.rfind("https://", 0) != 0 || url.size() == 8) {
    return InvalidArgument(std::string("\"") + field + "\" is not an https URL");
  }
  return url;
}

Result<std::string> Status(const json& doc, std::initializer_list<std::string_view> allowed) {
  VMCTL_ASSIGN_OR_RETURN(std::string status, String(doc, "status"));
  if (std::find(allowed.begin(), allowed.end(), status) == allowed.end()) {
    return InvalidArgument("unknown status \"" + status + "\"");
  }
  return status;
}

Result<Problem> ProblemFrom(const json& doc, int depth) {
  if (!doc.is_object()) return InvalidArgument("problem is not a JSON object");
  Problem p;
  VMCTL_ASSIGN_OR_RETURN(auto type, OptionalString(doc, "type"));
  // RFC 7807: an absent type means "about:blank".
  p.type = type.value_or("about:blank");
  VMCTL_ASSIGN_OR_RETURN(auto detail, OptionalString(doc, "detail"));
  p.detail = detail.value_or("");
  if (auto it = doc.find("subproblems"); it != doc.end() && depth == 0) {
    if (!it->is_array()) return InvalidArgument("\"subproblems\" is not an array");
    for (const json& sub : *it) {
      VMCTL_ASSIGN_OR_RETURN(Problem s, ProblemFrom(sub, depth + 1));
      p.subproblems.push_back(std::move(s));
    }
  }
  return p;
}

Result<std::optional<Problem>> OptionalProblem(const json& doc) {
  auto it = doc.find("error");
  if (it == doc.end()) return std::optional<Problem>();
  VMCTL_ASSIGN_OR_RETURN(Problem p, ProblemFrom(*it, 0).WithContext("\"error\""));
  return std::optional<Problem>(std::move(p));
}

Result<Identifier> IdentifierFrom(const json& doc) {
  if (!doc.is_object()) return InvalidArgument("identifier is not a JSON object");
  Identifier id;
  VMCTL_ASSIGN_OR_RETURN(id.type, String(doc, "type"));
  VMCTL_ASSIGN_OR_RETURN(id.value, String(doc, "value"));
  return id;
}

bool IsBase64Url(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
  });
}

Result<Challenge> ChallengeFrom(const json& doc) {
  if (!doc.is_object()) return InvalidArgument("challenge is not a JSON object");
  Challenge c;
  VMCTL_ASSIGN_OR_RETURN(c.type, String(doc, "type"));
  VMCTL_ASSIGN_OR_RETURN(c.url, Url(doc, "url"));
  VMCTL_ASSIGN_OR_RETURN(c.status, Status(doc, {"pending", "processing", "valid", "invalid"}));
  VMCTL_ASSIGN_OR_RETURN(auto token, OptionalString(doc, "token"));
  // Every challenge type this client answers has a token; others are listed but never used.
  if (token) {
    if (!IsBase64Url(*token)) return InvalidArgument("challenge token is not base64url");
    c.token = std::move(*token);
  }
  VMCTL_ASSIGN_OR_RETURN(c.error, OptionalProblem(doc));
  return c;
}

Result<Order> OrderFrom(const json& doc) {
  Order o;
  VMCTL_ASSIGN_OR_RETURN(o.status,
                         Status(doc, {"pending", "ready", "processing", "valid", "invalid"}));
  auto ids = doc.find("identifiers");
  if (ids == doc.end() || !ids->is_array()) return InvalidArgument("\"identifiers\" not an array");
  for (const json& id : *ids) {
    VMCTL_ASSIGN_OR_RETURN(Identifier i, IdentifierFrom(id));
    o.identifiers.push_back(std::move(i));
  }
  auto authz = doc.find("authorizations");
  if (authz == doc.end() || !authz->is_array()) {
    return InvalidArgument("\"authorizations\" is not an array");
  }
  for (const json& a : *authz) {
    if (!a.is_string() || a.get<std::string>().rfind("https://", 0) != 0) {
      return InvalidArgument("an authorization is not an https URL");
    }
    o.authorizations.push_back(a.get<std::string>());
  }
  VMCTL_ASSIGN_OR_RETURN(o.finalize, Url(doc, "finalize"));
  if (doc.contains("certificate")) {
    VMCTL_ASSIGN_OR_RETURN(std::string cert, Url(doc, "certificate"));
    o.certificate = std::move(cert);
  }
  VMCTL_ASSIGN_OR_RETURN(o.error, OptionalProblem(doc));
  return o;
}

Result<Authorization> AuthorizationFrom(const json& doc) {
  Authorization a;
  auto id = doc.find("identifier");
  if (id == doc.end()) return InvalidArgument("missing \"identifier\"");
  VMCTL_ASSIGN_OR_RETURN(a.identifier, IdentifierFrom(*id));
  VMCTL_ASSIGN_OR_RETURN(
      a.status, Status(doc, {"pending", "valid", "invalid", "deactivated", "expired", "revoked"}));
  auto challenges = doc.find("challenges");
  if (challenges == doc.end() || !challenges->is_array()) {
    return InvalidArgument("\"challenges\" is not an array");
  }
  for (const json& c : *challenges) {
    VMCTL_ASSIGN_OR_RETURN(Challenge ch, ChallengeFrom(c));
    a.challenges.push_back(std::move(ch));
  }
  if (auto w = doc.find("wildcard"); w != doc.end()) {
    if (!w->is_boolean()) return InvalidArgument("\"wildcard\" is not a boolean");
    a.wildcard = w->get<bool>();
  }
  return a;
}

}  // namespace

Result<Problem> ParseProblem(std::string_view body) {
  VMCTL_ASSIGN_OR_RETURN(json doc, ParseObject(body, "problem document"));
  return ProblemFrom(doc, 0);
}

Error ProblemError(const Problem& problem, int http_status) {
  std::string message = "acme error " + problem.type;
  if (!problem.detail.empty()) message += ": " + problem.detail;
  if (!problem.subproblems.empty()) {
    message += " (";
    for (size_t i = 0; i < problem.subproblems.size(); ++i) {
      if (i > 0) message += "; ";
      message += problem.subproblems[i].detail;
    }
    message += ")";
  }
  constexpr std::string_view kPrefix = "urn:ietf:params:acme:error:";
  std::string_view kind = problem.type;
  if (kind.rfind(kPrefix, 0) == 0) kind.remove_prefix(kPrefix.size());
  ErrorCode code = ErrorCode::kFailedPrecondition;
  if (kind == "rateLimited") {
    code = ErrorCode::kResourceExhausted;
  } else if (kind == "unauthorized" || kind == "accountDoesNotExist") {
    code = ErrorCode::kUnauthenticated;
  } else if (kind == "malformed" || kind == "rejectedIdentifier" || kind == "badCSR" ||
             kind == "invalidContact" || kind == "unsupportedIdentifier") {
    code = ErrorCode::kInvalidArgument;
  } else if (kind == "serverInternal" || http_status >= 500) {
    code = ErrorCode::kUnavailable;
  }
  return Error(code, message);
}

Result<Directory> ParseDirectory(std::string_view body) {
  VMCTL_ASSIGN_OR_RETURN(json doc, ParseObject(body, "directory"));
  Directory d;
  VMCTL_ASSIGN_OR_RETURN(d.new_nonce, Url(doc, "newNonce"));
  VMCTL_ASSIGN_OR_RETURN(d.new_account, Url(doc, "newAccount"));
  VMCTL_ASSIGN_OR_RETURN(d.new_order, Url(doc, "newOrder"));
  if (auto meta = doc.find("meta"); meta != doc.end()) {
    if (!meta->is_object()) return InvalidArgument("directory \"meta\" is not an object");
    VMCTL_ASSIGN_OR_RETURN(d.terms_of_service, OptionalString(*meta, "termsOfService"));
  }
  return d;
}

Result<Account> ParseAccount(std::string_view body) {
  VMCTL_ASSIGN_OR_RETURN(json doc, ParseObject(body, "account"));
  Account a;
  VMCTL_ASSIGN_OR_RETURN(a.status, Status(doc, {"valid", "deactivated", "revoked"}));
  return a;
}

Result<Order> ParseOrder(std::string_view body) {
  VMCTL_ASSIGN_OR_RETURN(json doc, ParseObject(body, "order"));
  return OrderFrom(doc).WithContext("order");
}

Result<Challenge> ParseChallenge(std::string_view body) {
  VMCTL_ASSIGN_OR_RETURN(json doc, ParseObject(body, "challenge"));
  return ChallengeFrom(doc).WithContext("challenge");
}

Result<Authorization> ParseAuthorization(std::string_view body) {
  VMCTL_ASSIGN_OR_RETURN(json doc, ParseObject(body, "authorization"));
  return AuthorizationFrom(doc).WithContext("authorization");
}

}  // namespace vmctl::acme
