#ifndef VMCTL_HTTP_HTTP_H_
#define VMCTL_HTTP_HTTP_H_

// HTTP pieces every vmctl front end and client shares (the API server, its CLI client, the HTTPS
// proxy): media types, the JSON error body, and the request checks that must not differ between
// a server and a proxy in front of it. Pure functions; no I/O.

#include <boost/beast/core/error.hpp>
#include <boost/beast/http/message.hpp>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "base/result.h"

namespace vmctl::http {

inline constexpr std::string_view kJsonType = "application/json";
// A body of one JSON document per line, sent as it is produced (progress of long operations).
inline constexpr std::string_view kNdjsonType = "application/x-ndjson";

// {"error": {"code": NAME, "message": TEXT}}: the body of every failed API request.
nlohmann::json ErrorBody(const Error& error);
// The error an answer with `status` and `body` carries: the one its JSON error body names, else
// kInternal quoting the body.
Error ErrorFromBody(unsigned status, std::string_view body);
// JSON text of a value that may hold bytes from outside (a guest's console tail, a name):
// invalid UTF-8 is replaced rather than thrown on.
std::string DumpJson(const nlohmann::json& value);

// RFC 9112 section 6: a request body is framed by exactly one Content-Length or by
// "Transfer-Encoding: chunked" alone; anything else could be read differently by a proxy in front
// (request smuggling). kInvalidArgument (400) for repeated or conflicting framing headers,
// kUnimplemented (501) for a transfer coding other than chunked.
Result<void> CheckFraming(const boost::beast::http::request_header<>& header);
// Whether a read or write failed because the peer closed or reset the connection (nothing to
// answer), rather than because of what it sent.
bool ConnectionEnded(const boost::beast::error_code& ec);

// `text` with & < > " ' replaced by character references, safe in HTML element content and in
// quoted attribute values.
std::string HtmlEscape(std::string_view text);

}  // namespace vmctl::http

#endif  // VMCTL_HTTP_HTTP_H_
