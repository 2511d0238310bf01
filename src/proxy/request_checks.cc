#include "proxy/request_checks.h"

#include "http/http.h"

namespace vmctl::proxy {

namespace http = boost::beast::http;

std::variant<HeadScan, Refusal> ScanRequestHead(std::string_view bytes) {
  HeadScan scan;
  while (bytes.substr(scan.skipped, 2) == "\r\n") scan.skipped += 2;
  size_t line_start = scan.skipped;
  for (size_t i = scan.skipped; i < bytes.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(bytes[i]);
    if (c == '\n') return Refusal{http::status::bad_request, "a line ends in a bare LF"};
    if (c == '\r') {
      if (i + 1 == bytes.size()) return scan;
      if (bytes[i + 1] != '\n') {
        return Refusal{http::status::bad_request, "a line ends in a bare CR"};
      }
      if (i == line_start) {  // the blank line: the head is complete
        scan.length = i + 2 - scan.skipped;
        return scan;
      }
      ++i;
      line_start = i + 1;
      continue;
    }
    if (i == line_start && i != scan.skipped && (c == ' ' || c == '\t')) {
      return Refusal{http::status::bad_request, "obsolete line folding is not accepted"};
    }
    if ((c < 0x20 && c != '\t') || c == 0x7f) {
      return Refusal{http::status::bad_request, "a control character in the request head"};
    }
  }
  return scan;
}

std::optional<Refusal> CheckRequestHead(const http::request_header<>& head) {
  if (head.version() != 10 && head.version() != 11) {
    return Refusal{http::status::http_version_not_supported, "only HTTP/1.0 and 1.1"};
  }
  if (head.method() == http::verb::connect) {
    return Refusal{http::status::method_not_allowed, "CONNECT is not served: this is no proxy"};
  }
  std::string_view target = head.target();
  if (target.empty() || target.front() != '/') {
    return Refusal{http::status::bad_request, "the request target must be a path (origin-form)"};
  }
  if (head.count(http::field::host) != 1) {
    return Refusal{http::status::bad_request, "a request needs exactly one Host header"};
  }
  if (Result<void> framing = ::vmctl::http::CheckFraming(head); !framing.ok()) {
    bool unsupported = framing.error().code() == ErrorCode::kUnimplemented;
    return Refusal{unsupported ? http::status::not_implemented : http::status::bad_request,
                   framing.error().message()};
  }
  return std::nullopt;
}

}  // namespace vmctl::proxy
