#include "api/exchange.h"

#include <fmt/format.h>

namespace vmctl::api {

namespace net = boost::asio;
using nlohmann::json;

bool SendJson(Socket& socket, unsigned version, http::status status, const json& body,
              bool keep_alive) {
  http::response<http::string_body> res{status, version};
  res.set(http::field::content_type, ::vmctl::http::kJsonType);
  res.keep_alive(keep_alive);
  res.body() = DumpJson(body) + "\n";
  res.prepare_payload();
  beast::error_code ec;
  http::write(socket, res, ec);
  return !ec && keep_alive;
}

bool SendError(Socket& socket, unsigned version, const Error& error, bool keep_alive) {
  return SendJson(socket, version, static_cast<http::status>(error.HttpStatus()), ErrorBody(error),
                  keep_alive);
}

ChunkedWriter::ChunkedWriter(Socket& socket, unsigned version, std::string_view content_type)
    : socket_(socket) {
  http::response<http::empty_body> res{http::status::ok, version};
  res.set(http::field::content_type, content_type);
  res.chunked(true);
  res.keep_alive(false);
  http::response_serializer<http::empty_body> serializer{res};
  http::write_header(socket_, serializer, ec_);
}

bool ChunkedWriter::Write(std::string_view data) {
  if (ec_ || data.empty()) return !ec_;
  net::write(socket_, http::make_chunk(net::buffer(data.data(), data.size())), ec_);
  return !ec_;
}

void ChunkedWriter::End() {
  if (!ec_) net::write(socket_, http::make_chunk_last(), ec_);
}

bool Exchange::Json(http::status status, const json& body) const {
  return SendJson(socket, req.version(), status, body, req.keep_alive());
}

bool Exchange::Fail(const Error& error) const {
  return SendError(socket, req.version(), error, req.keep_alive());
}

bool Exchange::BadMethod() const {
  return Json(http::status::method_not_allowed,
              ErrorBody(InvalidArgument(fmt::format(
                  "{} is not allowed on {}", std::string(req.method_string()), target.path))));
}

bool Exchange::NoEndpoint() const { return Fail(NotFound("no such endpoint: " + target.path)); }

bool Exchange::WithProgress(
    http::status ok_status,
    const std::function<Result<json>(const controller::Progress&)>& op) const {
  if (req[http::field::accept].find(::vmctl::http::kNdjsonType) == std::string_view::npos) {
    auto result = op(nullptr);
    if (!result.ok()) return Fail(result.error());
    return Json(ok_status, *result);
  }
  ChunkedWriter out(socket, req.version(), ::vmctl::http::kNdjsonType);
  auto result = op([&](const std::string& line) { out.Line({{"progress", line}}); });
  if (result.ok()) {
    out.Line({{"result", *result}});
  } else {
    out.Line(ErrorBody(result.error()));
  }
  out.End();
  return false;
}

}  // namespace vmctl::api
