#ifndef VMCTL_API_EXCHANGE_H_
#define VMCTL_API_EXCHANGE_H_

// Internal to vmctl_api: how the transport (server.cc) and the route groups (*_routes.cc) answer
// a request. Not thread-safe: an Exchange belongs to its connection's thread.

#include <boost/asio/local/stream_protocol.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "api/request.h"
#include "base/result.h"
#include "controller/image_service.h"
#include "controller/vm_service.h"
#include "http/http.h"

namespace vmctl::api {

namespace beast = boost::beast;
namespace http = beast::http;
using Socket = boost::asio::local::stream_protocol::socket;
using Request = http::request<http::string_body>;

// The shared HTTP pieces (http/http.h), by their short names here.
using ::vmctl::http::DumpJson;
using ::vmctl::http::ErrorBody;

// Each returns whether the connection may carry another request.
bool SendJson(Socket& socket, unsigned version, http::status status, const nlohmann::json& body,
              bool keep_alive);
bool SendError(Socket& socket, unsigned version, const Error& error, bool keep_alive);

// A chunked response body written piece by piece: NDJSON progress or a followed log. The
// connection ends after it.
class ChunkedWriter {
 public:
  ChunkedWriter(Socket& socket, unsigned version, std::string_view content_type);
  // False once the client has gone.
  bool Write(std::string_view data);
  bool Line(const nlohmann::json& line) { return Write(DumpJson(line) + "\n"); }
  void End();

 private:
  Socket& socket_;
  beast::error_code ec_;
};

// One request being answered, as the route groups see it.
struct Exchange {
  Socket& socket;
  // Bytes read past the request: the first frames of an exec stream.
  beast::flat_buffer& buffer;
  const Request& req;
  const Target& target;
  // The user the request acts as.
  std::string owner;

  // The replies; each returns whether the connection may carry another request.
  bool Json(http::status status, const nlohmann::json& body) const;
  bool Ok(const nlohmann::json& body) const { return Json(http::status::ok, body); }
  bool Fail(const Error& error) const;
  bool BadMethod() const;
  bool NoEndpoint() const;
  // Runs a long operation, streaming its progress as NDJSON when the client asked for it
  // (Accept: application/x-ndjson), and answering with one JSON document otherwise.
  bool WithProgress(
      http::status ok_status,
      const std::function<Result<nlohmann::json>(const controller::Progress&)>& op) const;
};

// A route group answers the requests under its part of /v1/ and returns whether the connection
// may carry another request, or nullopt when the path is none of its.
using Routed = std::optional<bool>;
Routed RouteVms(controller::VmService& vms, const Exchange& ex);
// /v1/vms/NAME/shares
Routed RouteShares(controller::VmService& vms, const Exchange& ex);
// /v1/vms/NAME/exec and /v1/vms/NAME/logs: the connection ends after them.
Routed RouteVmStreams(controller::VmService& vms, const Exchange& ex);
Routed RouteImages(controller::ImageService& images, const Exchange& ex);

}  // namespace vmctl::api

#endif  // VMCTL_API_EXCHANGE_H_
