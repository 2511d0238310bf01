#include "http/http.h"

#include <fmt/format.h>

#include <boost/asio/error.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/field.hpp>

namespace vmctl::http {

namespace beast = boost::beast;
namespace net = boost::asio;
using nlohmann::json;

json ErrorBody(const Error& error) {
  return {{"error", {{"code", ErrorCodeName(error.code())}, {"message", error.message()}}}};
}

Error ErrorFromBody(unsigned status, std::string_view body) {
  json parsed = json::parse(body, nullptr, false);
  if (!parsed.is_discarded() && parsed.is_object() && parsed.contains("error") &&
      parsed["error"].is_object()) {
    const json& error = parsed["error"];
    auto text = [&](const char* key, const char* fallback) {
      auto it = error.find(key);
      return it != error.end() && it->is_string() ? it->get<std::string>() : fallback;
    };
    return Error(ErrorCodeFromName(text("code", "internal")), text("message", "unknown error"));
  }
  return Internal(fmt::format("daemon answered HTTP {}: {}", status, body));
}

std::string DumpJson(const json& value) {
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

Result<void> CheckFraming(const beast::http::request_header<>& header) {
  size_t lengths = header.count(beast::http::field::content_length);
  size_t encodings = header.count(beast::http::field::transfer_encoding);
  if (lengths > 1) return InvalidArgument("repeated Content-Length");
  if (lengths > 0 && encodings > 0) {
    return InvalidArgument("a request must not carry both Transfer-Encoding and Content-Length");
  }
  if (encodings > 1 ||
      (encodings == 1 &&
       !beast::iequals(header[beast::http::field::transfer_encoding], "chunked"))) {
    return Unimplemented("unsupported Transfer-Encoding: only 'chunked' is accepted");
  }
  return Ok();
}

bool ConnectionEnded(const beast::error_code& ec) {
  return ec == beast::http::error::end_of_stream || ec == net::error::eof ||
         ec == net::error::connection_reset || ec == net::error::broken_pipe;
}

std::string HtmlEscape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

}  // namespace vmctl::http
