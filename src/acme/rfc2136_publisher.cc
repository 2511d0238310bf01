#include "acme/rfc2136_publisher.h"

#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <memory>
#include <random>

#include "base/io.h"
#include "base/unique_fd.h"

namespace vmctl::acme {
namespace {

using Clock = std::chrono::steady_clock;

Result<UniqueFd> Connect(const std::string& host, const std::string& port, int type) {
  addrinfo hints = {};
  hints.ai_socktype = type;
  addrinfo* found = nullptr;
  int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &found);
  if (rc != 0) return Unavailable("resolving " + host + ": " + gai_strerror(rc));
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> list(found, freeaddrinfo);
  int last_errno = 0;
  for (addrinfo* ai = found; ai != nullptr; ai = ai->ai_next) {
    UniqueFd fd(::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol));
    if (!fd.valid()) {
      last_errno = errno;
      continue;
    }
    if (::connect(fd.get(), ai->ai_addr, ai->ai_addrlen) == 0) return fd;
    last_errno = errno;
  }
  return ErrnoError("connecting to " + host + ":" + port, last_errno);
}

std::chrono::milliseconds Left(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return std::max(left, std::chrono::milliseconds(0));
}

// One UDP exchange: the response with our id, or kDeadlineExceeded.
Result<std::string> ExchangeUdp(int fd, std::string_view message, uint16_t id,
                                Clock::time_point deadline) {
  VMCTL_TRY(WriteAll(fd, message));
  for (;;) {
    VMCTL_TRY(WaitReadable(fd, Left(deadline)));
    char buf[65535];
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0) return ErrnoError("receiving the DNS update response", errno);
    // Anything else on this connected socket (a late answer to an earlier try) is skipped.
    if (n >= 2 && ((static_cast<uint8_t>(buf[0]) << 8) | static_cast<uint8_t>(buf[1])) == id) {
      return std::string(buf, static_cast<size_t>(n));
    }
  }
}

Result<std::string> ExchangeTcp(const std::string& host, const std::string& port,
                                std::string_view message, Clock::time_point deadline) {
  VMCTL_ASSIGN_OR_RETURN(UniqueFd fd, Connect(host, port, SOCK_STREAM));
  std::string framed;
  framed.push_back(static_cast<char>(message.size() >> 8));
  framed.push_back(static_cast<char>(message.size()));
  framed.append(message);
  VMCTL_TRY(WriteAll(fd.get(), framed));
  std::string in;
  for (;;) {
    if (in.size() >= 2) {
      size_t len = (static_cast<uint8_t>(in[0]) << 8) | static_cast<uint8_t>(in[1]);
      if (in.size() >= 2 + len) return in.substr(2, len);
    }
    VMCTL_TRY(WaitReadable(fd.get(), Left(deadline)));
    VMCTL_ASSIGN_OR_RETURN(std::string chunk, ReadSome(fd.get(), 65537));
    if (chunk.empty()) return Unavailable("the DNS server closed the TCP connection");
    in += chunk;
  }
}

}  // namespace

Result<void> Rfc2136Publisher::Add(std::string_view name, std::string_view value) {
  return Send(name, value, UpdateOp::kAdd);
}

Result<void> Rfc2136Publisher::Remove(std::string_view name, std::string_view value) {
  return Send(name, value, UpdateOp::kDelete);
}

Result<void> Rfc2136Publisher::Send(std::string_view name, std::string_view value, UpdateOp op) {
  std::string what = std::string("DNS update (") + (op == UpdateOp::kAdd ? "add" : "delete") +
                     " TXT " + std::string(name) + ") at " + host_ + ":" + port_;
  size_t dot = name.find('.');
  if (dot == std::string_view::npos) return InvalidArgument(what + ": name has no zone");
  TxtUpdate update{std::string(name.substr(dot + 1)), std::string(name), std::string(value), op};
  std::random_device random;
  auto id = static_cast<uint16_t>(random());
  auto now = std::chrono::system_clock::now().time_since_epoch();
  VMCTL_ASSIGN_OR_RETURN(
      SignedUpdate signed_update,
      BuildTxtUpdate(update, id, key_,
                     std::chrono::duration_cast<std::chrono::seconds>(now).count())
          .WithContext(what));

  Clock::time_point deadline = Clock::now() + timeout_;
  Result<std::string> answer = Unavailable("no answer");
  if (signed_update.message.size() <= 512) {
    auto udp = Connect(host_, port_, SOCK_DGRAM);
    // Three tries within the first half of the timeout; TCP gets the rest.
    for (int attempt = 0; udp.ok() && attempt < 3; ++attempt) {
      answer = ExchangeUdp(udp->get(), signed_update.message, id,
                           std::min(deadline, Clock::now() + timeout_ / 6));
      if (answer.ok()) break;
    }
  }
  Result<UpdateResponse> response = InvalidArgument("no response");
  if (answer.ok()) response = ParseUpdateResponse(*answer, &key_, signed_update.mac);
  if (!answer.ok() || (response.ok() && response->truncated)) {
    answer = ExchangeTcp(host_, port_, signed_update.message, deadline);
    if (!answer.ok()) return std::move(answer).error().WithContext(what);
    response = ParseUpdateResponse(*answer, &key_, signed_update.mac);
  }
  if (!response.ok()) return std::move(response).error().WithContext(what);
  if (response->rcode == 9) return Unauthenticated(what + ": NOTAUTH (is the TSIG key allowed?)");
  if (response->rcode != 0) return Unavailable(what + ": " + RcodeName(response->rcode));
  return Ok();
}

}  // namespace vmctl::acme
