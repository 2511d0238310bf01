#ifndef VMCTL_PROXY_REQUEST_CHECKS_H_
#define VMCTL_PROXY_REQUEST_CHECKS_H_

#include <boost/beast/http.hpp>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace vmctl::proxy {

// Why the proxy refuses a request before routing it: the status and a one-line reason.
struct Refusal {
  boost::beast::http::status status;
  std::string why;
};

// Where a request head ends in the bytes read so far (RFC 9112 section 2.2), stricter than
// Beast's parser so that no two parsers can read one message differently (request smuggling):
// every line ends in CRLF (bare LF and bare CR are refused), no obs-fold continuation lines, no
// NUL or other control bytes but HTAB. Empty lines before the request line are skipped, as
// section 2.2 allows; `skipped` says how many bytes they were. Returns the head's length
// (through the blank line), 0 if more bytes are needed, or a 400 refusal. Pure.
struct HeadScan {
  size_t skipped = 0;
  size_t length = 0;
};
std::variant<HeadScan, Refusal> ScanRequestHead(std::string_view bytes);

// Checks a parsed request head before anything routes on it. Refused: a target that is not
// origin-form ("/path"; absolute-form and authority-form would make the proxy an open proxy),
// CONNECT (405), a missing or repeated Host, the framing http::CheckFraming refuses (the API
// server's rules: 400, or 501 for a transfer coding other than chunked), and HTTP versions other
// than 1.0 and 1.1. Pure.
std::optional<Refusal> CheckRequestHead(const boost::beast::http::request_header<>& head);

}  // namespace vmctl::proxy

#endif  // VMCTL_PROXY_REQUEST_CHECKS_H_
