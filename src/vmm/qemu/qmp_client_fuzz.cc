// libFuzzer target for QMP replies: the input is everything a QEMU monitor sends (greeting,
// answers, events) before it closes the socket. The client negotiates and runs two commands, so
// answers are matched to ids 1 to 3 and events are kept aside in between.

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "base/io.h"
#include "vmm/qemu/qmp_client.h"

namespace {

using vmctl::vmm::qemu::QmpClient;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Written before the client reads: the input must fit in the socket buffer.
  if (size > 64 * 1024) return 0;
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) std::abort();
  vmctl::UniqueFd qemu(fds[1]);
  if (!vmctl::WriteAll(qemu.get(), std::string_view(reinterpret_cast<const char*>(data), size))
           .ok()) {
    std::abort();
  }
  ::shutdown(qemu.get(), SHUT_WR);
  // Every read ends at the closed socket, so the timeouts are never waited for.
  auto client = QmpClient::FromStream(vmctl::UniqueFd(fds[0]), std::chrono::seconds(5));
  if (!client.ok()) return 0;
  (void)(*client)->Execute("query-status");
  (void)(*client)->Execute("device_del", {{"id", "disk1"}});
  if ((*client)->TakeEvents().size() > QmpClient::kMaxEvents) std::abort();
  return 0;
}
