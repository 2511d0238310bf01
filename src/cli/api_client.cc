#include "cli/api_client.h"

#include <fmt/format.h>

#include <boost/asio/local/stream_protocol.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cctype>
#include <cstdlib>

#include "api/exec_frames.h"
#include "http/http.h"

namespace vmctl::cli {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using Socket = net::local::stream_protocol::socket;
using nlohmann::json;

struct Connection {
  net::io_context ioc;
  Socket socket{ioc};
};

Result<std::unique_ptr<Connection>> Connect(const std::filesystem::path& path) {
  auto c = std::make_unique<Connection>();
  beast::error_code ec;
  c->socket.connect(net::local::stream_protocol::endpoint(path.string()), ec);
  if (ec) {
    return Unavailable(
        fmt::format("cannot reach the vmctl daemon at {} ({}); is `vmctl serve` "
                    "running? (set VMCTL_SOCKET to use another socket)",
                    path.string(), ec.message()));
  }
  return c;
}

// The header the API takes the acting user from (docs/api.md).
constexpr char kUserHeader[] = "X-Vmctl-User";

// kInvalidArgument if the body holds a string that is not UTF-8 (an argument the user typed):
// JSON cannot carry it.
Result<http::request<http::string_body>> MakeRequest(const std::string& method,
                                                     const std::string& target,
                                                     const std::optional<json>& body,
                                                     const std::string& user) {
  http::request<http::string_body> req{http::string_to_verb(method), target, 11};
  req.set(http::field::host, "vmctl");
  if (!user.empty()) req.set(kUserHeader, user);
  req.keep_alive(false);
  if (body) {
    req.set(http::field::content_type, ::vmctl::http::kJsonType);
    try {
      req.body() = body->dump();
    } catch (const json::type_error&) {
      return InvalidArgument("an argument is not valid UTF-8 text");
    }
  }
  req.prepare_payload();
  return req;
}

Error Broken(const beast::error_code& ec) {
  return Unavailable("connection to the daemon broke: " + ec.message());
}

// Reads a streamed body, handing each piece to `sink`.
Result<unsigned> ReadStreaming(Socket& socket, const std::function<void(std::string_view)>& sink) {
  beast::flat_buffer buffer;
  http::response_parser<http::buffer_body> parser;
  parser.body_limit(boost::none);
  beast::error_code ec;
  http::read_header(socket, buffer, parser, ec);
  if (ec) return Broken(ec);
  char chunk[65536];
  while (!parser.is_done()) {
    parser.get().body().data = chunk;
    parser.get().body().size = sizeof(chunk);
    http::read(socket, buffer, parser, ec);
    if (ec == http::error::need_buffer) ec = {};
    if (ec) return Broken(ec);
    sink(std::string_view(chunk, sizeof(chunk) - parser.get().body().size));
  }
  return parser.get().result_int();
}

}  // namespace

std::string PathSegment(std::string_view name) {
  std::string out;
  for (unsigned char c : name) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  return out;
}

std::filesystem::path DefaultSocketPath() {
  const char* env = std::getenv("VMCTL_SOCKET");
  if (env && *env) return env;
  return "/run/vmctl/vmctl.sock";
}

Result<json> ApiClient::Call(const std::string& method, const std::string& target,
                             const std::optional<json>& body) {
  VMCTL_ASSIGN_OR_RETURN(auto req, MakeRequest(method, target, body, user_));
  VMCTL_ASSIGN_OR_RETURN(auto conn, Connect(socket_));
  beast::error_code ec;
  http::write(conn->socket, req, ec);
  if (ec) return Broken(ec);
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(boost::none);
  http::read(conn->socket, buffer, parser, ec);
  if (ec) return Broken(ec);
  auto& res = parser.get();
  if (res.result_int() >= 300) return ::vmctl::http::ErrorFromBody(res.result_int(), res.body());
  json parsed = json::parse(res.body(), nullptr, false);
  if (parsed.is_discarded()) return Internal("daemon sent invalid JSON: " + res.body());
  return parsed;
}

