// libFuzzer target for the host side of the agent protocol: whatever a guest writes on its agent
// stream. One exec is in flight (so replies, output and exit frames have a session to reach), the
// input arrives as the guest's bytes, then the guest closes the stream. Frame handling is inside
// the client (no pure function to call), so this drives the real client over a socketpair; the
// order of events is the same on every run.

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <thread>

#include "agent/client.h"
#include "base/frame.h"
#include "base/io.h"

namespace {

using vmctl::UniqueFd;
using vmctl::agent::ExecSession;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // The whole input must fit in the socket buffer: a client that stops reading (as it does on a
  // bad frame) would otherwise block the write below.
  if (size > 64 * 1024) return 0;
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) std::abort();
  UniqueFd guest(fds[1]);
  auto client = vmctl::agent::NewAgentClient(UniqueFd(fds[0]));

  vmctl::Result<std::unique_ptr<ExecSession>> session = vmctl::Unavailable("not started");
  std::thread exec([&] { session = client->Exec({.argv = {"true"}}); });
  // Once the exec request is out, its reply is awaited: the guest's bytes may answer it.
  if (!vmctl::ReadFrame(guest.get()).ok()) std::abort();
  if (!vmctl::WriteAll(guest.get(), std::string_view(reinterpret_cast<const char*>(data), size))
           .ok()) {
    std::abort();
  }
  ::shutdown(guest.get(), SHUT_WR);
  exec.join();
  if (session.ok()) {
    for (;;) {
      auto event = (*session)->Next();
      if (!event.ok() || event->kind == vmctl::agent::ExecEvent::Kind::kExit) break;
    }
    session->reset();
  }
  (void)client->WaitHello(std::chrono::milliseconds(0));
  return 0;
}
