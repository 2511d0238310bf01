#ifndef VMCTL_VMM_COMMON_HTTP_UNIX_H_
#define VMCTL_VMM_COMMON_HTTP_UNIX_H_

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "base/result.h"
#include "base/unique_fd.h"

namespace vmctl::vmm {

struct HttpResponse {
  unsigned status = 0;
  std::string body;
};

// One HTTP/1.1 request over a Unix socket (the API style of Cloud Hypervisor and Firecracker),
// parsed with Boost.Beast. Any status is returned as a response; only transport failures are
// errors: kUnavailable (cannot connect, connection closed), kDeadlineExceeded (timeout),
// kInternal (unparsable answer).
Result<HttpResponse> HttpUnix(const std::filesystem::path& socket, const std::string& method,
                              const std::string& target, const std::optional<nlohmann::json>& body,
                              std::chrono::milliseconds timeout = std::chrono::seconds(10));

// Connects to a hybrid-vsock Unix socket (Cloud Hypervisor, Firecracker) and performs the
// "CONNECT <port>\n" / "OK <assigned>\n" handshake; returns the stream to the guest port.
// kUnavailable if the socket does not answer or the guest refuses (no listener on the port).
Result<UniqueFd> ConnectHybridVsock(const std::filesystem::path& socket, unsigned port,
                                    std::chrono::milliseconds timeout = std::chrono::seconds(2));

}  // namespace vmctl::vmm

#endif  // VMCTL_VMM_COMMON_HTTP_UNIX_H_
