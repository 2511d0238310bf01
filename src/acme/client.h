#ifndef VMCTL_ACME_CLIENT_H_
#define VMCTL_ACME_CLIENT_H_

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "acme/certificate.h"
#include "acme/dns_publisher.h"
#include "acme/http_challenges.h"
#include "acme/https_client.h"
#include "acme/jws.h"
#include "acme/messages.h"
#include "base/result.h"

namespace vmctl::acme {

struct AcmeClientOptions {
  std::string directory_url;
  std::string email;  // the account's contact; may be empty
  // STATE/acme/account.key: created (0600, atomically) on first use, reused afterwards, so every
  // order runs under the same account.
  std::filesystem::path account_key_path;
  // Between polls when the server sends no Retry-After (a Retry-After is capped to a minute).
  std::chrono::milliseconds poll_interval = std::chrono::seconds(2);
  // For one whole order: validation, finalization and download.
  std::chrono::milliseconds order_timeout = std::chrono::minutes(10);
};

// Where challenge answers are published; each may be null if that type is never asked for.
// Not owned; they must outlive the client.
struct ChallengeResponders {
  DnsPublisher* dns = nullptr;
  HttpChallenges* http = nullptr;
};

enum class ChallengeType {
  kDns01,   // required for wildcards
  kHttp01,  // single names that resolve to this host
};

// One line per step ("creating the order", "publishing TXT ...").
using Progress = std::function<void(const std::string&)>;

// Seconds from a Retry-After header (RFC 9110 section 10.2.3: delay-seconds or an HTTP-date
// relative to `now`), at most a day; nullopt if absent or unparseable. Pure.
std::optional<std::chrono::seconds> ParseRetryAfter(std::string_view value,
                                                    std::chrono::system_clock::time_point now);

// An RFC 8555 client: account, order, challenges, finalization and download.
// Thread-compatible: one Issue at a time (the Renewer's thread). Issue blocks for the whole
// order, up to order_timeout. Errors: the server's problem document as an Error (ProblemError),
// kDeadlineExceeded when the order does not complete in time, kFailedPrecondition when a
// challenge fails (with the server's reason), I/O errors of the HTTPS client and publishers.
class AcmeClient {
 public:
  AcmeClient(AcmeClientOptions options, std::unique_ptr<HttpsClient> http,
             ChallengeResponders responders);
  ~AcmeClient();

  Result<IssuedCertificate> Issue(const std::vector<std::string>& names, ChallengeType type,
                                  const Progress& progress);

  // The account's URL ("kid"); empty until the first Issue has registered or found it.
  const std::string& account_url() const { return account_url_; }

 private:
  class Order;
  Result<void> EnsureAccount(const Progress& progress);
  Result<HttpResponse> Post(const std::string& url, const std::string& payload,
                            std::string_view accept = "");
  Result<HttpResponse> PostOnce(const std::string& url, const std::string& payload,
                                std::string_view accept);
  Result<void> RefreshNonce();

  AcmeClientOptions options_;
  std::unique_ptr<HttpsClient> http_;
  ChallengeResponders responders_;
  std::optional<AccountKey> key_;
  std::optional<Directory> directory_;
  std::string account_url_;
  std::string nonce_;
};

}  // namespace vmctl::acme

#endif  // VMCTL_ACME_CLIENT_H_