Result<json> ApiClient::CallWithProgress(const std::string& method, const std::string& target,
                                         const std::optional<json>& body,
                                         const std::function<void(const std::string&)>& progress) {
  VMCTL_ASSIGN_OR_RETURN(auto req, MakeRequest(method, target, body, user_));
  VMCTL_ASSIGN_OR_RETURN(auto conn, Connect(socket_));
  req.set(http::field::accept, ::vmctl::http::kNdjsonType);
  beast::error_code ec;
  http::write(conn->socket, req, ec);
  if (ec) return Broken(ec);
  std::string pending, whole;
  std::optional<Result<json>> outcome;
  VMCTL_ASSIGN_OR_RETURN(unsigned status, ReadStreaming(conn->socket, [&](std::string_view data) {
                           whole.append(data);
                           pending.append(data);
                           size_t nl;
                           while ((nl = pending.find('\n')) != std::string::npos) {
                             json line = json::parse(pending.substr(0, nl), nullptr, false);
                             pending.erase(0, nl + 1);
                             if (line.is_discarded() || !line.is_object()) continue;
                             if (line.contains("progress") && line["progress"].is_string()) {
                               progress(line["progress"].get<std::string>());
                             } else if (line.contains("result")) {
                               outcome = line["result"];
                             } else if (line.contains("error")) {
                               outcome = ::vmctl::http::ErrorFromBody(200, line.dump());
                             }
                           }
                         }));
  if (status >= 300) return ::vmctl::http::ErrorFromBody(status, whole);
  if (!outcome) return Unavailable("the daemon closed the connection before the operation ended");
  return *outcome;
}

Result<void> ApiClient::Logs(const std::string& name, bool follow, std::ostream& out) {
  VMCTL_ASSIGN_OR_RETURN(
      auto req,
      MakeRequest("GET", "/v1/vms/" + PathSegment(name) + "/logs" + (follow ? "?follow=1" : ""),
                  std::nullopt, user_));
  VMCTL_ASSIGN_OR_RETURN(auto conn, Connect(socket_));
  beast::error_code ec;
  http::write(conn->socket, req, ec);
  if (ec) return Broken(ec);
  std::string error_body;
  unsigned status = 0;
  auto read = ReadStreaming(conn->socket, [&](std::string_view data) {
    if (status == 0) status = 1;
    out.write(data.data(), static_cast<std::streamsize>(data.size()));
    out.flush();
    error_body.append(data.substr(0, 4096 - std::min<size_t>(4096, error_body.size())));
  });
  if (!read.ok()) return read.error();
  if (*read >= 300) return ::vmctl::http::ErrorFromBody(*read, error_body);
  return Ok();
}

Result<UniqueFd> ApiClient::StartExec(const std::string& name, const agent::ExecRequest& request,
                                      std::string* early_bytes) {
  json body = {{"argv", request.argv}, {"env", request.env},   {"cwd", request.cwd},
               {"tty", request.tty},   {"rows", request.rows}, {"cols", request.cols}};
  VMCTL_ASSIGN_OR_RETURN(
      auto req, MakeRequest("POST", "/v1/vms/" + PathSegment(name) + "/exec", body, user_));
  VMCTL_ASSIGN_OR_RETURN(auto conn, Connect(socket_));
  req.set(http::field::connection, "Upgrade");
  req.set(http::field::upgrade, api::kExecUpgrade);
  beast::error_code ec;
  http::write(conn->socket, req, ec);
  if (ec) return Broken(ec);
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  http::read_header(conn->socket, buffer, parser, ec);
  if (ec) return Broken(ec);
  if (parser.get().result() != http::status::switching_protocols) {
    http::read(conn->socket, buffer, parser, ec);
    return ::vmctl::http::ErrorFromBody(parser.get().result_int(), parser.get().body());
  }
  *early_bytes = beast::buffers_to_string(buffer.data());
  return UniqueFd(conn->socket.release());
}

}  // namespace vmctl::cli
