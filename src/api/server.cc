#include "api/server.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <boost/asio/local/stream_protocol.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <condition_variable>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "api/exchange.h"
#include "api/request.h"
#include "base/io.h"

namespace vmctl::api {
namespace {

namespace net = boost::asio;
using Clock = std::chrono::steady_clock;

constexpr size_t kMaxBody = 1 << 20;

// The socket as Beast's SyncReadStream, failing reads with timed_out once the deadline passes.
class DeadlineReader {
 public:
  explicit DeadlineReader(Socket& socket) : socket_(socket) {}
  void ExpiresAt(Clock::time_point deadline) { deadline_ = deadline; }

  template <class MutableBufferSequence>
  size_t read_some(const MutableBufferSequence& buffers, beast::error_code& ec) {
    auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline_ - Clock::now());
    if (!WaitReadable(socket_.native_handle(), std::max(left, std::chrono::milliseconds(0))).ok()) {
      ec = net::error::timed_out;
      return 0;
    }
    return socket_.read_some(buffers, ec);
  }
  template <class MutableBufferSequence>
  size_t read_some(const MutableBufferSequence& buffers) {
    beast::error_code ec;
    size_t n = read_some(buffers, ec);
    if (ec) throw beast::system_error(ec);
    return n;
  }

 private:
  Socket& socket_;
  Clock::time_point deadline_ = Clock::time_point::max();
};

}  // namespace

struct Server::Impl {
  Impl(controller::VmService& v, controller::ImageService& i, ServerOptions o)
      : vms(v), images(i), options(std::move(o)) {}

  controller::VmService& vms;
  controller::ImageService& images;
  ServerOptions options;
  net::io_context ioc;
  std::unique_ptr<net::local::stream_protocol::acceptor> acceptor;
  std::atomic<bool> stopping{false};
  // The open connections' sockets, so Stop can end them; a connection leaves the set and closes
  // its socket under mu, so Stop never shuts down a descriptor number already reused.
  std::mutex mu;
  std::condition_variable all_closed;
  std::set<int> open;

  // Registers an accepted connection; false when it is not to be served (stopping, or full).
  bool Admit(int fd);
  void Close(std::unique_ptr<Socket> socket);

  // The user a request acts as: the X-Vmctl-User header (set by the SSH gateway, which
  // authenticated the user), else the local admin. The socket's file mode is the access control.
  std::string Owner(const Request& req) const {
    auto user = req.find("X-Vmctl-User");
    return user == req.end() ? options.owner : std::string(user->value());
  }

  void HandleConnection(Socket& socket);
  void ServeConnection(Socket& socket);
  // Reads the next request within the timeouts; nullopt when the connection is to end (having
  // answered what needed an answer).
  std::optional<Request> ReadRequest(Socket& socket, beast::flat_buffer& buffer);
  bool Dispatch(Socket& socket, beast::flat_buffer& buffer, const Request& req);
};

Server::Server(controller::VmService& vms, controller::ImageService& images, ServerOptions options)
    : impl_(std::make_unique<Impl>(vms, images, std::move(options))) {}

Server::~Server() { Stop(); }

Result<void> Server::Listen() {
  VMCTL_ASSIGN_OR_RETURN(UniqueFd fd,
                         ListenUnix(impl_->options.socket_path, impl_->options.socket_mode));
  impl_->acceptor = std::make_unique<net::local::stream_protocol::acceptor>(impl_->ioc);
  beast::error_code ec;
  impl_->acceptor->assign(net::local::stream_protocol(), fd.release(), ec);
  if (ec) return Internal("cannot use the API socket: " + ec.message());
  return Ok();
}

