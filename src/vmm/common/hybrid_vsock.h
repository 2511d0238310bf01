#ifndef VMCTL_VMM_COMMON_HYBRID_VSOCK_H_
#define VMCTL_VMM_COMMON_HYBRID_VSOCK_H_

#include <chrono>
#include <filesystem>

#include "base/result.h"
#include "base/unique_fd.h"

namespace vmctl::vmm {

// Opens a stream to a guest vsock port through the host Unix socket that Cloud Hypervisor and
// Firecracker expose for their vsock device ("hybrid vsock"): send "CONNECT <port>\n", expect
// "OK <host port>\n", then the socket carries the guest's bytes. kUnavailable when the socket does
// not answer, the guest has no listener on the port (the VMM then closes the connection), or the
// answer is anything but OK.
Result<UniqueFd> ConnectHybridVsock(const std::filesystem::path& socket, unsigned port,
                                    std::chrono::milliseconds timeout);

}  // namespace vmctl::vmm

#endif  // VMCTL_VMM_COMMON_HYBRID_VSOCK_H_
