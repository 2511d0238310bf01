#include "vmm/common/http_unix.h"

#include <fmt/format.h>

#include <boost/beast/http.hpp>

#include "base/io.h"

namespace vmctl::vmm {

namespace http = boost::beast::http;
using Clock = std::chrono::steady_clock;

namespace {

std::chrono::milliseconds Left(Clock::time_point deadline) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
}

}  // namespace

Result<HttpResponse> HttpUnix(const std::filesystem::path& socket, const std::string& method,
                              const std::string& target, const std::optional<nlohmann::json>& body,
                              std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  VMCTL_ASSIGN_OR_RETURN(UniqueFd fd, ConnectUnix(socket));
  std::string payload = body ? body->dump() : "";
  std::string request = fmt::format(
      "{} {} HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n", method, target);
  if (body) {
    request +=
        fmt::format("Content-Type: application/json\r\nContent-Length: {}\r\n", payload.size());
  } else if (method == "PUT" || method == "PATCH") {
    request += "Content-Length: 0\r\n";
  }
  request += "Connection: close\r\n\r\n" + payload;
  VMCTL_TRY(WriteAll(fd.get(), request));

  http::response_parser<http::string_body> parser;
  parser.eager(true);
  parser.body_limit(16 * 1024 * 1024);
  std::string pending;
  for (;;) {
    if (parser.is_done()) break;
    if (Left(deadline).count() <= 0) {
      return DeadlineExceeded(fmt::format("{} {} did not answer in time", method, target));
    }
    VMCTL_TRY(WaitReadable(fd.get(), Left(deadline)));
    VMCTL_ASSIGN_OR_RETURN(std::string data, ReadSome(fd.get(), 65536));
    boost::beast::error_code ec;
    if (data.empty()) {
      parser.put_eof(ec);
      if (ec || !parser.is_done()) {
        return Unavailable(
            fmt::format("{} {}: connection closed before the answer", method, target));
      }
      break;
    }
    pending += data;
    while (!pending.empty() && !parser.is_done()) {
      size_t used = parser.put(boost::asio::buffer(pending), ec);
      if (ec == http::error::need_more) {
        ec = {};
        break;
      }
      if (ec)
        return Internal(fmt::format("{} {}: bad HTTP answer: {}", method, target, ec.message()));
      pending.erase(0, used);
      if (used == 0) break;
    }
  }
  auto& res = parser.get();
  return HttpResponse{res.result_int(), res.body()};
}

Result<UniqueFd> ConnectHybridVsock(const std::filesystem::path& socket, unsigned port,
                                    std::chrono::milliseconds timeout) {
  VMCTL_ASSIGN_OR_RETURN(UniqueFd fd, ConnectUnix(socket));
  VMCTL_TRY(WriteAll(fd.get(), fmt::format("CONNECT {}\n", port)));
  // Read the answer byte by byte so that no guest data after the newline is consumed here.
  std::string line;
  auto deadline = Clock::now() + timeout;
  while (line.empty() || line.back() != '\n') {
    if (Left(deadline).count() <= 0) return Unavailable("hybrid vsock: no answer to CONNECT");
    VMCTL_TRY(WaitReadable(fd.get(), Left(deadline)));
    VMCTL_ASSIGN_OR_RETURN(std::string c, ReadSome(fd.get(), 1));
    if (c.empty()) {
      return Unavailable(fmt::format("hybrid vsock: guest port {} refused the connection", port));
    }
    line += c;
    if (line.size() > 64) return Unavailable("hybrid vsock: bad answer to CONNECT");
  }
  if (line.rfind("OK ", 0) != 0) {
    line.pop_back();
    return Unavailable(fmt::format("hybrid vsock: CONNECT {} answered '{}'", port, line));
  }
  return fd;
}

}  // namespace vmctl::vmm
