#ifndef VMCTL_VMM_COMMON_HTTP_UNIX_H_
#define VMCTL_VMM_COMMON_HTTP_UNIX_H_

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "base/result.h"

namespace vmctl::vmm {

struct HttpResponse {
  unsigned status = 0;
  std::string body;
};

// One HTTP/1.1 exchange over a Unix socket (the API style of Cloud Hypervisor and Firecracker),
// serialized and parsed with Boost.Beast, one connection per request. Any HTTP status is a
// response; only transport failures are errors:
//   kUnavailable       the socket is missing, refuses, or closes before a complete answer
//   kDeadlineExceeded  no complete answer within `timeout` (connecting included)
//   kInvalidArgument   the socket path does not fit in sockaddr_un, or an unknown method
//   kInternal          the answer is not HTTP
Result<HttpResponse> HttpUnix(const std::filesystem::path& socket, const std::string& method,
                              const std::string& target, const std::optional<nlohmann::json>& body,
                              std::chrono::milliseconds timeout);

}  // namespace vmctl::vmm

#endif  // VMCTL_VMM_COMMON_HTTP_UNIX_H_