void Server::Serve() {
  while (!impl_->stopping) {
    Socket socket(impl_->ioc);
    beast::error_code ec;
    impl_->acceptor->accept(socket, ec);
    if (ec) {
      if (impl_->stopping) break;
      spdlog::warn("api: accept failed: {}", ec.message());
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      continue;
    }
    if (!impl_->Admit(socket.native_handle())) {
      static constexpr std::string_view kBusy =
          "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
          "Connection: close\r\nContent-Length: 77\r\n\r\n"
          "{\"error\":{\"code\":\"unavailable\",\"message\":\"too many connections to the "
          "API\"}}\n";
      (void)::send(socket.native_handle(), kBusy.data(), kBusy.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
      continue;
    }
    // The socket is destroyed inside Close: once Stop has seen the last connection go, the
    // thread touches nothing of the server (whose io_context the socket belongs to) again.
    std::thread([impl = impl_.get(), s = std::make_unique<Socket>(std::move(socket))]() mutable {
      impl->HandleConnection(*s);
      impl->Close(std::move(s));
    }).detach();
  }
}

void Server::Stop() {
  if (!impl_->stopping.exchange(true) && impl_->acceptor && impl_->acceptor->is_open()) {
    // shutdown(2) on a listening socket wakes a thread blocked in accept(2).
    ::shutdown(impl_->acceptor->native_handle(), SHUT_RDWR);
  }
  std::unique_lock lock(impl_->mu);
  // Wakes every connection blocked reading or writing; a handler blocked in a service call
  // (a VM booting) finishes it first, and its answer then fails to send.
  for (int fd : impl_->open) ::shutdown(fd, SHUT_RDWR);
  impl_->all_closed.wait(lock, [&] { return impl_->open.empty(); });
}

bool Server::Impl::Admit(int fd) {
  std::lock_guard lock(mu);
  if (stopping || open.size() >= static_cast<size_t>(options.max_connections)) return false;
  open.insert(fd);
  return true;
}

void Server::Impl::Close(std::unique_ptr<Socket> socket) {
  std::lock_guard lock(mu);
  open.erase(socket->native_handle());
  socket.reset();
  if (open.empty()) all_closed.notify_all();
}

void Server::Impl::HandleConnection(Socket& socket) {
  try {
    ServeConnection(socket);
  } catch (const std::exception& e) {
    spdlog::error("api: connection ended by an error: {}", e.what());
  } catch (...) {
    spdlog::error("api: connection ended by an unknown error");
  }
}

std::optional<Request> Server::Impl::ReadRequest(Socket& socket, beast::flat_buffer& buffer) {
  if (buffer.size() == 0 && !WaitReadable(socket.native_handle(), options.idle_timeout).ok()) {
    return std::nullopt;  // idle keep-alive connection
  }
  DeadlineReader reader(socket);
  reader.ExpiresAt(Clock::now() + options.header_timeout);
  http::request_parser<http::string_body> parser;
  parser.body_limit(kMaxBody);
  auto failed = [&](const beast::error_code& ec) {
    if (::vmctl::http::ConnectionEnded(ec)) return;
    if (ec == net::error::timed_out) {
      SendJson(
          socket, 11, http::status::request_timeout,
          ErrorBody(DeadlineExceeded(fmt::format(
              "the request did not arrive within {} s",
              std::chrono::duration_cast<std::chrono::seconds>(options.header_timeout).count()))),
          false);
      return;
    }
    SendError(socket, 11, InvalidArgument("malformed HTTP request: " + ec.message()), false);
  };
  beast::error_code ec;
  http::read_header(reader, buffer, parser, ec);
  if (ec) {
    failed(ec);
    return std::nullopt;
  }
  const auto& header = parser.get();
  if (auto framing = ::vmctl::http::CheckFraming(header); !framing.ok()) {
    SendError(socket, header.version(), framing.error(), false);
    return std::nullopt;
  }
  if (header.method() == http::verb::unknown) {
    SendJson(socket, header.version(), http::status::not_implemented,
             ErrorBody(Unimplemented("unknown HTTP method")), false);
    return std::nullopt;
  }
  http::read(reader, buffer, parser, ec);
  if (ec) {
    failed(ec);
    return std::nullopt;
  }
  return parser.release();
}

void Server::Impl::ServeConnection(Socket& socket) {
  beast::flat_buffer buffer;
  for (;;) {
    auto req = ReadRequest(socket, buffer);
    if (!req) return;
    bool keep_alive;
    try {
      keep_alive = Dispatch(socket, buffer, *req);
    } catch (const std::exception& e) {
      spdlog::error("api: {} {}: {}", std::string(req->method_string()),
                    DumpJson(std::string(req->target())), e.what());
      SendError(socket, req->version(), Internal("the request failed; see the daemon's log"),
                false);
      return;
    }
    if (!keep_alive) return;
  }
}

bool Server::Impl::Dispatch(Socket& socket, beast::flat_buffer& buffer, const Request& req) {
  auto parsed = ParseTarget(req.target());
  if (!parsed.ok()) return SendError(socket, req.version(), parsed.error(), req.keep_alive());
  const Exchange ex{socket, buffer, req, *parsed, Owner(req)};
  const auto& parts = ex.target.segments;
  spdlog::debug("api: {} {}", std::string(req.method_string()), ex.target.path);
  if (parts.empty() || parts[0] != "v1") return ex.NoEndpoint();
  if (parts.size() == 2 && parts[1] == "health") {
    return ex.Ok({{"ok", true}, {"backend", options.backend_name}});
  }
  // Each route group owns a part of /v1/ (exchange.h).
  if (auto routed = RouteVms(vms, ex)) return *routed;
  if (auto routed = RouteImages(images, ex)) return *routed;
  return ex.NoEndpoint();
}

}  // namespace vmctl::api
