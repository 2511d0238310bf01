#include "vmm/common/http_unix.h"

#include <fmt/format.h>
#include <sys/un.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

namespace vmctl::vmm {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using Local = asio::local::stream_protocol;

namespace {

// Larger answers (vm.info of a VM with many devices is a few KiB) mean something is wrong.
constexpr uint64_t kMaxBody = 16 * 1024 * 1024;

bool PeerWentAway(const beast::error_code& ec) {
  return ec == http::error::end_of_stream || ec == http::error::partial_message ||
         ec == asio::error::eof || ec == asio::error::connection_reset ||
         ec == asio::error::broken_pipe || ec == asio::error::connection_aborted;
}

}  // namespace

Result<HttpResponse> HttpUnix(const std::filesystem::path& socket, const std::string& method,
                              const std::string& target, const std::optional<nlohmann::json>& body,
                              std::chrono::milliseconds timeout) {
  const std::string what = fmt::format("{} {}", method, target);
  if (socket.native().size() >= sizeof(sockaddr_un::sun_path)) {
    return InvalidArgument(fmt::format("{}: socket path {} is longer than {} bytes", what,
                                       socket.string(), sizeof(sockaddr_un::sun_path) - 1));
  }
  const http::verb verb = http::string_to_verb(method);
  if (verb == http::verb::unknown) return InvalidArgument("unknown HTTP method " + method);

  // Asio and Beast report through error codes below; anything they throw (allocation, a
  // malformed target) is caught here, at the edge.
  try {
    http::request<http::string_body> request(verb, target, 11);
    request.set(http::field::host, "localhost");
    request.set(http::field::accept, "application/json");
    if (body) {
      request.set(http::field::content_type, "application/json");
      request.body() = body->dump();
    }
    request.prepare_payload();

    asio::io_context io;
    Local::socket stream(io);
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(kMaxBody);
    enum class Stage { kConnect, kWrite, kRead, kDone } stage = Stage::kConnect;
    beast::error_code failure;

    stream.async_connect(Local::endpoint(socket.native()), [&](beast::error_code ec) {
      if (ec) {
        failure = ec;
        return;
      }
      stage = Stage::kWrite;
      http::async_write(stream, request, [&](beast::error_code ec, size_t) {
        if (ec) {
          failure = ec;
          return;
        }
        stage = Stage::kRead;
        http::async_read(stream, buffer, parser, [&](beast::error_code ec, size_t) {
          if (ec) {
            failure = ec;
            return;
          }
          stage = Stage::kDone;
        });
      });
    });
    // Returns early once the exchange completes or fails; what is still pending at the deadline is
    // abandoned with the socket.
    io.run_for(timeout);

    if (stage == Stage::kDone) {
      return HttpResponse{parser.get().result_int(), std::move(parser.get().body())};
    }
    if (!failure) {
      return DeadlineExceeded(fmt::format("{}: no answer from {} within {} ms", what,
                                          socket.string(), timeout.count()));
    }
    if (stage == Stage::kConnect) {
      return Unavailable(
          fmt::format("{}: cannot connect to {}: {}", what, socket.string(), failure.message()));
    }
    if (PeerWentAway(failure)) {
      return Unavailable(
          fmt::format("{}: {} closed the connection before answering", what, socket.string()));
    }
    return Internal(
        fmt::format("{}: bad answer from {}: {}", what, socket.string(), failure.message()));
  } catch (const std::exception& e) {
    return Internal(fmt::format("{}: {}", what, e.what()));
  }
}

}  // namespace vmctl::vmm
