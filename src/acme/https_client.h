#ifndef VMCTL_ACME_HTTPS_CLIENT_H_
#define VMCTL_ACME_HTTPS_CLIENT_H_

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "base/result.h"

namespace vmctl::acme {

// An https:// URL split for a request. Pure; anything but "https://HOST[:PORT][/PATH]" (userinfo,
// a fragment, an empty host, a bad port) is kInvalidArgument.
struct HttpsUrl {
  std::string host;    // a name, an IPv4 address or an IPv6 address without brackets
  std::string port;    // "443" unless given
  std::string target;  // path and query, "/" at least
};
Result<HttpsUrl> ParseHttpsUrl(std::string_view url);

struct HttpResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // names lowercased; a repeated header keeps the last
  std::string body;

  // The header's value, "" when absent.
  std::string Header(const std::string& lowercase_name) const;
};

struct HttpsClientOptions {
  // PEM roots to trust instead of the system's (a private ACME server such as pebble).
  std::filesystem::path ca_bundle;
  // For one whole exchange: resolve, connect, handshake, request and response.
  std::chrono::milliseconds timeout = std::chrono::seconds(30);
  size_t max_body = 1 << 20;
};

// A blocking HTTPS/1.1 client, one connection per request (ACME needs a handful of requests per
// certificate). The server certificate is verified against the roots and the URL's host.
// Thread-compatible: one request at a time; it blocks the calling thread up to the timeout.
// Errors: kUnavailable for connection, TLS and protocol failures (naming the stage and host),
// kDeadlineExceeded on timeout; an HTTP error status is not an error.
class HttpsClient {
 public:
  static Result<std::unique_ptr<HttpsClient>> Create(const HttpsClientOptions& options);
  ~HttpsClient();

  Result<HttpResponse> Request(std::string_view method, std::string_view url,
                               std::string_view body = "", std::string_view content_type = "",
                               std::string_view accept = "");

 private:
  struct Impl;
  explicit HttpsClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace vmctl::acme

#endif  // VMCTL_ACME_HTTPS_CLIENT_H_
