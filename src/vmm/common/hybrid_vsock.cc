#include "vmm/common/hybrid_vsock.h"

#include <fmt/format.h>

#include <string>

#include "base/io.h"

namespace vmctl::vmm {

using Clock = std::chrono::steady_clock;

namespace {

// "OK 1073741824\n" is the longest legitimate answer; anything much longer is not the handshake.
constexpr size_t kMaxAnswer = 64;

}  // namespace

Result<UniqueFd> ConnectHybridVsock(const std::filesystem::path& socket, unsigned port,
                                    std::chrono::milliseconds timeout) {
  const std::string what = fmt::format("hybrid vsock {} port {}", socket.string(), port);
  auto fd = ConnectUnix(socket);
  if (!fd.ok()) return Unavailable(fmt::format("{}: {}", what, fd.error().message()));
  if (auto sent = WriteAll(fd->get(), fmt::format("CONNECT {}\n", port)); !sent.ok()) {
    return Unavailable(fmt::format("{}: {}", what, sent.error().message()));
  }
  // Byte by byte: the guest may speak right after the newline, and those bytes belong to the
  // caller's stream, not to the handshake.
  const auto deadline = Clock::now() + timeout;
  std::string answer;
  while (answer.empty() || answer.back() != '\n') {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0 || !WaitReadable(fd->get(), left).ok()) {
      return Unavailable(fmt::format("{}: no answer to CONNECT", what));
    }
    auto byte = ReadSome(fd->get(), 1);
    if (!byte.ok()) return Unavailable(fmt::format("{}: {}", what, byte.error().message()));
    if (byte->empty()) {
      return Unavailable(
          fmt::format("{}: connection closed (no guest listener on the port?)", what));
    }
    answer += *byte;
    if (answer.size() > kMaxAnswer) {
      return Unavailable(fmt::format("{}: unexpected answer to CONNECT", what));
    }
  }
  answer.pop_back();
  if (answer.rfind("OK ", 0) != 0 || answer.size() == 3 ||
      answer.find_first_not_of("0123456789", 3) != std::string::npos) {
    return Unavailable(fmt::format("{}: CONNECT answered '{}'", what, answer));
  }
  return std::move(fd).value();
}

}  // namespace vmctl::vmm
